"""Stock events: sold out, a lapse, back in stock, low stock, each announced to the merchant once per transition."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from persistence.catalog import ProductSpec, get_product, put_product
from persistence.deliveries import events_in_order
from tests.support.api import ADMIN
from tests.support.clock import clocked_engine
from tests.support.merchant import MERCHANT_SECRET, Receiver, merchant
from workers.deliveries import Policy, deliver_round
from workers.drain import MerchantOutbox, drain

OUTBOX = MerchantOutbox(timedelta(hours=1))


def _stock_events(db: sa.Engine) -> list[tuple[str, int]]:
    import orjson

    return [
        (e.type, orjson.loads(e.body)["data"]["available"])
        for e in events_in_order(db)
        if e.type.startswith("product.")
    ]


def test_sold_out_a_lapse_and_back_in_stock_are_each_announced_once(
    db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with clocked_engine(hold_ttl_ms=10_000, order_ttl_ms=60_000) as (engine, clock):
        put_product(engine, db, ProductSpec(1, "Sneaker", 100, 4, low_stock_threshold=2))
        engine.reserve(1, 1)  # 3 left: nothing to say
        engine.reserve(1, 2)  # 1 left, below 2: low stock
        last = engine.reserve(1, 1)  # 0: sold out
        engine.release(last.hold_id)  # 1: back in stock
        engine.reserve(1, 1)  # 0: sold out again
        clock.advance(10_001)
        assert engine.reap(1).holds_expired == 3  # the lapse: 4 units back, in one reap

        # Given a drain that commits its batch and dies before XDEL, then the next drain
        def die(*_: object) -> None:
            raise SystemExit("killed after commit")

        with monkeypatch.context() as patch:
            patch.setattr(engine, "ack_outbox", die)
            with pytest.raises(SystemExit):
                drain(engine, db, merchant=OUTBOX)
        drain(engine, db, merchant=OUTBOX)

    assert _stock_events(db) == [
        ("product.low_stock", 1),
        ("product.sold_out", 0),
        ("product.back_in_stock", 1),
        ("product.sold_out", 0),
        ("product.back_in_stock", 1),  # the first hold of the reap's lapse
    ]


def test_a_restock_of_a_sold_out_product_is_back_in_stock_and_the_merchant_hears_it(db: sa.Engine) -> None:
    with clocked_engine() as (engine, _):
        put_product(engine, db, ProductSpec(1, "Sneaker", 100, 1))
        engine.convert(engine.reserve(1, 1).hold_id)
        put_product(engine, db, ProductSpec(1, "Sneaker", 100, 5))  # restocked
        drain(engine, db, merchant=OUTBOX)

    assert _stock_events(db) == [("product.sold_out", 0), ("product.back_in_stock", 4)]
    with merchant(Receiver(errors=1)) as receiver:
        for _ in range(50):
            deliver_round(db, Policy(receiver.url, MERCHANT_SECRET, timeout=0.5, base=0.01, cap=0.02))
            if len(receiver.accepted) == len(events_in_order(db)):
                break
    product = [e for e in receiver.accepted if e["type"].startswith("product.")]
    assert [e["type"] for e in product] == ["product.sold_out", "product.back_in_stock"]
    assert product[1]["data"] == {"product_id": 1, "available": 4, "low_stock_threshold": None}


@pytest.mark.anyio
async def test_the_admin_put_sets_the_low_stock_threshold(client: httpx.AsyncClient, db: sa.Engine) -> None:
    body = {"name": "Sneaker", "price_cents": 100, "stock": 10, "low_stock_threshold": 3}
    response = await client.put("/api/admin/products/1", json=body, headers=ADMIN)
    refused = await client.put("/api/admin/products/1", json={**body, "low_stock_threshold": -1}, headers=ADMIN)

    assert response.status_code == 201, response.text
    product = get_product(db, 1)
    assert product is not None
    assert product.low_stock_threshold == 3
    assert refused.status_code == 422
