"""The waiting room in a real browser, against a real server: the storefront says "you are number N", then offers
Buy once admitted and holds with the admission; the dashboard shows each room's waiting, admitted and used counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa

from tests.support.api import ADMIN_TOKEN, make_settings
from tests.support.browser import chromium, expect, live_server, page_of, put_product, screenshot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def shop(redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine) -> Iterator[str]:
    settings = make_settings(redis_url, database_url, tmp_path, FLASHSALE_DEMO_PROVIDER="1")
    with live_server(settings) as base:
        yield base


def join(base: str, product_id: int) -> dict[str, Any]:
    response = httpx.post(f"{base}/api/products/{product_id}/queue", timeout=10)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_buyer_waits_their_turn_then_buys_with_the_admission(browser: Any, shop: str, tmp_path: Path) -> None:
    put_product(shop, 1, "Limited sneaker, drop #1", stock=1, waiting_room=True)
    first = join(shop, 1)  # someone else, ahead, admitted to the one unit
    with page_of(browser) as page:
        page.goto(shop + "/")
        card = page.locator("article.product[data-product-id='1']")
        expect(card.locator(".queue")).to_have_text("This sale has a queue: join it to buy.")
        expect(card.locator(".buy")).to_have_text("Join the queue")

        card.locator(".buy").click()
        expect(card.locator(".queue")).to_contain_text("You are number 1")
        expect(card.locator(".buy")).to_be_disabled()

        # The one ahead lets their turn go: the page's next poll admits this buyer.
        assert httpx.delete(f"{shop}/api/queue/{first['ticket']}", timeout=10).status_code == 204
        expect(card.locator(".queue")).to_contain_text("It is your turn", timeout=10_000)
        expect(card.locator(".buy")).to_have_text("Buy")
        screenshot(page, "storefront-queue.png", tmp_path)

        card.locator(".buy").click()
        purchase = page.locator("li.purchase").first
        expect(purchase.locator(".status")).to_contain_text("left to pay")
        expect(card.locator(".queue")).to_have_text("You bought with your turn in the queue.")


def test_the_dashboard_shows_each_waiting_room(browser: Any, shop: str) -> None:
    put_product(shop, 2, "Concert ticket, front row", stock=2, waiting_room=True)
    put_product(shop, 3, "Signed vinyl, numbered", stock=5)
    tickets = [join(shop, 2) for _ in range(5)]
    held = httpx.post(
        f"{shop}/api/holds",
        json={"product_id": 2, "quantity": 1},
        headers={"X-Flashsale-Admission": tickets[0]["admission_token"]},
        timeout=10,
    )
    assert held.status_code == 201, held.text
    with page_of(browser) as page:
        page.goto(shop + "/dashboard")
        page.fill("#token", ADMIN_TOKEN)
        page.click("#token-form button")
        row = page.locator("#queue-table tr[data-product-id='2']")
        expect(row.locator("td.waiting")).to_have_text("3")
        expect(row.locator("td.admitted")).to_have_text("1")
        expect(row.locator("td.used")).to_have_text("1")
        expect(page.locator("#queue-table tr[data-product-id='3']")).to_have_count(0)
