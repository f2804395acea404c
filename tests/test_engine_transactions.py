"""Sale-wide transaction claims: one transaction id binds one order, whichever product or shard it lives on."""

from __future__ import annotations

from typing import Any

import pytest
from redis.crc import key_slot

from engine import Engine, new_id
from engine.calls import TRANSACTION_RETENTION_MS
from engine.exceptions import InvalidId, TransactionReused
from engine.keys import product_keys, transaction_key


def test_a_transaction_id_claimed_for_one_order_is_refused_for_an_order_of_another_product(engine: Engine) -> None:
    first, second = new_id("order", 1), new_id("order", 2)

    claim = engine.claim_transaction("pay_SAME", first)
    with pytest.raises(TransactionReused) as refused:
        engine.claim_transaction("pay_SAME", second)

    assert (claim.new, claim.confirmed) == (True, False)
    assert (refused.value.code, refused.value.order_id, refused.value.claimed_by) == (
        "transaction_id_reused",
        second,
        first,
    )


def test_claiming_again_for_the_same_order_holds_without_being_new(engine: Engine) -> None:
    order = new_id("order", 1)
    engine.claim_transaction("t-1", order)

    again = engine.claim_transaction("t-1", order)

    assert (again.new, again.confirmed, again.order_id) == (False, False, order)


def test_a_confirmed_claim_stays_confirmed_and_still_refuses_other_orders(engine: Engine) -> None:
    order, other = new_id("order", 1), new_id("order", 3)
    engine.claim_transaction("t-1", order)

    confirmed = engine.claim_transaction("t-1", order, "confirm")

    assert (confirmed.new, confirmed.confirmed) == (False, True)
    assert engine.claim_transaction("t-1", order).confirmed
    with pytest.raises(TransactionReused):
        engine.claim_transaction("t-1", other, "confirm")
    with pytest.raises(TransactionReused):
        engine.claim_transaction("t-1", other, "record")


def test_the_durable_records_verdict_replaces_another_orders_provisional_claim(engine: Engine) -> None:
    provisional, owner = new_id("order", 1), new_id("order", 2)
    engine.claim_transaction("t-1", provisional)

    recorded = engine.claim_transaction("t-1", owner, "record")

    assert (recorded.order_id, recorded.confirmed) == (owner, True)
    with pytest.raises(TransactionReused) as refused:
        engine.claim_transaction("t-1", provisional)
    assert refused.value.claimed_by == owner


def test_confirm_never_takes_another_orders_provisional_claim(engine: Engine) -> None:
    first, second = new_id("order", 1), new_id("order", 2)
    engine.claim_transaction("t-1", first)

    with pytest.raises(TransactionReused):
        engine.claim_transaction("t-1", second, "confirm")


def test_release_gives_back_only_the_orders_own_claim(engine: Engine) -> None:
    order, other = new_id("order", 1), new_id("order", 2)
    engine.claim_transaction("t-1", order, "confirm")

    assert not engine.release_transaction("t-1", other)
    assert engine.release_transaction("t-1", order)
    assert not engine.release_transaction("t-1", order)
    assert engine.claim_transaction("t-1", other).new


def test_a_claim_is_kept_for_the_transaction_retention(engine: Engine, redis_client: Any) -> None:
    engine.claim_transaction("t-1", new_id("order", 1))

    ttl = redis_client.pttl(transaction_key("t-1"))

    assert TRANSACTION_RETENTION_MS - 60_000 < ttl <= TRANSACTION_RETENTION_MS


@pytest.mark.parametrize("txn", ["{1}", "a}b{c", "}{", "%7B1%7D", "{", "pay {x} y"])
def test_braces_in_a_transaction_id_never_collide_nor_pick_another_keys_slot(engine: Engine, txn: str) -> None:
    key = transaction_key(txn)
    tag = key[key.index("{") + 1 : key.index("}")]

    assert key == f"fs:txn:{{{tag}}}"  # the whole escaped id is the hash tag
    assert key_slot(key.encode()) == key_slot(tag.encode())
    assert key_slot(key.encode()) != key_slot(product_keys(1).product.encode()) or tag == "1"
    order = new_id("order", 1)
    assert engine.claim_transaction(txn, order).new
    assert not engine.claim_transaction(txn, order).new


def test_distinct_ids_get_distinct_claim_keys() -> None:
    ids = ["{1}", "%7B1%7D", "%7B1}", "{1%7D", "%257B1%257D", "1"]

    assert len({transaction_key(i) for i in ids}) == len(ids)


@pytest.mark.parametrize(("txn", "order"), [("", "o1_x"), ("a|b", None), ("t" * 129, None), ("t", "h1_x")])
def test_claims_refuse_bad_transaction_ids_and_order_ids(engine: Engine, txn: str, order: str | None) -> None:
    order_id = order if order is not None else new_id("order", 1)
    with pytest.raises((ValueError, InvalidId)):
        engine.claim_transaction(txn, order_id)
