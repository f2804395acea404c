"""The storefront ``/`` in a real browser, against a real server with buyer tokens on, as under ``make up``: the page
logs its shopper in through the demo login, buys, pays through the simulated provider, sees it paid; stock others
take shows as sold out without a reload; refusals read as plain messages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa

from tests.support.api import make_settings
from tests.support.browser import chromium, expect, live_server, page_of, put_product, screenshot, take
from tests.support.buyers import JWT_ENV, bearer

pytestmark = pytest.mark.slow

ORDER_ID = re.compile(r"o\d+_[0-9A-Z]{26}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _shop(redis_url: str, database_url: str, tmp_path: Path, **env: str) -> Any:
    return live_server(
        make_settings(redis_url, database_url, tmp_path, **{**JWT_ENV, "FLASHSALE_DEMO_PROVIDER": "1", **env})
    )


@pytest.fixture
def shop(redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine) -> Iterator[str]:
    with _shop(redis_url, database_url, tmp_path) as base:
        yield base


def _in_an_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


def test_a_buyer_pays_a_unit_and_sees_sold_out_when_others_take_the_rest(
    browser: Any, shop: str, tmp_path: Path
) -> None:
    put_product(shop, 1, "Limited sneaker, drop #1", stock=5, sale_ends_at=_in_an_hour())
    put_product(shop, 2, "Concert ticket, front row", stock=500, max_per_customer=4)
    put_product(shop, 3, "Signed vinyl, numbered", stock=10, sale_starts_at=_in_an_hour())
    with page_of(browser) as page:
        page.goto(shop + "/")
        card = page.locator("article.product[data-product-id='1']")
        expect(card.locator(".available")).to_have_text("5")
        expect(card.locator(".window")).to_have_text(re.compile(r"Sale ends in (1:00:00|59:\d\d)"))
        expect(page.locator("article.product[data-product-id='3'] .window")).to_contain_text("Sale starts in")
        expect(page.locator("article.product[data-product-id='3'] .buy")).to_be_disabled()

        card.locator(".buy").click()
        purchase = page.locator("li.purchase").first
        expect(purchase.locator(".status")).to_contain_text("left to pay")
        expect(card.locator(".available")).to_have_text("4")

        # Meanwhile another buyer takes the rest through the API: the open page sees it by itself.
        take(shop, 1, 4, customer_id="someone-else")
        expect(card.locator(".state")).to_have_text("Sold out")
        expect(card.locator(".available")).to_have_text("0")
        expect(card.locator(".buy")).to_be_disabled()

        purchase.locator(".pay").click()
        expect(purchase).to_have_attribute("data-phase", "paying")
        expect(purchase.locator(".status")).to_contain_text("pending, waiting for the payment provider")
        expect(purchase).to_have_attribute("data-phase", "paid", timeout=10_000)
        status = purchase.locator(".status").inner_text()
        shopper = page.locator("#shopper").inner_text().removeprefix("you are ")
        screenshot(page, "storefront.png", tmp_path)

    # The page's word is the server's: the signed webhook from the simulated provider paid the order, which is the
    # shopper's own (the page's token named it) and nobody else's.
    found = ORDER_ID.search(status)
    assert found is not None, status
    assert httpx.get(f"{shop}/api/orders/{found.group()}").status_code == 401
    assert httpx.get(f"{shop}/api/orders/{found.group()}", headers=bearer("someone-else")).status_code == 404
    order = httpx.get(f"{shop}/api/orders/{found.group()}", headers=bearer(shopper)).json()
    assert order["status"] == "paid"
    assert f"paid (transaction {order['transaction_id']})" in status


def test_a_declined_card_cancels_the_order_and_the_unit_goes_back_on_sale(browser: Any, shop: str) -> None:
    put_product(shop, 1, "Limited sneaker, drop #1", stock=2)
    with page_of(browser) as page:
        page.goto(shop + "/")
        card = page.locator("article.product[data-product-id='1']")
        card.locator(".buy").click()
        expect(card.locator(".available")).to_have_text("1")
        purchase = page.locator("li.purchase").first
        purchase.locator(".decline").click()
        expect(purchase).to_have_attribute("data-phase", "cancelled", timeout=10_000)
        expect(purchase.locator(".status")).to_contain_text("payment declined, order cancelled")
        expect(card.locator(".available")).to_have_text("2")


def test_a_unit_gone_before_the_page_noticed_is_refused_as_sold_out(browser: Any, shop: str) -> None:
    put_product(shop, 1, "Limited sneaker, drop #1", stock=1)
    with page_of(browser) as page:
        page.goto(shop + "/")
        card = page.locator("article.product[data-product-id='1']")
        expect(card.locator(".available")).to_have_text("1")

        # The page loses sight of the catalog while someone else takes the last unit.
        page.route("**/api/products", lambda route: route.abort())
        expect(page.locator("#notice")).to_contain_text("The shop is not answering")
        take(shop, 1, 1, customer_id="someone-else")
        card.locator(".buy").click()

        expect(card.locator(".message")).to_have_text("Sold out.")
        expect(page.locator("li.purchase")).to_have_count(0)
        page.unroute("**/api/products")
        expect(card.locator(".state")).to_have_text("Sold out")
        expect(page.locator("#notice")).to_be_hidden()


def test_refusals_read_as_plain_messages_limit_reached_and_hold_expired(
    browser: Any, redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine
) -> None:
    with _shop(redis_url, database_url, tmp_path, FLASHSALE_HOLD_TTL_SECONDS="2") as base:
        put_product(base, 3, "Signed vinyl, numbered", stock=3, max_per_customer=1)
        with page_of(browser) as page:
            page.goto(base + "/")
            card = page.locator("article.product[data-product-id='3']")
            card.locator(".buy").click()
            purchase = page.locator("li.purchase").first
            expect(purchase.locator(".status")).to_contain_text("left to pay")

            card.locator(".buy").click()
            expect(card.locator(".message")).to_have_text("Limit reached: at most 1 per customer.")
            expect(page.locator("li.purchase")).to_have_count(1)

            # Two seconds later the hold lapses: the page says so, offers no Pay, and the unit is back.
            expect(purchase).to_have_attribute("data-phase", "expired", timeout=5_000)
            expect(purchase.locator(".message")).to_have_text("Your hold expired: the unit went back on sale.")
            expect(purchase.locator(".pay")).to_be_hidden()
            expect(card.locator(".available")).to_have_text("3")


def test_without_the_simulated_provider_pay_says_how_to_pay_instead(
    browser: Any, redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine
) -> None:
    # Without the demo provider there is no demo login either: buyers name themselves (buyer auth off).
    with _shop(redis_url, database_url, tmp_path, FLASHSALE_DEMO_PROVIDER="0", FLASHSALE_BUYER_AUTH="off") as base:
        put_product(base, 1, "Limited sneaker, drop #1", stock=2)
        with page_of(browser) as page:
            page.goto(base + "/")
            page.locator("article.product[data-product-id='1'] .buy").click()
            purchase = page.locator("li.purchase").first
            purchase.locator(".pay").click()
            expect(purchase.locator(".message")).to_contain_text("No payment provider is wired to this server")
            expect(purchase.locator(".message")).to_contain_text("flashsale pay o1_")
            expect(purchase).to_have_attribute("data-phase", "paying")


def test_with_buyer_tokens_off_the_page_still_pays_through_the_simulated_provider(
    browser: Any, redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine
) -> None:
    with _shop(redis_url, database_url, tmp_path, FLASHSALE_BUYER_AUTH="off") as base:
        put_product(base, 1, "Limited sneaker, drop #1", stock=2)
        with page_of(browser) as page:
            page.goto(base + "/")
            page.locator("article.product[data-product-id='1'] .buy").click()
            purchase = page.locator("li.purchase").first
            purchase.locator(".pay").click()
            expect(purchase).to_have_attribute("data-phase", "paid", timeout=10_000)
            status = purchase.locator(".status").inner_text()
        found = ORDER_ID.search(status)
        assert found is not None, status
        assert httpx.get(f"{base}/api/orders/{found.group()}").json()["status"] == "paid"
