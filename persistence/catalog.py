"""The catalog: products on sale. PostgreSQL keeps it; the engine's Redis state is loaded from it.

``put_product`` is the one place a product is created or changed, for the admin API and the CLI alike:
both stores change, or neither does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc

from engine import Engine
from engine.exceptions import EngineError, NotReplicated, ProductNotFound, StockBelowCommitted
from engine.ids import MAX_PRODUCT_ID
from engine.product_rules import (
    DEFAULT_ADMISSION_TTL_SECONDS,
    MAX_ADMISSION_TTL_SECONDS,
    MAX_ADMIT_PER_SECOND,
    MAX_PER_CUSTOMER,
    MAX_PRICE_CENTS,
    MAX_STOCK,
    check_name,
    check_sale_window,
)
from engine.types import WaitingRoomSettings
from persistence.exceptions import CatalogWriteFailed, ProductPutIncomplete
from persistence.models import products
from persistence.times import opt_to_ms
from persistence.upsert import insert

PUT_ATTEMPTS = 3
"""Times ``put_product`` reads the row again when another put changed it in between."""


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
    waiting_room: bool = False
    admit_per_second: int | None = None
    admission_ttl_seconds: int = DEFAULT_ADMISSION_TTL_SECONDS
    low_stock_threshold: int = 0


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
    waiting_room: bool | None = False
    """Holds need an admission from the product's waiting room (docs/waiting-room.md). None: the room stays as the
    catalog has it, on or off, with its rate and TTL (``admit_per_second`` and ``admission_ttl_seconds`` are then
    ignored); a new product has none."""
    admit_per_second: int | None = None
    admission_ttl_seconds: int = DEFAULT_ADMISSION_TTL_SECONDS
    low_stock_threshold: int = 0
    """Below it (and above 0) the merchant hears ``product.low_stock``; 0: never."""


def room_settings(spec: ProductSpec | Product) -> WaitingRoomSettings | None:
    """The engine's waiting room for a product, or None when it has none."""
    if not spec.waiting_room:
        return None
    return WaitingRoomSettings(spec.admit_per_second, spec.admission_ttl_seconds * 1000)


def _integer(spec: ProductSpec, field: str, low: int, high: int) -> int:
    value = getattr(spec, field)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{field}: must be an integer from {low} to {high}, got {value!r}")
    return value


def validate(spec: ProductSpec) -> ProductSpec:
    """The spec with its name stripped and its window in UTC; ValueError names the first bad field
    (``engine.product_rules`` holds the rules)."""
    _integer(spec, "id", 1, MAX_PRODUCT_ID)
    name = check_name(spec.name)
    _integer(spec, "price_cents", 0, MAX_PRICE_CENTS)
    _integer(spec, "stock", 0, MAX_STOCK)
    _integer(spec, "max_per_customer", 0, MAX_PER_CUSTOMER)
    _integer(spec, "low_stock_threshold", 0, MAX_STOCK)
    starts, ends = check_sale_window(spec.sale_starts_at, spec.sale_ends_at)
    if spec.waiting_room is not None and not isinstance(spec.waiting_room, bool):
        raise ValueError(f"waiting_room: must be true, false or None, got {spec.waiting_room!r}")
    if spec.admit_per_second is not None:
        _integer(spec, "admit_per_second", 1, MAX_ADMIT_PER_SECOND)
    _integer(spec, "admission_ttl_seconds", 1, MAX_ADMISSION_TTL_SECONDS)
    return ProductSpec(
        spec.id,
        name,
        spec.price_cents,
        spec.stock,
        spec.max_per_customer,
        starts,
        ends,
        spec.waiting_room,
        spec.admit_per_second,
        spec.admission_ttl_seconds,
        spec.low_stock_threshold,
    )


def product_from_row(m: sa.RowMapping) -> Product:
    """A ``products`` row as the catalog's ``Product`` (a rebuild reads it too)."""
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
        waiting_room=m["waiting_room"],
        admit_per_second=m["admit_per_second"],
        admission_ttl_seconds=m["admission_ttl_seconds"],
        low_stock_threshold=m["low_stock_threshold"],
    )


def list_products(db: sa.Engine) -> list[Product]:
    with db.connect() as connection:
        return [
            product_from_row(row) for row in connection.execute(sa.select(products).order_by(products.c.id)).mappings()
        ]


def get_product(db: sa.Engine, product_id: int) -> Product | None:
    with db.connect() as connection:
        row = connection.execute(sa.select(products).where(products.c.id == product_id)).mappings().first()
    return None if row is None else product_from_row(row)


