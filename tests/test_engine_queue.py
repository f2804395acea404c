"""Contract of the waiting room's scripts (queue_join, queue_poll, queue_leave, queue_info) and of the admission
the reserve scripts take, on real Redis and a Redis Cluster.

fakeredis is left out: its EVAL has no ``redis.sha1hex``, which draws the pre-queue's order.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from engine import Engine, calls
from engine.exceptions import AdmissionRequired, InvalidId, TicketNotFound, WaitingRoomOff
from engine.keys import product_keys
from engine.types import ProductReserve, ReserveRequest, WaitingRoomSettings
from tests.support.draw import draw_order

P = 7

pytestmark = pytest.mark.parametrize("redis_client", ["redis", "cluster"], indirect=True)


def wall_ms() -> int:
    return int(time.time() * 1000)


def open_room(engine: Engine, stock: int, *, started: bool = True, **room: Any) -> None:
    starts = wall_ms() - 1000 if started else wall_ms() + 600_000
    engine.set_stock(P, stock, price_cents=100, starts_at_ms=starts, waiting_room=WaitingRoomSettings(**room))


def start_now(engine: Engine, stock: int, **room: Any) -> None:
    """Move the sale's start into the past: the room, already open, keeps its tickets."""
    open_room(engine, stock, started=True, **room)


def states(engine: Engine, tickets: list[str]) -> list[str]:
    return [engine.queue_poll(t).state for t in tickets]


def test_a_product_without_a_waiting_room_refuses_joins_and_needs_no_admission(engine: Engine) -> None:
    engine.set_stock(P, 5)

    with pytest.raises(WaitingRoomOff):
        engine.queue_join(P)
    assert engine.reserve(P, 1).status == "active"
    assert engine.queue_info(P).on is False


def test_joins_after_the_start_are_first_come_first_served(engine: Engine) -> None:
    open_room(engine, 0)

    tickets = [engine.queue_join(P) for _ in range(5)]

    assert [t.number for t in tickets] == [1, 2, 3, 4, 5]
    assert [t.position for t in tickets] == [1, 2, 3, 4, 5]
    assert all(t.state == "sold_out" for t in tickets)  # nothing to sell, nothing held that could come back
    assert engine.queue_poll(tickets[4].ticket).position == 5


def test_the_room_admits_exactly_as_many_as_there_are_units_to_sell(engine: Engine) -> None:
    open_room(engine, 3)

    tickets = [engine.queue_join(P) for _ in range(5)]

    assert [t.state for t in tickets] == ["admitted"] * 3 + ["waiting"] * 2
    assert [t.position for t in tickets[3:]] == [1, 2]
    info = engine.queue_info(P)
    assert (info.admitted, info.waiting, info.admitted_total) == (3, 2, 3)


def test_a_hold_needs_an_admission_and_uses_it_up(engine: Engine) -> None:
    open_room(engine, 3)
    first = engine.queue_join(P)
    assert first.admission_token is not None

    with pytest.raises(AdmissionRequired) as missing:
        engine.reserve(P, 1)
    hold = engine.reserve(P, 2, admission=first.admission_token)
    with pytest.raises(AdmissionRequired) as used:
        engine.reserve(P, 1, admission=first.admission_token)

    assert (missing.value.reason, used.value.reason) == ("missing", "used")
    assert hold.quantity == 2
    assert engine.queue_poll(first.ticket).state == "used"
    assert engine.snapshot(P).held == 2


def test_a_forged_admission_is_refused_and_one_of_another_product_is_a_bad_argument(engine: Engine) -> None:
    open_room(engine, 3)
    ticket = engine.queue_join(P)
    assert ticket.admission_token is not None
    forged = ticket.admission_token[:-4] + ("0000" if not ticket.admission_token.endswith("0000") else "1111")

    with pytest.raises(AdmissionRequired) as refused:
        engine.reserve(P, 1, admission=forged)
    with pytest.raises(AdmissionRequired):
        engine.reserve(P, 1, admission=f"a{P}_999_0123456789abcdef")
    with pytest.raises(InvalidId):
        engine.reserve(P, 1, admission=ticket.admission_token.replace(f"a{P}_", "a8_", 1))
    with pytest.raises(InvalidId):
        engine.reserve(P, 1, admission=ticket.ticket)  # the ticket is not its admission

    assert refused.value.reason == "invalid"
    assert engine.snapshot(P).held == 0


def test_a_batch_of_reserves_takes_each_its_own_admission(engine: Engine) -> None:
    open_room(engine, 2)
    a, b = engine.queue_join(P), engine.queue_join(P)

    results = engine.reserve_many(
        P,
        [
            ReserveRequest(1, admission=a.admission_token),
            ReserveRequest(1),
            ReserveRequest(1, admission=a.admission_token),
            ReserveRequest(1, admission=b.admission_token),
        ],
    )

    assert [type(r).__name__ for r in results] == ["Hold", "AdmissionRequired", "AdmissionRequired", "Hold"]


