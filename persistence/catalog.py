"""The catalog: products on sale. PostgreSQL keeps it; the engine's Redis state is loaded from it.

``put_product`` is the one place a product is created or changed, for the admin API and the CLI alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from engine import Engine
from engine.calls import MAX_PRICE_CENTS as MAX_PRICE_CENTS  # keeps an order amount exact in Lua
from engine.ids import MAX_PRODUCT_ID
from persistence.models import NAME_LENGTH, products
from persistence.times import opt_to_ms
from persistence.upsert import insert

MAX_STOCK = 10**12
MAX_PER_CUSTOMER = 10**9


@dataclass(frozen=True)
class Product:
    id: int
    name: str
    price_cents: int
    stock: int
    max_per_customer: int
    sale_starts_at: datetime | None
    sale_ends_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ProductSpec:
    """What an operator sets; ``max_per_customer`` 0 means no limit, a missing window bound means open."""

    id: int
    name: str
    price_cents: int
    stock: int
    max_per_customer: int = 0
    sale_starts_at: datetime | None = None
    sale_ends_at: datetime | None = None


def _integer(spec: ProductSpec, field: str, low: int, high: int) -> int:
    value = getattr(spec, field)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{field}: must be an integer from {low} to {high}, got {value!r}")
    return value


def _moment(spec: ProductSpec, field: str) -> datetime | None:
    value = getattr(spec, field)
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field}: must be a timezone-aware datetime (UTC), got {value!r}")
    return value.astimezone(UTC)


def validate(spec: ProductSpec) -> ProductSpec:
    """The spec with its name stripped and its window in UTC; ValueError names the first bad field."""
    _integer(spec, "id", 1, MAX_PRODUCT_ID)
    if not isinstance(spec.name, str) or not spec.name.strip() or len(spec.name.strip()) > NAME_LENGTH:
        raise ValueError(f"name: must be a non-empty string of at most {NAME_LENGTH} characters")
    _integer(spec, "price_cents", 0, MAX_PRICE_CENTS)
    _integer(spec, "stock", 0, MAX_STOCK)
    _integer(spec, "max_per_customer", 0, MAX_PER_CUSTOMER)
    starts, ends = _moment(spec, "sale_starts_at"), _moment(spec, "sale_ends_at")
    if starts is not None and ends is not None and ends <= starts:
        raise ValueError("sale_ends_at: must be after sale_starts_at")
    return ProductSpec(spec.id, spec.name.strip(), spec.price_cents, spec.stock, spec.max_per_customer, starts, ends)


def _product(m: sa.RowMapping) -> Product:
    return Product(
        id=m["id"],
        name=m["name"],
        price_cents=m["price_cents"],
        stock=m["stock"],
        max_per_customer=m["max_per_customer"],
        sale_starts_at=m["sale_starts_at"],
        sale_ends_at=m["sale_ends_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def list_products(db: sa.Engine) -> list[Product]:
    with db.connect() as connection:
        return [_product(row) for row in connection.execute(sa.select(products).order_by(products.c.id)).mappings()]


def get_product(db: sa.Engine, product_id: int) -> Product | None:
    with db.connect() as connection:
        row = connection.execute(sa.select(products).where(products.c.id == product_id)).mappings().first()
    return None if row is None else _product(row)


def put_product(engine: Engine, db: sa.Engine, spec: ProductSpec) -> tuple[Product, bool]:
    """Create or change a product; returns it and whether it was created.

    The engine goes first: it refuses a stock below the units already held, pending or sold
    (``StockBelowCommitted``), and then nothing is written anywhere. Should the database write
    fail after that, putting the same spec again converges both.
    """
    spec = validate(spec)
    engine.set_stock(
        spec.id,
        spec.stock,
        price_cents=spec.price_cents,
        max_per_customer=spec.max_per_customer,
        starts_at_ms=opt_to_ms(spec.sale_starts_at),
        ends_at_ms=opt_to_ms(spec.sale_ends_at),
    )
    now = datetime.now(UTC)
    values = {
        "name": spec.name,
        "price_cents": spec.price_cents,
        "stock": spec.stock,
        "max_per_customer": spec.max_per_customer,
        "sale_starts_at": spec.sale_starts_at,
        "sale_ends_at": spec.sale_ends_at,
    }
    with db.begin() as connection:
        statement = insert(connection, products).values(id=spec.id, version=1, created_at=now, updated_at=now, **values)
        statement = statement.on_conflict_do_update(
            index_elements=[products.c.id],
            set_={**values, "updated_at": now, "version": products.c.version + 1},
        ).returning(*products.c)
        row = connection.execute(statement).mappings().one()
    return _product(row), row["version"] == 1
