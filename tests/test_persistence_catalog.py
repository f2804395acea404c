"""The catalog: put_product is the one way to create or change a product, in both stores or in neither."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import redis
import sqlalchemy as sa

from engine import Engine
from engine.exceptions import EngineUnavailable, NotReplicated, StockBelowCommitted
from engine.replication import Acknowledgement
from persistence import catalog
from persistence.catalog import ProductSpec, get_product, list_products, put_product
from persistence.exceptions import CatalogWriteFailed, ProductPutIncomplete
from tests.support.catalog import CHANGE, NEW, SetStockFault, Stores, catalog_refuses_writes, fail_commit, stores
from tests.support.replicas import replica_pair

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


def test_a_put_that_leaves_the_waiting_room_as_it_is_keeps_the_rows_room(real_engine: Engine, db: sa.Engine) -> None:
    put_product(real_engine, db, spec(waiting_room=True, admit_per_second=7, admission_ttl_seconds=20))

    product, _ = put_product(real_engine, db, spec(stock=60, waiting_room=None, admit_per_second=1))

    assert (product.stock, product.waiting_room, product.admit_per_second, product.admission_ttl_seconds) == (
        60,
        True,
        7,
        20,
    )
    snap = real_engine.snapshot(3)
    assert (snap.total, snap.waiting_room, snap.admit_per_second, snap.admission_ttl_ms) == (60, True, 7, 20_000)


def test_a_new_product_that_leaves_the_waiting_room_as_it_is_has_none(real_engine: Engine, db: sa.Engine) -> None:
    product, _ = put_product(real_engine, db, spec(waiting_room=None))

    assert product.waiting_room is False
    assert real_engine.snapshot(3).waiting_room is False


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
        ({"name": "Lamp\x00"}, "name"),
        ({"name": "Lamp\n2"}, "name"),
        ({"name": "\ud800"}, "name"),
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


# A put that fails at any step leaves both stores as they were: product 3 is either new (in neither store)
# or existing (OLD in both), and the failing put asks for CHANGE (NEW in both once it succeeds).


@pytest.fixture(params=["new", "existing"])
def before(request: pytest.FixtureRequest, real_engine: Engine, db: sa.Engine) -> Stores:
    if request.param == "existing":
        put_product(real_engine, db, spec(stock=10))
    return stores(real_engine, db)


def test_a_catalog_write_the_database_refuses_changes_neither_store(
    real_engine: Engine, db: sa.Engine, before: Stores
) -> None:
    with catalog_refuses_writes(db), pytest.raises(CatalogWriteFailed) as error:
        put_product(real_engine, db, spec(**CHANGE))

    assert (error.value.code, error.value.product_id) == ("catalog_write_failed", 3)
    assert "injected" in error.value.reason
    assert stores(real_engine, db) == before


def test_a_commit_that_fails_after_the_engine_took_the_change_sets_the_engine_back(
    real_engine: Engine, db: sa.Engine, monkeypatch: pytest.MonkeyPatch, before: Stores
) -> None:
    failed = fail_commit(monkeypatch, db)

    with pytest.raises(CatalogWriteFailed):
        put_product(real_engine, db, spec(**CHANGE))

    assert failed == [1]
    assert stores(real_engine, db) == before


def test_a_commit_that_went_through_despite_its_error_is_kept_in_both(
    real_engine: Engine, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_product(real_engine, db, spec(stock=10))
    fail_commit(monkeypatch, db, after_committing=True)

    product, created = put_product(real_engine, db, spec(**CHANGE))

    assert (product.stock, created) == (20, False)
    assert stores(real_engine, db) == NEW


def test_an_engine_refusal_after_the_catalog_write_changes_neither_store(
    real_engine: Engine, db: sa.Engine, monkeypatch: pytest.MonkeyPatch, before: Stores
) -> None:
    # A buyer takes 6 units between the check and the engine's change. For the new product, the engine
    # already sells it (a catalog row lost earlier): the catalog row the put created is removed again.
    if before == (None, None):
        real_engine.set_stock(3, 10, price_cents=1999)
        before = (None, (10, 1999))
    SetStockFault(monkeypatch, "refuses")

    with pytest.raises(StockBelowCommitted):
        put_product(real_engine, db, spec(**{**CHANGE, "stock": 5}))

    assert stores(real_engine, db) == before
    assert real_engine.snapshot(3).held == 6


def test_a_call_redis_never_got_changes_neither_store(
    real_engine: Engine, db: sa.Engine, monkeypatch: pytest.MonkeyPatch, before: Stores
) -> None:
    SetStockFault(monkeypatch, "lost_before")

    with pytest.raises(EngineUnavailable):
        put_product(real_engine, db, spec(**CHANGE))

    assert stores(real_engine, db) == before


def test_a_change_redis_applied_but_whose_answer_was_lost_is_kept_in_both(
    real_engine: Engine, db: sa.Engine, monkeypatch: pytest.MonkeyPatch, before: Stores
) -> None:
    SetStockFault(monkeypatch, "lost_after")

    product, created = put_product(real_engine, db, spec(**CHANGE))

    assert (product.stock, created) == (20, before == (None, None))
    assert stores(real_engine, db) == NEW


def test_redis_down_after_the_catalog_write_never_sells_a_product_the_catalog_lacks(
    real_engine: Engine, db: sa.Engine, monkeypatch: pytest.MonkeyPatch, before: Stores
) -> None:
    fault = SetStockFault(monkeypatch, "down")

    if before == (None, None):
        # Nobody can tell whether the engine took the new product: the catalog keeps its row (not on sale
        # while the engine lacks it), and says so.
        with pytest.raises(ProductPutIncomplete) as incomplete:
            put_product(real_engine, db, spec(**CHANGE))
        assert incomplete.value.code == "product_put_incomplete"
        fault.heal()
        assert stores(real_engine, db) == (("Big lamp", 20, 2999), None)
    else:
        with pytest.raises(EngineUnavailable):
            put_product(real_engine, db, spec(**CHANGE))
        fault.heal()
        assert stores(real_engine, db) == before

    # Putting it again, Redis back, makes both agree
    put_product(real_engine, db, spec(**CHANGE))
    assert stores(real_engine, db) == NEW


def test_a_put_that_another_put_overtakes_writes_its_own_values_to_both(
    real_engine: Engine, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_product(real_engine, db, spec(stock=10))
    read_row = catalog._read_row
    overtaken: list[int] = []

    def read_then_overtaken(db_: sa.Engine, product_id: int) -> object:
        row = read_row(db_, product_id)
        if not overtaken:
            overtaken.append(1)
            put_product(real_engine, db, spec(name="Other", stock=30))  # changes the row this put just read
        return row

    monkeypatch.setattr(catalog, "_read_row", read_then_overtaken)

    product, _ = put_product(real_engine, db, spec(**CHANGE))

    assert overtaken == [1]
    assert stores(real_engine, db) == NEW
    assert product.stock == 20


def test_a_change_the_replicas_did_not_confirm_is_kept_in_both_and_answered_not_replicated(db: sa.Engine) -> None:
    with replica_pair() as pair:
        client = redis.Redis(port=pair.primary.port)
        # A healthy replica confirms as soon as it has the write: the patient engine waits for it however busy the
        # machine; the held replica never confirms, so how long the other waits only decides when it gives up.
        patient = Engine(client, ack=Acknowledgement(1, 30_000))
        engine = Engine(client, ack=Acknowledgement(1, 200))
        put_product(patient, db, spec(name="Lamp", stock=10))
        pair.link.hold()  # the replica stops hearing from the primary

        with pytest.raises(NotReplicated) as refused:
            put_product(engine, db, spec(**CHANGE))

        # The primary took it and the catalog keeps it: the stores agree, but a failover now could take it
        # from Redis, so the put is not acknowledged. Putting it again, replicated, answers it.
        assert refused.value.code == "not_replicated"
        assert stores(engine, db) == NEW
        pair.link.release()
        product, created = put_product(patient, db, spec(**CHANGE))
        assert (product.stock, created) == (20, False)
        assert stores(engine, db) == NEW
        client.close()