def test_a_call_across_products_checks_each_products_own_admission(engine: Engine) -> None:
    open_room(engine, 2)
    engine.set_stock(P + 1, 2, waiting_room=WaitingRoomSettings())
    engine.set_stock(P + 2, 2)  # no room: no admission needed
    a, b = engine.queue_join(P), engine.queue_join(P + 1)

    results = engine.reserve_across(
        [
            ProductReserve(P, ReserveRequest(1, admission=a.admission_token)),
            ProductReserve(P + 1, ReserveRequest(1)),
            ProductReserve(P + 2, ReserveRequest(1)),
            ProductReserve(P + 1, ReserveRequest(1, admission=b.admission_token)),
            ProductReserve(P, ReserveRequest(1, admission=a.admission_token)),
        ]
    )

    assert [type(r).__name__ for r in results] == ["Hold", "AdmissionRequired", "Hold", "Hold", "AdmissionRequired"]
    assert (engine.queue_poll(a.ticket).state, engine.queue_poll(b.ticket).state) == ("used", "used")


def test_an_unused_admission_expires_and_its_place_goes_to_the_next_waiter(engine: Engine) -> None:
    open_room(engine, 1, admission_ttl_ms=300)
    first, second = engine.queue_join(P), engine.queue_join(P)
    assert (first.state, second.state) == ("admitted", "waiting")

    time.sleep(0.35)

    assert engine.queue_poll(second.ticket).state == "admitted"
    assert engine.queue_poll(first.ticket).state == "expired"
    with pytest.raises(AdmissionRequired) as lapsed:
        engine.reserve(P, 1, admission=first.admission_token)
    assert lapsed.value.reason == "expired"


def test_units_that_come_back_admit_exactly_as_many_more(engine: Engine) -> None:
    open_room(engine, 2)
    tickets = [engine.queue_join(P) for _ in range(6)]
    holds = [engine.reserve(P, 1, admission=t.admission_token) for t in tickets[:2]]
    assert states(engine, [t.ticket for t in tickets[2:]]) == ["waiting"] * 4

    engine.release(holds[0].hold_id)

    assert states(engine, [t.ticket for t in tickets[2:]]) == ["admitted", "waiting", "waiting", "waiting"]


def test_every_waiter_reads_sold_out_and_admission_resumes_in_order_when_units_return(engine: Engine) -> None:
    open_room(engine, 1)
    buyer = engine.queue_join(P)
    waiters = [engine.queue_join(P).ticket for _ in range(3)]
    order = engine.convert(engine.reserve(P, 1, admission=buyer.admission_token).hold_id)
    assert states(engine, waiters) == ["waiting"] * 3  # the pending order may still come back
    engine.settle(order.order_id, "t-1", "failed")  # a failed payment gives the unit back

    assert states(engine, waiters) == ["admitted", "waiting", "waiting"]

    second = engine.queue_poll(waiters[0])
    engine.settle(
        engine.convert(engine.reserve(P, 1, admission=second.admission_token).hold_id).order_id, "t-2", "success"
    )
    assert states(engine, waiters[1:]) == ["sold_out", "sold_out"]
    assert engine.queue_poll(waiters[1]).position == 1


def test_a_ticket_that_leaves_frees_its_place(engine: Engine) -> None:
    open_room(engine, 0)
    tickets = [engine.queue_join(P).ticket for _ in range(3)]

    assert engine.queue_leave(tickets[0]) == "left"
    assert engine.queue_leave(tickets[0]) == "left"

    assert engine.queue_poll(tickets[0]).state == "left"
    assert [engine.queue_poll(t).position for t in tickets[1:]] == [1, 2]
    assert engine.queue_info(P).left_total == 1


def test_a_ticket_not_polled_in_time_is_dropped(engine: Engine) -> None:
    open_room(engine, 0, abandon_ms=300)
    quiet, *busy = [engine.queue_join(P).ticket for _ in range(3)]

    time.sleep(0.2)
    for t in busy:
        engine.queue_poll(t)
    time.sleep(0.2)
    for t in busy:
        engine.queue_poll(t)

    assert engine.queue_poll(quiet).state == "left"
    assert [engine.queue_poll(t).position for t in busy] == [1, 2]


def test_a_buyer_has_one_ticket_and_only_that_buyer_may_use_its_admission(engine: Engine) -> None:
    open_room(engine, 1)
    first = engine.queue_join(P, buyer="alice")
    again = engine.queue_join(P, buyer="alice")
    bob = engine.queue_join(P, buyer="bob")

    assert (first.created, again.created, again.ticket) == (True, False, first.ticket)
    assert bob.ticket != first.ticket
    with pytest.raises(TicketNotFound):
        engine.queue_poll(first.ticket, owner="bob")
    with pytest.raises(TicketNotFound):
        engine.queue_leave(first.ticket, owner="bob")
    assert engine.queue_poll(first.ticket, owner="alice").state == "admitted"
    with pytest.raises(AdmissionRequired):
        engine.reserve(P, 1, customer_id="bob", admission=first.admission_token)
    assert engine.reserve(P, 1, customer_id="alice", admission=first.admission_token).customer_id == "alice"