def _values(spec: ProductSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "price_cents": spec.price_cents,
        "stock": spec.stock,
        "max_per_customer": spec.max_per_customer,
        "sale_starts_at": spec.sale_starts_at,
        "sale_ends_at": spec.sale_ends_at,
        "waiting_room": spec.waiting_room,
        "admit_per_second": spec.admit_per_second,
        "admission_ttl_seconds": spec.admission_ttl_seconds,
        "low_stock_threshold": spec.low_stock_threshold,
    }


def _set_engine(engine: Engine, settings: ProductSpec | Product) -> None:
    engine.set_stock(
        settings.id,
        settings.stock,
        price_cents=settings.price_cents,
        max_per_customer=settings.max_per_customer,
        starts_at_ms=opt_to_ms(settings.sale_starts_at),
        ends_at_ms=opt_to_ms(settings.sale_ends_at),
        waiting_room=room_settings(settings),
        low_stock_threshold=settings.low_stock_threshold,
    )


def _room_kept(spec: ProductSpec, previous: sa.RowMapping | None) -> ProductSpec:
    """The spec with its waiting room resolved: a spec that leaves it as it is takes the catalog row's."""
    if spec.waiting_room is not None:
        return spec
    if previous is None:
        return replace(spec, waiting_room=False)
    return replace(
        spec,
        waiting_room=previous["waiting_room"],
        admit_per_second=previous["admit_per_second"],
        admission_ttl_seconds=previous["admission_ttl_seconds"],
    )


def _engine_accepts(engine: Engine, spec: ProductSpec) -> None:
    """Refuse before anything is written: a stock below the units held, pending or sold (``StockBelowCommitted``);
    ``EngineUnavailable`` when Redis does not answer."""
    try:
        snap = engine.snapshot(spec.id)
    except ProductNotFound:
        return
    committed = snap.held + snap.pending + snap.sold
    if spec.stock < committed:
        raise StockBelowCommitted(spec.id, spec.stock, committed)


def _engine_took(engine: Engine, spec: ProductSpec) -> bool | None:
    """After a failed call: does the engine hold ``spec``'s settings? None when it cannot say."""
    try:
        snap = engine.snapshot(spec.id)
    except ProductNotFound:
        return False
    except EngineError:
        return None
    room = room_settings(spec)
    return (
        snap.total,
        snap.price_cents,
        snap.max_per_customer,
        snap.starts_at_ms,
        snap.ends_at_ms,
        snap.waiting_room,
        snap.admit_per_second,
        snap.admission_ttl_ms,
    ) == (
        spec.stock,
        spec.price_cents,
        spec.max_per_customer,
        opt_to_ms(spec.sale_starts_at),
        opt_to_ms(spec.sale_ends_at),
        room is not None,
        room.admit_per_second if room else None,
        room.admission_ttl_ms if room else None,
    )


@contextmanager
def _catalog_step(product_id: int) -> Iterator[None]:
    """Any database error while the catalog is written: nothing changed (the engine is not touched yet)."""
    try:
        yield
    except sa.exc.SQLAlchemyError as error:
        raise CatalogWriteFailed(product_id, _reason(error)) from error


