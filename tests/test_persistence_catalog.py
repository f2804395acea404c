"""The catalog: put_product is the one way to create or change a product, engine first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from engine import Engine
from engine.exceptions import StockBelowCommitted
from persistence.catalog import ProductSpec, get_product, list_products, put_product

START = datetime(2030, 1, 1, 12, tzinfo=UTC)


def spec(**change: object) -> ProductSpec:
    fields: dict[str, object] = {"id": 3, "name": "Lamp", "price_cents": 1999, "stock": 50, "max_per_customer": 2}
    return ProductSpec(**{**fields, **change})  # type: ignore[arg-type]


def test_put_product_creates_the_product_in_both_stores(real_engine: Engine, db: sa.Engine) -> None:
    product, created = put_product(real_engine, db, spec(sale_starts_at=START, sale_ends_at=START + timedelta(hours=1)))

    assert created
    assert (product.name, product.price_cents, product.stock, product.max_per_customer) == ("Lamp", 1999, 50, 2)
    assert product.sale_starts_at == START
    assert get_product(db, 3) == product
    snap = real_engine.snapshot(3)
    assert (snap.total, snap.price_cents, snap.max_per_customer) == (50, 1999, 2)
    assert snap.starts_at_ms == int(START.timestamp() * 1000)


def test_putting_it_again_updates_and_reports_not_created(real_engine: Engine, db: sa.Engine) -> None:
    first, _ = put_product(real_engine, db, spec())
    second, created = put_product(real_engine, db, spec(name="Big lamp", stock=80))

    assert not created
    assert (second.name, second.stock, second.created_at) == ("Big lamp", 80, first.created_at)
    assert second.updated_at >= first.updated_at
    assert real_engine.snapshot(3).total == 80


def test_stock_below_committed_units_is_refused_and_nothing_is_written(real_engine: Engine, db: sa.Engine) -> None:
    put_product(real_engine, db, spec(stock=10))
    real_engine.reserve(3, 2, customer_id="x")

    with pytest.raises(StockBelowCommitted):
        put_product(real_engine, db, spec(stock=1, name="Renamed"))

    product = get_product(db, 3)
    assert product is not None
    assert (product.stock, product.name) == (10, "Lamp")
    assert real_engine.snapshot(3).total == 10


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": 0}, "id"),
        ({"id": True}, "id"),
        ({"name": "  "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"price_cents": -1}, "price_cents"),
        ({"stock": 1.5}, "stock"),
        ({"max_per_customer": -2}, "max_per_customer"),
        ({"sale_starts_at": datetime(2030, 1, 1)}, "sale_starts_at"),
        ({"sale_starts_at": START, "sale_ends_at": START}, "sale_ends_at"),
    ],
)
def test_invalid_specs_name_the_field_and_write_nothing(
    real_engine: Engine, db: sa.Engine, change: dict[str, object], field: str
) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        put_product(real_engine, db, spec(**change))

    assert list_products(db) == []
    assert real_engine.product_ids() == []


def test_window_in_another_timezone_is_stored_as_utc(real_engine: Engine, db: sa.Engine) -> None:
    paris = timezone(timedelta(hours=1))
    product, _ = put_product(real_engine, db, spec(sale_starts_at=datetime(2030, 1, 1, 13, tzinfo=paris)))

    assert product.sale_starts_at == START
    assert product.sale_starts_at is not None
    assert product.sale_starts_at.utcoffset() == timedelta(0)


def test_list_products_is_ordered_by_id(real_engine: Engine, db: sa.Engine) -> None:
    for product_id in (9, 2, 5):
        put_product(real_engine, db, spec(id=product_id))

    assert [p.id for p in list_products(db)] == [2, 5, 9]
    assert get_product(db, 4) is None
