from __future__ import annotations

import contextlib
import json

import pytest
from click.testing import Result

from flashsale import demo_sale
from persistence.catalog import get_product
from tests.support.catalog import CHANGE, LAMP, NEW, SetStockFault, Stores, catalog_refuses_writes, stores
from tests.support.cli import Operator

SNEAKER = ("--name", "Sneaker", "--price-cents", "12900", "--stock", "10")


def test_product_set_creates_the_product_in_the_database_and_the_engine(operator: Operator) -> None:
    result = operator.run("product", "set", "7", *SNEAKER, "--max-per-customer", "2", "--json")

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body == {
        "id": 7,
        "name": "Sneaker",
        "price_cents": 12900,
        "stock": 10,
        "available": 10,
        "max_per_customer": 2,
        "sale_starts_at": None,
        "sale_ends_at": None,
        "created": True,
    }
    saved = get_product(operator.db, 7)
    assert saved is not None
    assert saved.stock == 10
    assert operator.engine.snapshot(7).total == 10


def test_product_set_updates_and_says_so(operator: Operator) -> None:
    operator.run("product", "set", "7", *SNEAKER)

    result = operator.run("product", "set", "7", "--name", "Sneaker", "--price-cents", "100", "--stock", "20")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("updated product 7 'Sneaker': stock 20, available 20, price 100 cents")


def test_product_set_refuses_a_stock_below_what_is_committed(operator: Operator) -> None:
    operator.run("product", "set", "7", *SNEAKER)
    operator.engine.reserve(7, 4)

    result = operator.run("product", "set", "7", "--name", "Sneaker", "--price-cents", "12900", "--stock", "3")

    assert result.exit_code == 1
    assert "stock_below_committed" in result.stderr
    assert operator.engine.snapshot(7).total == 10
    saved = get_product(operator.db, 7)
    assert saved is not None
    assert saved.stock == 10


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--starts-at", "tomorrow"), "RFC 3339"),
        (("--starts-at", "1970-01-01T00:00:00Z"), "years 2000 to 2999"),
        (("--starts-at", "2030-01-01 00:00:00Z"), "RFC 3339"),
        (("--starts-at", "2030-01-02T00:00:00Z", "--ends-at", "2030-01-01T00:00:00Z"), "sale_ends_at"),
        (("--name", "   "), "name"),
    ],
)
def test_product_set_refuses_what_the_admin_endpoint_refuses(
    operator: Operator, extra: tuple[str, ...], message: str
) -> None:
    result = operator.run("product", "set", "7", *SNEAKER, *extra)

    assert result.exit_code == 2
    assert message in result.output
    assert get_product(operator.db, 7) is None
    assert operator.engine.product_ids() == []


def test_product_set_keeps_the_sale_window_in_utc(operator: Operator) -> None:
    window = ("--starts-at", "2030-01-01T01:00:00+01:00", "--ends-at", "2030-01-02T00:00:00Z")

    result = operator.run("product", "set", "7", *SNEAKER, *window)

    assert result.exit_code == 0, result.output
    listed = json.loads(operator.run("product", "list", "--json").stdout)
    assert listed[0]["sale_starts_at"] == "2030-01-01T00:00:00.000Z"
    assert listed[0]["sale_ends_at"] == "2030-01-02T00:00:00.000Z"


def test_seed_loads_the_demo_catalog_and_list_shows_it_live(operator: Operator) -> None:
    result = operator.run("seed", "--json")

    assert result.exit_code == 0, result.output
    assert [p["id"] for p in json.loads(result.stdout)["products"]] == [p.id for p in demo_sale.CATALOG]
    operator.engine.reserve(1, 2)
    listed = {row["id"]: row for row in json.loads(operator.run("product", "list", "--json").stdout)}
    assert listed[1]["available"] == demo_sale.CATALOG[0].stock - 2
    assert listed[1]["held"] == 2
    table = operator.run("product", "list").stdout
    assert demo_sale.CATALOG[0].name in table


def test_product_list_points_to_the_rebuild_when_redis_lost_a_product(operator: Operator) -> None:
    operator.run("seed")
    operator.redis.flushdb()

    result = operator.run("product", "list")

    assert result.exit_code == 0
    assert "not in Redis" in result.stdout
    assert "flashsale reconcile --rebuild-all" in result.stdout