def _reason(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {first[:200]}" if first else type(cause).__name__


def _read_row(db: sa.Engine, product_id: int) -> sa.RowMapping | None:
    with db.connect() as connection:
        return connection.execute(sa.select(products).where(products.c.id == product_id)).mappings().first()


def _insert_row(db: sa.Engine, spec: ProductSpec) -> sa.RowMapping | None:
    """Create the row, committed; None when another put created it first."""
    now = datetime.now(UTC)
    with db.begin() as connection:
        statement = insert(connection, products).values(
            id=spec.id, version=1, created_at=now, updated_at=now, **_values(spec)
        )
        return connection.execute(statement.on_conflict_do_nothing().returning(*products.c)).mappings().first()


def _lock_row(
    connection: sa.Connection, spec: ProductSpec, previous: sa.RowMapping, fresh: bool
) -> sa.RowMapping | None:
    """Write the spec into the row read as ``previous`` (a fresh row already holds it: rewrite its version only,
    to take the lock). The lock is held until the transaction ends; None if another put changed the row."""
    changes: dict[str, Any] = {"version": products.c.version}
    if not fresh:
        changes = {**_values(spec), "updated_at": datetime.now(UTC), "version": products.c.version + 1}
    statement = (
        sa.update(products)
        .where(products.c.id == spec.id, products.c.version == previous["version"])
        .values(**changes)
        .returning(*products.c)
    )
    return connection.execute(statement).mappings().first()


def _row_version(db: sa.Engine, product_id: int) -> int | None:
    """The row's version as committed; None when the database cannot say (or there is no row)."""
    try:
        row = _read_row(db, product_id)
    except sa.exc.SQLAlchemyError:
        return None
    return None if row is None else int(row["version"])


def _finish(transaction: sa.Transaction, commit: bool) -> None:
    try:
        transaction.commit() if commit else transaction.rollback()
    except sa.exc.SQLAlchemyError:
        if commit:
            raise
        # A rollback that fails leaves nothing behind: the server drops the transaction with its connection.


def _put_locked(
    engine: Engine, db: sa.Engine, spec: ProductSpec, previous: sa.RowMapping, *, fresh: bool
) -> sa.RowMapping | None:
    """Change the engine while the catalog row is written and locked; None if another put changed the row first.

    ``fresh``: this put has just created the row (committed), so that the engine never sells a product the
    catalog lacks. On an engine failure the row is deleted again (fresh) or the transaction rolled back.
    """
    with _catalog_step(spec.id):
        connection = db.connect()
    try:
        with _catalog_step(spec.id):
            transaction = connection.begin()
            row = _lock_row(connection, spec, previous, fresh)
        if row is None:
            _finish(transaction, commit=False)
            return None
        try:
            _set_engine(engine, spec)
        except Exception as error:
            # A refusal changed nothing; an engine that did not answer may have taken the change or not.
            took = False if isinstance(error, StockBelowCommitted) else _engine_took(engine, spec)
            if took:
                _commit_after_engine(engine, db, transaction, spec, previous, row, fresh)
                if isinstance(error, NotReplicated):
                    # Both stores took it, but the replicas did not confirm it in time: a failover now could
                    # take it from Redis, so it is not acknowledged. Putting it again completes it.
                    raise
                return row
            if took is None and fresh:
                _finish(transaction, commit=False)
                raise ProductPutIncomplete(
                    spec.id,
                    "the engine did not answer: the catalog keeps the new product, on sale only if the engine took it",
                ) from error
            if fresh:
                _delete_fresh_row(connection, transaction, spec.id, row)
            else:
                _finish(transaction, commit=False)
            raise
        _commit_after_engine(engine, db, transaction, spec, previous, row, fresh)
        return row
    finally:
        connection.close()


def _delete_fresh_row(
    connection: sa.Connection, transaction: sa.Transaction, product_id: int, row: sa.RowMapping
) -> None:
    try:
        connection.execute(sa.delete(products).where(products.c.id == product_id, products.c.version == row["version"]))
        transaction.commit()
    except sa.exc.SQLAlchemyError as error:
        raise ProductPutIncomplete(
            product_id, "the engine did not take the new product and its catalog row could not be removed: not on sale"
        ) from error


def _commit_after_engine(
    engine: Engine,
    db: sa.Engine,
    transaction: sa.Transaction,
    spec: ProductSpec,
    previous: sa.RowMapping,
    row: sa.RowMapping,
    fresh: bool,
) -> None:
    """Commit the row the engine now agrees with; if the commit fails, set the engine back to the catalog."""
    try:
        transaction.commit()
        return
    except sa.exc.SQLAlchemyError as error:
        if fresh or _row_version(db, spec.id) == row["version"]:
            return  # a fresh row was committed already; or the commit went through despite the error
        failure = error
    try:
        _set_engine(engine, product_from_row(previous))
    except Exception as error:
        raise ProductPutIncomplete(
            spec.id,
            "the engine took the change, the catalog could not be written, and the engine could not be set back",
        ) from error
    raise CatalogWriteFailed(spec.id, _reason(failure)) from failure


def put_product(engine: Engine, db: sa.Engine, spec: ProductSpec) -> tuple[Product, bool]:
    """Create or change a product in the catalog and the engine, all or nothing; returns it and whether it was new.

    Everything is checked first (``ValueError``; ``StockBelowCommitted`` for a stock below the units held,
    pending or sold; ``EngineUnavailable``). Then the catalog row is written and locked, the engine changed,
    and the row committed. A database failure before the engine is touched: ``CatalogWriteFailed``, nothing
    changed. The engine refuses or does not answer: the row is rolled back (a new product's row, committed
    first so that the engine never sells a product the catalog lacks, is deleted), and its error raised.
    The commit fails after the engine took the change: the engine is set back, ``CatalogWriteFailed``.
    Whatever cannot be undone raises ``ProductPutIncomplete``; putting the same spec again converges both.
    A spec whose ``waiting_room`` is None keeps the room the row has when it is written.
    """
    spec = validate(spec)
    _engine_accepts(engine, spec)
    created = False
    for _ in range(PUT_ATTEMPTS):
        with _catalog_step(spec.id):
            previous = _read_row(db, spec.id)
            fresh = previous is None
            target = _room_kept(spec, previous)  # the row's version check makes keeping its room atomic
            if previous is None:
                previous = _insert_row(db, target)
                if previous is None:
                    continue  # another put created it first: change that row
                created = True
        saved = _put_locked(engine, db, target, previous, fresh=fresh)
        if saved is not None:
            return product_from_row(saved), created
    raise CatalogWriteFailed(spec.id, f"other puts changed it {PUT_ATTEMPTS} times in a row")
