"""The dashboard ``/dashboard`` in a real browser, against a real server: access refused without the token; with
it, holds placed through the API show within 2 s, by the stream or, when streaming fails, by polling."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa

from tests.support.api import ADMIN_TOKEN, make_settings, signed
from tests.support.browser import chromium, expect, live_server, page_of, put_product, screenshot, take

pytestmark = pytest.mark.slow

SEEN_WITHIN_MS = 2_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def server(redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine) -> Iterator[str]:
    with live_server(make_settings(redis_url, database_url, tmp_path)) as base:
        yield base


def convert(base: str, hold_id: str) -> str:
    response = httpx.post(f"{base}/api/orders", json={"hold_id": hold_id}, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["order_id"])


def pay(base: str, order_id: str, transaction_id: str | None = None) -> None:
    txn = transaction_id or f"t-{order_id}"
    body, headers = signed({"order_id": order_id, "transaction_id": txn, "status": "success"})
    response = httpx.post(f"{base}/api/payments/webhook", content=body, headers=headers, timeout=10)
    assert response.json()["status"] == "paid", response.text


def _sign_in(page: Any, base: str, token: str = ADMIN_TOKEN) -> None:
    page.goto(base + "/dashboard")
    page.fill("#token", token)
    page.click("#token-form button")


def test_without_the_token_the_dashboard_shows_access_refused(browser: Any, server: str) -> None:
    put_product(server, 1, "Limited sneaker, drop #1", stock=10)
    with page_of(browser) as page:
        page.goto(server + "/dashboard")
        expect(page.locator("#refused")).to_have_text("Access refused: this page needs the admin token.")
        expect(page.locator("#live")).to_be_hidden()

        _sign_in(page, server, token="not-the-admin-token-at-all")
        expect(page.locator("#refused")).to_contain_text("Access refused: a valid admin token is required")
        expect(page.locator("#live")).to_be_hidden()
        expect(page.locator("#stock tbody tr")).to_have_count(0)


def test_holds_placed_through_the_api_show_within_two_seconds(browser: Any, server: str, tmp_path: Path) -> None:
    put_product(server, 1, "Limited sneaker, drop #1", stock=100)
    put_product(server, 2, "Concert ticket, front row", stock=40)
    with page_of(browser) as page:
        _sign_in(page, server)
        expect(page.locator("#mode")).to_have_text("live (stream)")
        row = page.locator("#stock tr[data-product-id='1']")
        expect(row.locator("td.held")).to_have_text("0")
        expect(page.locator("#verdict")).to_have_text("consistent")

        held, holds = 0, []
        for burst in (5, 10, 15):
            holds += [take(server, 1, 1)["hold_id"] for _ in range(burst)]
            held += burst
            expect(row.locator("td.held")).to_have_text(str(held), timeout=SEEN_WITHIN_MS)
            expect(row.locator("td.available")).to_have_text(str(100 - held), timeout=SEEN_WITHIN_MS)
            time.sleep(1)
        take(server, 2, 10)
        other = page.locator("#stock tr[data-product-id='2']")
        expect(other.locator("td.held")).to_have_text("10", timeout=SEEN_WITHIN_MS)

        # Orders and payments move the split too: 6 held become orders, 2 of them paid.
        orders = [convert(server, hold_id) for hold_id in holds[:6]]
        for order_id in orders[:2]:
            pay(server, order_id)
        expect(row.locator("td.held")).to_have_text("24", timeout=SEEN_WITHIN_MS)
        expect(row.locator("td.pending")).to_have_text("4", timeout=SEEN_WITHIN_MS)
        expect(row.locator("td.sold")).to_have_text("2", timeout=SEEN_WITHIN_MS)
        expect(page.locator("#backlog")).not_to_have_text("0")  # no worker runs here: the events wait

        # Each number is drawn as its share of the bar.
        expect(row.locator(".bar .held")).to_have_attribute("style", "width: 24%;")
        expect(row.locator(".bar .sold")).to_have_attribute("style", "width: 2%;")
        expect(other.locator(".bar .available")).to_have_attribute("style", "width: 75%;")
        expect(page.locator("#totals")).to_have_text("31 holds · 6 orders · 2 paid")
        expect(page.locator("#refunds")).to_have_text("0")
        pay(server, orders[0], "t-charged-twice")  # a second charge for a paid order
        expect(page.locator("#refunds")).to_have_text("1", timeout=SEEN_WITHIN_MS)
        expect(page.locator("#refunds-detail")).to_contain_text("flashsale refunds")
        expect(page.locator("#verdict")).to_have_text("behind")
        expect(page.locator("#rates-window")).to_contain_text("holds/s")
        # The token stays in this tab's sessionStorage, nowhere else.
        assert page.evaluate("sessionStorage.getItem('flashsale.adminToken')") == ADMIN_TOKEN
        assert page.evaluate("localStorage.length") == 0
        assert page.evaluate("document.cookie") == ""
        screenshot(page, "dashboard.png", tmp_path)


def test_when_the_stream_fails_the_page_polls_and_still_sees_holds(browser: Any, server: str) -> None:
    put_product(server, 1, "Limited sneaker, drop #1", stock=20)
    with page_of(browser) as page:
        page.route("**/api/admin/stream", lambda route: route.abort())
        _sign_in(page, server)
        expect(page.locator("#mode")).to_have_text("live (polling)")
        row = page.locator("#stock tr[data-product-id='1']")
        expect(row.locator("td.available")).to_have_text("20")
        take(server, 1, 3)
        expect(row.locator("td.held")).to_have_text("3", timeout=SEEN_WITHIN_MS)


def test_the_token_lasts_for_the_tab_and_forgetting_it_refuses_access(browser: Any, server: str) -> None:
    put_product(server, 1, "Limited sneaker, drop #1", stock=20)
    with page_of(browser) as page:
        _sign_in(page, server)
        expect(page.locator("#stock tr[data-product-id='1'] td.total")).to_have_text("20")
        page.reload()
        expect(page.locator("#stock tr[data-product-id='1'] td.total")).to_have_text("20")

        page.click("#forget")
        expect(page.locator("#refused")).to_contain_text("Access refused: the token was forgotten")
        expect(page.locator("#live")).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('flashsale.adminToken')") is None