def test_the_rate_cap_admits_no_faster_than_asked(engine: Engine) -> None:
    open_room(engine, 0, admit_per_second=2)
    tickets = [engine.queue_join(P).ticket for _ in range(5)]
    start_now(engine, 10, admit_per_second=2)

    admitted = [s for s in states(engine, tickets) if s == "admitted"]

    assert len(admitted) == 2


def test_tickets_that_joined_before_the_start_are_placed_in_the_order_the_revealed_seed_draws(engine: Engine) -> None:
    open_room(engine, 0, started=False)
    before = engine.queue_info(P)
    early = [engine.queue_join(P) for _ in range(20)]
    assert all(t.position is None and t.state == "sold_out" for t in early)  # no stock yet: nothing to wait for
    assert engine.queue_info(P).seed is None

    start_now(engine, 0)
    late = [engine.queue_join(P) for _ in range(3)]

    info = engine.queue_info(P)
    assert info.seed is not None
    assert info.seed_sha256 == before.seed_sha256
    assert info.pre_queue_last == 20
    expected = draw_order(info.seed, info.seed_sha256, list(range(1, 21)))
    by_number = {t.number: t.ticket for t in early}
    positions = {n: engine.queue_poll(by_number[n]).position for n in expected}
    assert [positions[n] for n in expected] == list(range(1, 21))
    assert [t.position for t in late] == [21, 22, 23]


def test_a_poll_of_an_unknown_or_forged_ticket_is_not_found(engine: Engine) -> None:
    open_room(engine, 0)
    real = engine.queue_join(P).ticket

    for ticket in (f"q{P}_5_0123456789abcdef", real[:-1] + ("0" if real[-1] != "0" else "1")):
        with pytest.raises(TicketNotFound):
            engine.queue_poll(ticket)
        with pytest.raises(TicketNotFound):
            engine.queue_leave(ticket)
    with pytest.raises(InvalidId):
        engine.queue_poll("not-a-ticket")


def test_closing_the_room_drops_its_tickets_and_holds_need_no_admission(engine: Engine) -> None:
    open_room(engine, 2)
    ticket = engine.queue_join(P).ticket

    engine.set_stock(P, 2, price_cents=100)

    with pytest.raises(TicketNotFound):
        engine.queue_poll(ticket)
    assert engine.reserve(P, 1).status == "active"
    assert not any(engine.redis.exists(k) for k in product_keys(P).all()[11:])


def test_every_key_of_a_room_carries_the_product_hash_tag(engine: Engine) -> None:
    keys = product_keys(P)
    room = (keys.queue, keys.queue_wait, keys.queue_adm, keys.queue_tab, keys.queue_subs)
    assert [k.split("}")[0] for k in room] == [f"fs:{{{P}"] * 5


@pytest.mark.server_wide
def test_the_room_works_again_after_a_script_flush(engine: Engine) -> None:
    open_room(engine, 1)
    engine.queue_join(P)
    engine.redis.script_flush()

    ticket = engine.queue_join(P)

    assert engine.queue_poll(ticket.ticket).state == "waiting"


@pytest.fixture
def rare_upkeep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The room's upkeep runs at the first call of a test and not again (its interval is an hour)."""
    monkeypatch.setattr(calls, "QUEUE_UPKEEP_MS", 3_600_000)


@pytest.mark.usefixtures("rare_upkeep")
def test_units_that_come_back_are_admitted_by_the_next_poll_between_upkeeps(engine: Engine) -> None:
    open_room(engine, 1)
    first, second = engine.queue_join(P), engine.queue_join(P)
    hold = engine.reserve(P, 1, admission=first.admission_token)
    assert engine.queue_poll(second.ticket).state == "waiting"

    engine.release(hold.hold_id)

    assert engine.queue_poll(second.ticket).state == "admitted"


@pytest.mark.usefixtures("rare_upkeep")
def test_a_lapsed_hold_is_reaped_by_the_upkeep_not_by_every_poll(
    engine: Engine, make_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_room(engine, 1)
    first, second = engine.queue_join(P), engine.queue_join(P)
    make_engine(hold_ttl_ms=100).reserve(P, 1, admission=first.admission_token)
    time.sleep(0.15)

    assert engine.queue_poll(second.ticket).state == "waiting"  # the upkeep is not due: the hold is not reaped
    monkeypatch.setattr(calls, "QUEUE_UPKEEP_MS", 0)
    assert engine.queue_poll(second.ticket).state == "admitted"


@pytest.mark.usefixtures("rare_upkeep")
def test_a_lapsed_admission_reads_expired_between_upkeeps_and_frees_its_place(engine: Engine) -> None:
    open_room(engine, 1, admission_ttl_ms=100)
    first, second = engine.queue_join(P), engine.queue_join(P)
    time.sleep(0.15)

    assert engine.queue_poll(first.ticket).state == "expired"
    assert engine.queue_poll(second.ticket).state == "admitted"