def test_product_commands_exit_2_with_one_line_when_redis_is_down(
    operator: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASHSALE_REDIS_URL", "redis://127.0.0.1:1/0")

    result = operator.run("product", "set", "7", *SNEAKER)

    assert result.exit_code == 2
    assert "Redis at 127.0.0.1:1 is unavailable" in result.stderr
    assert "Traceback" not in result.output


def _set(operator: Operator, values: dict[str, object]) -> Result:
    args = ["--name", str(values["name"]), "--price-cents", str(values["price_cents"]), "--stock", str(values["stock"])]
    return operator.run("product", "set", "3", *args, "--max-per-customer", "2", "--json")


@pytest.fixture(params=["new", "existing"])
def before(request: pytest.FixtureRequest, operator: Operator) -> Stores:
    if request.param == "existing":
        assert _set(operator, LAMP).exit_code == 0
    return stores(operator.engine, operator.db)


@pytest.mark.parametrize(
    ("step", "exit_code", "says"),
    [
        ("catalog_refuses", 2, "catalog_write_failed: product 3: the catalog could not be written"),
        ("engine_refuses", 1, "stock_below_committed"),
        ("engine_lost_the_call", 2, "is unavailable"),
    ],
)
def test_product_set_failing_at_any_step_says_why_and_changes_neither_store(
    operator: Operator, monkeypatch: pytest.MonkeyPatch, before: Stores, step: str, exit_code: int, says: str
) -> None:
    values = {**LAMP, **CHANGE}
    if step == "engine_refuses":
        if before == (None, None):  # the engine already sells it, without a catalog row
            operator.engine.set_stock(3, 10, price_cents=1999)
            before = (None, (10, 1999))
        SetStockFault(monkeypatch, "refuses")
        values["stock"] = 5
    elif step == "engine_lost_the_call":
        SetStockFault(monkeypatch, "lost_before")

    with catalog_refuses_writes(operator.db) if step == "catalog_refuses" else contextlib.nullcontext():
        result = _set(operator, values)

    assert result.exit_code == exit_code, result.output
    assert says in result.stderr
    assert "Traceback" not in result.output
    assert stores(operator.engine, operator.db) == before


def test_product_set_whose_engine_answer_was_lost_is_kept_in_both_stores(
    operator: Operator, monkeypatch: pytest.MonkeyPatch, before: Stores
) -> None:
    SetStockFault(monkeypatch, "lost_after")

    result = _set(operator, {**LAMP, **CHANGE})

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["created"] is (before == (None, None))
    assert stores(operator.engine, operator.db) == NEW


def test_product_set_of_a_new_product_whose_engine_went_down_says_so_and_converges_when_run_again(
    operator: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault = SetStockFault(monkeypatch, "down")

    result = _set(operator, {**LAMP, **CHANGE})

    assert result.exit_code == 2, result.output
    assert "product_put_incomplete: product 3: the engine did not answer" in result.stderr
    fault.heal()
    assert stores(operator.engine, operator.db) == (("Big lamp", 20, 2999), None)
    assert _set(operator, {**LAMP, **CHANGE}).exit_code == 0
    assert stores(operator.engine, operator.db) == NEW


def test_product_set_without_a_waiting_room_option_keeps_an_open_room_its_settings_and_tickets(
    operator: Operator,
) -> None:
    opened = operator.run(
        "product", "set", "7", *SNEAKER, "--waiting-room", "--admit-per-second", "5", "--admission-ttl-seconds", "30"
    )
    assert opened.exit_code == 0, opened.output
    ticket = operator.engine.queue_join(7)

    result = operator.run("product", "set", "7", "--name", "Sneaker", "--price-cents", "12900", "--stock", "20")

    assert result.exit_code == 0, result.output
    snap = operator.engine.snapshot(7)
    assert (snap.total, snap.waiting_room, snap.admit_per_second, snap.admission_ttl_ms) == (20, True, 5, 30_000)
    assert operator.engine.queue_poll(ticket.ticket).ticket == ticket.ticket
    saved = get_product(operator.db, 7)
    assert saved is not None
    assert (saved.stock, saved.waiting_room, saved.admit_per_second, saved.admission_ttl_seconds) == (20, True, 5, 30)


def test_product_set_no_waiting_room_closes_the_room(operator: Operator) -> None:
    operator.run("product", "set", "7", *SNEAKER, "--waiting-room")

    result = operator.run("product", "set", "7", *SNEAKER, "--no-waiting-room")

    assert result.exit_code == 0, result.output
    assert operator.engine.snapshot(7).waiting_room is False
    saved = get_product(operator.db, 7)
    assert saved is not None
    assert saved.waiting_room is False


def test_product_set_of_a_new_product_opens_no_waiting_room_unless_asked(operator: Operator) -> None:
    result = operator.run("product", "set", "7", *SNEAKER)

    assert result.exit_code == 0, result.output
    assert operator.engine.snapshot(7).waiting_room is False


def test_product_set_refuses_room_settings_without_the_room(operator: Operator) -> None:
    result = operator.run("product", "set", "7", *SNEAKER, "--admit-per-second", "5")

    assert result.exit_code == 2
    assert "--waiting-room" in result.stderr
    assert get_product(operator.db, 7) is None
