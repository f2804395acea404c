"""Failures injected into a product put, one step at a time: the catalog write, the engine, the commit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import pytest
import sqlalchemy as sa

from engine import Engine
from engine.exceptions import EngineUnavailable
from persistence.catalog import get_product

# Product 3 as the failing puts find it (OLD, or in neither store), and the change they ask for.
LAMP = {"name": "Lamp", "price_cents": 1999, "stock": 10, "max_per_customer": 2}
CHANGE = {"name": "Big lamp", "price_cents": 2999, "stock": 20}
Stores = tuple[tuple[str, int, int] | None, tuple[int, int] | None]
OLD: Stores = (("Lamp", 10, 1999), (10, 1999))
NEW: Stores = (("Big lamp", 20, 2999), (20, 2999))


def stores(engine: Engine, db: sa.Engine, product_id: int = 3) -> Stores:
    """(name, stock, price) in the catalog and (total, price) in the engine, None where a store lacks it."""
    row = get_product(db, product_id)
    snap = engine.snapshot(product_id) if product_id in engine.product_ids() else None
    return (
        (row.name, row.stock, row.price_cents) if row else None,
        (snap.total, snap.price_cents) if snap else None,
    )


_PG_REFUSE = [
    "CREATE FUNCTION test_refuse_product_write() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'injected: the catalog refuses writes'; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER test_refuse_product_write BEFORE INSERT OR UPDATE ON products "
    "FOR EACH ROW EXECUTE FUNCTION test_refuse_product_write()",
]
_PG_ALLOW = [
    "DROP TRIGGER IF EXISTS test_refuse_product_write ON products",
    "DROP FUNCTION IF EXISTS test_refuse_product_write()",
]
_SQLITE_REFUSE = [
    f"CREATE TRIGGER test_refuse_product_{event.lower()} BEFORE {event} ON products "
    "BEGIN SELECT RAISE(ABORT, 'injected: the catalog refuses writes'); END"
    for event in ("INSERT", "UPDATE")
]
_SQLITE_ALLOW = [f"DROP TRIGGER IF EXISTS test_refuse_product_{event}" for event in ("insert", "update")]


def _run(db: sa.Engine, statements: list[str]) -> None:
    with db.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement))


@contextmanager
def catalog_refuses_writes(db: sa.Engine) -> Iterator[None]:
    """The database itself refuses every insert and update of a product row (a trigger), for every process."""
    postgres = db.dialect.name == "postgresql"
    _run(db, _PG_REFUSE if postgres else _SQLITE_REFUSE)
    try:
        yield
    finally:
        _run(db, _PG_ALLOW if postgres else _SQLITE_ALLOW)


EngineFault = Literal["refuses", "lost_before", "lost_after", "down"]


class SetStockFault:
    """Every engine's ``set_stock`` (the API's and the CLI's included) fails once, as ``fault`` says:

    - refuses: a buyer holds 6 units just before it runs, so the engine refuses a lower stock;
    - lost_before: Redis never got the call (EngineUnavailable);
    - lost_after: Redis applied it, and the answer was lost (EngineUnavailable);
    - down: Redis went down before the call, and answers nothing more until ``heal()``.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fault: EngineFault) -> None:
        self.fault = fault
        self.failed = False
        self.down = False
        real_set_stock, real_snapshot = Engine.set_stock, Engine.snapshot

        def set_stock(engine: Engine, product_id: int, total: int, **settings: Any) -> Any:
            if self.failed:
                return real_set_stock(engine, product_id, total, **settings)
            self.failed = True
            if fault == "refuses":
                engine.reserve(product_id, 6)  # no customer: no per-customer limit
                return real_set_stock(engine, product_id, total, **settings)
            if fault == "lost_after":
                real_set_stock(engine, product_id, total, **settings)
            self.down = fault == "down"
            raise EngineUnavailable("Redis is unavailable: injected")

        def snapshot(engine: Engine, product_id: int) -> Any:
            if self.down:
                raise EngineUnavailable("Redis is unavailable: injected")
            return real_snapshot(engine, product_id)

        monkeypatch.setattr(Engine, "set_stock", set_stock)
        monkeypatch.setattr(Engine, "snapshot", snapshot)

    def heal(self) -> None:
        self.down = False


def fail_commit(monkeypatch: pytest.MonkeyPatch, db: sa.Engine, *, after_committing: bool = False) -> list[int]:
    """The next commit on ``db`` fails (after the server committed it, with ``after_committing``).

    Returns a list that counts the failed commits."""
    real = db.dialect.do_commit
    failed: list[int] = []

    def do_commit(dbapi_connection: Any) -> None:
        if failed:
            real(dbapi_connection)
            return
        failed.append(1)
        if after_committing:
            real(dbapi_connection)
        else:
            dbapi_connection.rollback()
        raise db.dialect.loaded_dbapi.OperationalError("injected: the connection dropped at commit")

    monkeypatch.setattr(db.dialect, "do_commit", do_commit)
    return failed
