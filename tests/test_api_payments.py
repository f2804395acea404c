"""POST /api/payments/webhook: signatures, outcomes, logs, and orders Redis no longer keeps."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
import redis
import sqlalchemy as sa
from starlette.applications import Starlette
from structlog.testing import capture_logs

from api.app import create_app
from engine import Engine
from engine.keys import CLAIMS_COMPLETE_KEY, product_keys
from persistence.catalog import ProductSpec, put_product
from persistence.order_reads import get_payment, payments_by_transaction
from persistence.order_writes import apply_events
from reconciliation.repair import rebuild_all
from shared import signing
from tests.support.api import WEBHOOK_SECRET, assert_problem, hold, make_settings, order, serve, signed

pytestmark = pytest.mark.anyio


async def pay(client: httpx.AsyncClient, order_id: str, transaction_id: str, status: str = "success") -> Any:
    raw, headers = signed({"order_id": order_id, "transaction_id": transaction_id, "status": status})
    return await client.post("/api/payments/webhook", content=raw, headers=headers)


def _events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def _payments_in_outbox(engine: Engine, product_id: int) -> int:
    return sum(1 for e in engine.read_outbox(product_id) if e.event == "payment")


async def test_success_pays_a_pending_order(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 10, price_cents=700)
    created = await order(client, 1, 2)

    with capture_logs() as logs:
        response = await pay(client, created["order_id"], "txn-1")

    assert response.status_code == 200
    assert response.json() == {
        "order_id": created["order_id"],
        "transaction_id": "txn-1",
        "status": "paid",
        "applied": True,
        "duplicate": False,
        "refund_required": False,
        "revived": False,
    }
    assert engine_sync.snapshot(1).sold == 2
    (logged,) = _events(logs, "payment_success")
    assert (logged["order_id"], logged["transaction_id"], logged["amount_cents"]) == (
        created["order_id"],
        "txn-1",
        1400,
    )
    assert (await client.get(f"/api/orders/{created['order_id']}")).json()["status"] == "paid"


async def test_failure_cancels_the_order_and_returns_the_units(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 3)
    created = await order(client, 1, 3)

    response = await pay(client, created["order_id"], "txn-f", "failed")

    body = response.json()
    assert (body["status"], body["applied"], body["duplicate"]) == ("cancelled", True, False)
    assert engine_sync.snapshot(1).available == 3
    fetched = (await client.get(f"/api/orders/{created['order_id']}")).json()
    assert (fetched["status"], fetched["cancel_reason"]) == ("cancelled", "payment_failed")


async def test_the_same_transaction_again_is_a_logged_duplicate_that_changes_nothing(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 10)
    created = await order(client, 1)
    await pay(client, created["order_id"], "txn-1")
    outbox = len(engine_sync.read_outbox(1))

    with capture_logs() as logs:
        again = await pay(client, created["order_id"], "txn-1")

    body = again.json()
    assert (body["status"], body["duplicate"]) == ("paid", True)
    assert len(engine_sync.read_outbox(1)) == outbox
    assert engine_sync.snapshot(1).sold == 1
    assert _events(logs, "duplicate_webhook_ignored")[0]["transaction_id"] == "txn-1"


async def test_a_new_transaction_on_a_closed_order_is_not_applied_and_warned(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 10)
    created = await order(client, 1)
    await pay(client, created["order_id"], "txn-1")

    with capture_logs() as logs:
        response = await pay(client, created["order_id"], "txn-2", "failed")

    body = response.json()
    assert (body["status"], body["applied"], body["duplicate"]) == ("paid", False, False)
    assert engine_sync.snapshot(1).sold == 1
    (warning,) = _events(logs, "payment_not_applied")
    assert warning["log_level"] == "warning"
    assert _payments_in_outbox(engine_sync, 1) == 2  # the refused payment is recorded too


async def test_success_for_an_order_that_expired_unpaid_and_sold_out_requires_a_refund(
    redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine
) -> None:
    engine = Engine(real_redis)
    engine.set_stock(1, 2, price_cents=300)
    settings = make_settings(redis_url, database_url, tmp_path, FLASHSALE_ORDER_TTL_SECONDS="1")
    async with serve(create_app(settings)) as http:
        created = await order(http, 1, 2)
        await asyncio.sleep(1.05)
        engine.reserve(1, 2)  # its units went to someone else: it cannot be revived
        with capture_logs() as logs:
            response = await pay(http, created["order_id"], "late-txn")

    body = response.json()
    assert (body["status"], body["applied"], body["refund_required"]) == ("cancelled", False, True)
    (refund,) = _events(logs, "refund_required")
    assert (refund["order_id"], refund["transaction_id"], refund["amount_cents"]) == (
        created["order_id"],
        "late-txn",
        600,
    )
    assert refund["log_level"] == "warning"
    assert engine.snapshot(1).available == 0


async def test_a_webhook_right_after_the_order_pays_it_before_any_worker_ran(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine
) -> None:
    engine_sync.set_stock(1, 10)
    held = await hold(client, 1)
    # The provider's webhook races the buyer's own order response: both in flight at once.
    ordered = asyncio.create_task(
        client.post("/api/orders", json={"hold_id": held["hold_id"]}, headers={"Idempotency-Key": "buy"})
    )
    await asyncio.sleep(0)
    created = (await ordered).json()
    response = await pay(client, created["order_id"], "txn-fast")

    assert response.json()["status"] == "paid"
    with db.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM orders")).scalar_one() == 0
    assert (await client.get(f"/api/orders/{created['order_id']}")).json()["status"] == "paid"


async def test_fifty_concurrent_deliveries_of_one_transaction_apply_once(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 10)
    created = await order(client, 1)
    raw, headers = signed({"order_id": created["order_id"], "transaction_id": "txn-x", "status": "success"})

    responses = await asyncio.gather(
        *(client.post("/api/payments/webhook", content=raw, headers=headers) for _ in range(50))
    )

    assert Counter(r.json()["duplicate"] for r in responses) == {False: 1, True: 49}
    assert {r.json()["status"] for r in responses} == {"paid"}
    assert engine_sync.snapshot(1).sold == 1
    assert _payments_in_outbox(engine_sync, 1) == 1


async def test_two_transactions_racing_on_one_order_leave_exactly_one_applied(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 10)
    created = await order(client, 1)
    responses = await asyncio.gather(
        pay(client, created["order_id"], "txn-ok", "success"), pay(client, created["order_id"], "txn-ko", "failed")
    )
    assert sorted(r.json()["applied"] for r in responses) == [False, True]
    snapshot = engine_sync.snapshot(1)
    assert snapshot.sold + snapshot.available == 10
    assert snapshot.pending == 0


def _signature_cases(body: bytes) -> dict[str, dict[str, str]]:
    now = int(time.time())
    good = signing.sign(WEBHOOK_SECRET, now, body)
    return {
        "missing both": {},
        "missing signature": {signing.TIMESTAMP_HEADER: str(now)},
        "missing timestamp": {signing.SIGNATURE_HEADER: good},
        "malformed signature": {signing.TIMESTAMP_HEADER: str(now), signing.SIGNATURE_HEADER: "not-a-signature"},
        "bare hex": {signing.TIMESTAMP_HEADER: str(now), signing.SIGNATURE_HEADER: good.removeprefix("v1=")},
        "malformed timestamp": {signing.TIMESTAMP_HEADER: "yesterday", signing.SIGNATURE_HEADER: good},
        "wrong secret": {
            signing.TIMESTAMP_HEADER: str(now),
            signing.SIGNATURE_HEADER: signing.sign("another-secret-0123456789", now, body),
        },
        "stale": {
            signing.TIMESTAMP_HEADER: str(now - 301),
            signing.SIGNATURE_HEADER: signing.sign(WEBHOOK_SECRET, now - 301, body),
        },
        "from the future": {
            signing.TIMESTAMP_HEADER: str(now + 301),
            signing.SIGNATURE_HEADER: signing.sign(WEBHOOK_SECRET, now + 301, body),
        },
        "timestamp swapped": {signing.TIMESTAMP_HEADER: str(now - 1), signing.SIGNATURE_HEADER: good},
        "another body": {
            signing.TIMESTAMP_HEADER: str(now),
            signing.SIGNATURE_HEADER: signing.sign(WEBHOOK_SECRET, now, body.replace(b"success", b"failed")),
        },
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing both",
        "missing signature",
        "missing timestamp",
        "malformed signature",
        "bare hex",
        "malformed timestamp",
        "wrong secret",
        "stale",
        "from the future",
        "timestamp swapped",
        "another body",
    ],
)
async def test_a_webhook_without_a_valid_signature_is_401_and_has_no_effect(
    client: httpx.AsyncClient, engine_sync: Engine, case: str
) -> None:
    engine_sync.set_stock(1, 10)
    created = await order(client, 1)
    raw = f'{{"order_id": "{created["order_id"]}", "transaction_id": "t-sig", "status": "success"}}'.encode()
    headers = {**_signature_cases(raw)[case], "Content-Type": "application/json"}

    response = await client.post("/api/payments/webhook", content=raw, headers=headers)

    assert_problem(response, 401, "invalid_signature")
    assert engine_sync.order(created["order_id"]).status == "pending"
    assert _payments_in_outbox(engine_sync, 1) == 0


async def test_a_replayed_webhook_with_an_old_timestamp_is_refused(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 10)
    created = await order(client, 1)
    raw, headers = signed(
        {"order_id": created["order_id"], "transaction_id": "t-old", "status": "success"}, now=time.time() - 3600
    )
    assert_problem(await client.post("/api/payments/webhook", content=raw, headers=headers), 401, "invalid_signature")
    assert engine_sync.order(created["order_id"]).status == "pending"


async def test_a_webhook_for_an_order_nobody_knows_is_404(client: httpx.AsyncClient) -> None:
    response = await pay(client, "o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2", "t-404")
    assert_problem(response, 404, "order_not_found")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"transaction_id": "t", "status": "success"}, ["order_id"]),
        ({"order_id": "o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2", "status": "success"}, ["transaction_id"]),
        ({"order_id": "o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2", "transaction_id": "t", "status": "chargeback"}, ["status"]),
        ({"order_id": "nope", "transaction_id": "t" * 129, "status": 1}, ["order_id", "transaction_id", "status"]),
    ],
)
async def test_a_signed_webhook_with_fields_at_fault_is_422(
    client: httpx.AsyncClient, body: dict[str, Any], fields: list[str]
) -> None:
    raw, headers = signed(body)
    problem = assert_problem(
        await client.post("/api/payments/webhook", content=raw, headers=headers), 422, "validation_error"
    )
    assert [e["field"] for e in problem["errors"]] == fields


async def test_provider_fields_beyond_the_three_are_accepted(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 10)
    created = await order(client, 1)
    raw, headers = signed(
        {"order_id": created["order_id"], "transaction_id": "t-extra", "status": "success", "amount": 100, "psp": "x"}
    )
    response = await client.post("/api/payments/webhook", content=raw, headers=headers)
    assert response.json()["applied"] is True
    (payment,) = [e for e in engine_sync.read_outbox(1) if e.event == "payment"]
    assert payment.fields["payload"] == raw.decode()


async def test_a_signed_body_that_is_not_json_is_400(client: httpx.AsyncClient) -> None:
    raw, headers = signed(b"order_id=o1")
    assert_problem(await client.post("/api/payments/webhook", content=raw, headers=headers), 400, "invalid_json")
    raw, headers = signed(b"[]")
    assert_problem(await client.post("/api/payments/webhook", content=raw, headers=headers), 400, "invalid_json")


async def test_webhooks_are_refused_with_503_when_no_secret_is_configured(
    redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine
) -> None:
    settings = make_settings(redis_url, database_url, tmp_path, FLASHSALE_WEBHOOK_SECRET="")
    async with serve(create_app(settings)) as http:
        response = await pay(http, "o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2", "t")
    assert_problem(response, 503, "webhook_disabled")


async def test_webhooks_for_orders_redis_forgot_answer_from_postgresql(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine
) -> None:
    put_product(engine_sync, db, ProductSpec(1, "Widget", 400, 10))
    paid, expired = await order(client, 1), await order(client, 1)
    await pay(client, paid["order_id"], "txn-paid")
    engine_sync.cancel(expired["order_id"], "expired")
    apply_events(db, engine_sync.read_outbox(1))
    engine_sync.ack_outbox(1, [e.id for e in engine_sync.read_outbox(1)])
    keys = product_keys(1)
    engine_sync.redis.delete(keys.orders, keys.order_exp, keys.txns, keys.tombs)  # a day later

    duplicate = (await pay(client, paid["order_id"], "txn-paid")).json()
    assert (duplicate["status"], duplicate["applied"], duplicate["duplicate"]) == ("paid", True, True)

    second = (await pay(client, paid["order_id"], "txn-second", "failed")).json()
    assert (second["status"], second["applied"], second["duplicate"]) == ("paid", False, False)

    with capture_logs() as logs:
        late = (await pay(client, expired["order_id"], "txn-late")).json()
    assert (late["status"], late["applied"], late["refund_required"]) == ("cancelled", False, True)
    assert _events(logs, "refund_required")[0]["order_id"] == expired["order_id"]

    recorded = get_payment(db, "txn-late")
    assert recorded is not None
    assert (recorded.order_id, recorded.status, recorded.applied) == (expired["order_id"], "success", False)
    assert get_payment(db, "txn-second") is not None
    assert _payments_in_outbox(engine_sync, 1) == 0  # recorded directly: the engine has nothing to carry


# --- one transaction id, one order, in the whole sale (issue 12, item 1) ------------------------------------


def _drain(engine: Engine, db: sa.Engine, *product_ids: int) -> None:
    for product_id in product_ids:
        events = engine.read_outbox(product_id)
        apply_events(db, events)
        engine.ack_outbox(product_id, [e.id for e in events])


def _forget_transactions(engine: Engine, *product_ids: int) -> None:
    """What the engine is left with once a transaction id's retention has passed: no claim, no record, and no
    completeness mark (it lives no longer than the claims it vouched for)."""
    for key in engine.redis.scan_iter(match="fs:txn:*"):
        engine.redis.delete(key)
    engine.redis.delete(CLAIMS_COMPLETE_KEY)
    for product_id in product_ids:
        engine.redis.delete(product_keys(product_id).txns)


def _assert_refused_without_naming_the_other_order(response: httpx.Response, *secrets: str) -> None:
    body = assert_problem(response, 409, "transaction_id_reused")
    for secret in secrets:
        assert secret not in response.text, body


async def test_one_transaction_id_pays_one_order_across_two_products(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 10)
    engine_sync.set_stock(2, 10)
    first = await order(client, 1, customer_id="alice")
    second = await order(client, 2, customer_id="mallory")
    outbox_before = engine_sync.outbox_backlog(2)

    paid = await pay(client, first["order_id"], "pay_SAME")
    with capture_logs() as logs:
        refused = await pay(client, second["order_id"], "pay_SAME")

    assert paid.json()["applied"] is True
    _assert_refused_without_naming_the_other_order(refused, first["order_id"], "alice")
    assert engine_sync.order(second["order_id"]).status == "pending"
    assert (engine_sync.snapshot(1).sold, engine_sync.snapshot(2).sold, engine_sync.snapshot(2).pending) == (1, 0, 1)
    assert engine_sync.outbox_backlog(2) == outbox_before  # no payment event: nothing to drain
    (logged,) = _events(logs, "transaction_id_reused")
    assert (logged["order_id"], logged["claimed_by"]) == (second["order_id"], first["order_id"])
    again = await pay(client, first["order_id"], "pay_SAME")  # its own order: still a duplicate
    assert (again.json()["duplicate"], again.json()["status"]) == (True, "paid")


async def test_a_failed_payment_also_binds_its_transaction_id_to_its_order(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 10)
    engine_sync.set_stock(2, 10)
    first, second = await order(client, 1), await order(client, 2)
    await pay(client, first["order_id"], "pay_F", "failed")

    assert_problem(await pay(client, second["order_id"], "pay_F"), 409, "transaction_id_reused")
    assert engine_sync.order(second["order_id"]).status == "pending"


async def test_a_forgotten_transaction_id_is_refused_for_another_order_of_the_same_product(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine
) -> None:
    put_product(engine_sync, db, ProductSpec(1, "Widget", 400, 10))
    first, second = await order(client, 1), await order(client, 1)
    await pay(client, first["order_id"], "pay_OLD")
    _drain(engine_sync, db, 1)
    _forget_transactions(engine_sync, 1)  # a week later: Redis no longer remembers pay_OLD

    refused = await pay(client, second["order_id"], "pay_OLD")

    _assert_refused_without_naming_the_other_order(refused, first["order_id"])
    assert engine_sync.order(second["order_id"]).status == "pending"
    assert engine_sync.snapshot(1).sold == 1
    # Redis now remembers PostgreSQL's verdict: the next delivery is refused without asking again.
    with mock.patch("api.settlement.payments_by_transaction", side_effect=AssertionError("PostgreSQL asked again")):
        assert_problem(await pay(client, second["order_id"], "pay_OLD"), 409, "transaction_id_reused")


async def test_a_forgotten_transaction_id_sent_again_for_its_own_order_is_a_duplicate(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine
) -> None:
    put_product(engine_sync, db, ProductSpec(1, "Widget", 400, 10))
    first = await order(client, 1)
    await pay(client, first["order_id"], "pay_OLD")
    _drain(engine_sync, db, 1)
    _forget_transactions(engine_sync, 1)
    outbox = engine_sync.outbox_backlog(1)

    again = (await pay(client, first["order_id"], "pay_OLD")).json()

    assert (again["status"], again["applied"], again["duplicate"], again["refund_required"]) == (
        "paid",
        True,
        True,
        False,
    )
    assert engine_sync.outbox_backlog(1) == outbox
    assert engine_sync.stats(1).get("refund_required", 0) == 0


async def test_after_a_rebuild_a_transaction_id_still_pays_one_order(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine
) -> None:
    put_product(engine_sync, db, ProductSpec(1, "Widget", 400, 10))
    put_product(engine_sync, db, ProductSpec(2, "Gadget", 400, 10))
    first = await order(client, 1)
    await pay(client, first["order_id"], "pay_R")
    _drain(engine_sync, db, 1)
    engine_sync.redis.flushdb()  # Redis restarted empty
    rebuild_all(engine_sync, db)
    second = await order(client, 2)

    refused = await pay(client, second["order_id"], "pay_R")

    _assert_refused_without_naming_the_other_order(refused, first["order_id"])
    assert engine_sync.order(second["order_id"]).status == "pending"


async def test_after_a_rebuild_a_processing_transaction_id_still_belongs_to_its_order(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine
) -> None:
    # Given a transaction in progress for the first order (processing), drained, then Redis restarted empty
    put_product(engine_sync, db, ProductSpec(1, "Widget", 400, 10))
    put_product(engine_sync, db, ProductSpec(2, "Gadget", 400, 10))
    first, second = await order(client, 1), await order(client, 2)
    assert (await pay(client, first["order_id"], "pay_P", "processing")).status_code == 200
    _drain(engine_sync, db, 1, 2)
    engine_sync.redis.flushdb()
    rebuild_all(engine_sync, db)

    # When the same transaction id is sent for another order
    processing = await pay(client, second["order_id"], "pay_P", "processing")
    success = await pay(client, second["order_id"], "pay_P")

    # Then it is refused, as before the loss, and it still pays its own order
    _assert_refused_without_naming_the_other_order(processing, first["order_id"])
    _assert_refused_without_naming_the_other_order(success, first["order_id"])
    paid = (await pay(client, first["order_id"], "pay_P")).json()
    assert (paid["status"], paid["applied"]) == ("paid", True)
    assert engine_sync.order(second["order_id"]).status == "pending"


async def test_a_claim_left_by_a_crash_before_the_settle_is_completed_by_the_retry(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 10)
    engine_sync.set_stock(2, 10)
    first, second = await order(client, 1), await order(client, 2)
    engine_sync.claim_transaction("pay_CRASH", first["order_id"])  # the API died right after its claim

    refused = await pay(client, second["order_id"], "pay_CRASH")
    retried = (await pay(client, first["order_id"], "pay_CRASH")).json()

    assert_problem(refused, 409, "transaction_id_reused")
    assert (retried["status"], retried["applied"], retried["duplicate"]) == ("paid", True, False)
    assert (engine_sync.snapshot(1).sold, engine_sync.snapshot(2).sold) == (1, 0)


async def test_a_confirmed_claim_spares_postgresql_on_every_later_delivery(
    app_and_client: tuple[Starlette, httpx.AsyncClient], engine_sync: Engine
) -> None:
    app, client = app_and_client
    engine_sync.set_stock(1, 10)
    created = await order(client, 1)
    with mock.patch("api.settlement.payments_by_transaction", wraps=payments_by_transaction) as asked:
        await pay(client, created["order_id"], "pay_1")
        await app.state.services.settler.close()  # the claim is confirmed in the background, off the webhook's path
        await pay(client, created["order_id"], "pay_1")
        await pay(client, created["order_id"], "pay_1")

    assert asked.call_count == 1  # only when Redis had no record of the id


async def test_when_postgresql_cannot_answer_redis_decides_alone(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 10)
    engine_sync.set_stock(2, 10)
    first, second = await order(client, 1), await order(client, 2)
    down = sa.exc.OperationalError("SELECT", {}, Exception("connection refused"))
    with mock.patch("api.settlement.payments_by_transaction", side_effect=down), capture_logs() as logs:
        paid = (await pay(client, first["order_id"], "pay_PG_DOWN")).json()
        refused = await pay(client, second["order_id"], "pay_PG_DOWN")

    assert (paid["status"], paid["applied"]) == ("paid", True)
    assert_problem(refused, 409, "transaction_id_reused")
    assert _events(logs, "transaction_check_skipped")


async def test_a_webhook_for_an_order_nobody_knows_frees_its_transaction_id(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 10)
    assert_problem(await pay(client, "o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2", "pay_TYPO"), 404, "order_not_found")
    created = await order(client, 1)

    response = (await pay(client, created["order_id"], "pay_TYPO")).json()

    assert (response["status"], response["applied"]) == ("paid", True)


async def test_deliveries_of_one_transaction_for_two_orders_at_once_apply_it_to_one(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 100)
    engine_sync.set_stock(2, 100)
    orders = [await order(client, 1 + i % 2) for i in range(10)]

    responses = await asyncio.gather(*(pay(client, o["order_id"], "pay_RACE") for o in orders))

    assert Counter(r.status_code for r in responses) == {200: 1, 409: 9}
    assert engine_sync.snapshot(1).sold + engine_sync.snapshot(2).sold == 1


# --- a second charge is flagged for refund (issue 12, item 6) ------------------------------------------------


async def test_a_second_success_on_a_paid_order_requires_a_refund_and_is_stored(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine
) -> None:
    put_product(engine_sync, db, ProductSpec(1, "Widget", 400, 10))
    created = await order(client, 1, 2, customer_id="carol")
    await pay(client, created["order_id"], "pay_FIRST")

    with capture_logs() as logs:
        second = (await pay(client, created["order_id"], "pay_SECOND")).json()

    assert (second["status"], second["applied"], second["duplicate"], second["refund_required"]) == (
        "paid",
        False,
        False,
        True,
    )
    (refund,) = _events(logs, "refund_required")
    assert (refund["transaction_id"], refund["paid_by"], refund["amount_cents"], refund["customer_id"]) == (
        "pay_SECOND",
        "pay_FIRST",
        800,
        "carol",
    )
    _drain(engine_sync, db, 1)
    stored = get_payment(db, "pay_SECOND")
    assert stored is not None
    assert (stored.applied, stored.refund_required) == (False, True)
    first = get_payment(db, "pay_FIRST")
    assert first is not None
    assert not first.refund_required
    assert engine_sync.snapshot(1).sold == 2


async def test_a_second_success_on_an_order_redis_forgot_requires_a_refund(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine
) -> None:
    put_product(engine_sync, db, ProductSpec(1, "Widget", 400, 10))
    created = await order(client, 1)
    await pay(client, created["order_id"], "pay_FIRST")
    _drain(engine_sync, db, 1)
    keys = product_keys(1)
    engine_sync.redis.delete(keys.orders, keys.order_exp, keys.tombs)  # a day later

    second = (await pay(client, created["order_id"], "pay_LATE")).json()

    assert (second["status"], second["applied"], second["refund_required"]) == ("paid", False, True)
    stored = get_payment(db, "pay_LATE")
    assert stored is not None
    assert stored.refund_required
    assert engine_sync.stats(1)["refund_required"] == 1


async def test_once_the_claim_store_is_vouched_for_a_new_transaction_id_needs_no_postgresql_read(
    app_and_client: tuple[Starlette, httpx.AsyncClient], engine_sync: Engine
) -> None:
    app, client = app_and_client
    engine_sync.set_stock(1, 10)
    engine_sync.set_stock(2, 10)
    first, second, third = await order(client, 1), await order(client, 2), await order(client, 1)
    with capture_logs() as logs:
        await pay(client, first["order_id"], "pay_V1")  # Redis cannot decide yet: PostgreSQL is asked, and vouched
        await app.state.services.settler.close()
    assert _events(logs, "claims_vouched")

    with mock.patch("api.settlement.payments_by_transaction", side_effect=AssertionError("PostgreSQL asked")):
        paid = (await pay(client, second["order_id"], "pay_V2")).json()
        refused = await pay(client, third["order_id"], "pay_V1")

    assert (paid["status"], paid["applied"]) == ("paid", True)
    _assert_refused_without_naming_the_other_order(refused, first["order_id"])
    assert engine_sync.order(third["order_id"]).status == "pending"


async def test_an_id_postgresql_records_and_redis_forgot_keeps_every_webhook_asking_postgresql(
    app_and_client: tuple[Starlette, httpx.AsyncClient], engine_sync: Engine, db: sa.Engine, monkeypatch: Any
) -> None:
    monkeypatch.setattr("api.settlement.VOUCH_EVERY_SECONDS", 0.0)
    app, client = app_and_client
    put_product(engine_sync, db, ProductSpec(1, "Widget", 400, 10))
    first, second, third = await order(client, 1), await order(client, 1), await order(client, 1)
    await pay(client, first["order_id"], "pay_OLD")
    await app.state.services.settler.close()
    _drain(engine_sync, db, 1)
    _forget_transactions(engine_sync, 1)  # a week later: the claim and the mark are gone, PostgreSQL keeps pay_OLD
    with capture_logs() as logs:
        await pay(client, second["order_id"], "pay_NEW")  # asks PostgreSQL, and tries to vouch: it cannot
        await app.state.services.settler.close()
    assert _events(logs, "claims_not_vouched")
    assert engine_sync.redis.exists(CLAIMS_COMPLETE_KEY) == 0

    with mock.patch("api.settlement.payments_by_transaction", wraps=payments_by_transaction) as asked:
        refused = await pay(client, third["order_id"], "pay_OLD")

    assert asked.call_count == 1
    _assert_refused_without_naming_the_other_order(refused, first["order_id"])
    assert engine_sync.order(third["order_id"]).status == "pending"
