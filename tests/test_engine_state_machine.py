"""Random interleavings of every engine call, on fakeredis with a hand-moved clock, against a plain-Python model.

After every step (except a clock move, so that the next call meets overdue holds and orders itself)
the invariant, every counter, every hold, every order, the customer quotas and the outbox are compared.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any
from unittest import mock

import fakeredis
import pytest
from fakeredis.commands_mixins import server_mixin
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from engine import Engine, parse_id
from engine import exceptions as exc
from engine.ids import format_id
from engine.keys import product_keys
from engine.types import Cancellation, Hold, Order, OutboxEvent, ReapResult, Settlement, Snapshot, StockChange
from tests.support.clock import FakeClock

HOLD_TTL = 1_000
SHORT_HOLD_TTL = 400  # a second API process with a shorter hold TTL: its holds break the queue's order
ORDER_TTL = 3_000
PRODUCTS = (1, 2, 3)  # 1 and 2 exist from the start; 3 only once set_stock creates it
product_ids = st.sampled_from([1, 1, 2, 2, 3])
CUSTOMERS = (None, "alice", "bob")
Event = tuple[str, ...]


@dataclass
class ModelHold:
    hold_id: str
    product: int
    qty: int
    customer: str
    expires: int
    state: str = "active"
    order_id: str | None = None
    index: str = ""  # "queue" (hold_queue, until popped) or "late" (hold_exp, while active)

    def record(self) -> str:
        """The hold as lua/_prelude.lua stores it."""
        state = {"active": "a", "converted": "c", "released": "r", "expired": "x"}[self.state]
        order = parse_id(self.order_id, "order").ulid if self.order_id else ""
        return f"{state}|{self.qty}|{self.expires}|{order}|{self.customer}"

    def result(self) -> Hold:
        return Hold(
            self.hold_id,
            self.product,
            self.qty,
            self.customer or None,
            self.expires,
            self.state,  # type: ignore[arg-type]
            self.order_id,
        )


@dataclass
class ModelOrder:
    order_id: str
    hold_id: str
    product: int
    customer: str
    qty: int
    amount: int
    created: int
    expires: int
    status: str = "pending"
    closed: int | None = None
    txn: str | None = None
    reason: str | None = None
    revived: bool = False

    def record(self) -> str:
        """The order as lua/_prelude.lua stores it."""
        state = "v" if self.revived else {"pending": "p", "paid": "d", "cancelled": "c"}[self.status]
        hold = parse_id(self.hold_id, "hold").ulid
        note = self.txn or self.reason or ""
        fields = (state, self.qty, self.amount, self.created, self.expires, hold, self.closed or 0, note, self.customer)
        return "|".join(map(str, fields))

    def result(self) -> Order:
        return Order(
            self.order_id,
            self.hold_id,
            self.product,
            self.customer or None,
            self.qty,
            self.amount,
            self.status,  # type: ignore[arg-type]
            self.created,
            self.expires,
            self.closed,
            self.txn,
            self.reason,  # type: ignore[arg-type]
            self.revived,
        )

    def event(self, name: str) -> Event:
        note = self.txn if self.status == "paid" else self.reason
        return (name, self.order_id, self.status, note or "")


@dataclass
class ModelProduct:
    pid: int
    total: int = 0
    available: int = 0
    held: int = 0
    pending: int = 0
    sold: int = 0
    price: int = 0
    limit: int = 0
    starts: int = 0
    ends: int = 0
    queued_until: int = 0
    stats: Counter[str] = field(default_factory=Counter)
    holds: dict[str, ModelHold] = field(default_factory=dict)
    orders: dict[str, ModelOrder] = field(default_factory=dict)
    txns: dict[str, tuple[str, str, bool]] = field(default_factory=dict)
    idem: dict[tuple[str, str], str] = field(default_factory=dict)
    """(customer, idempotency key) -> hold id: a key belongs to the caller who used it"""
    outbox: list[Event] = field(default_factory=list)

    # What the Lua prelude does, in plain Python.

    def add_available(self, delta: int) -> None:
        """Move ``available``; crossing 0 is a stock transition the outbox announces (no threshold here)."""
        before, after = self.available, self.available + delta
        self.available = after
        if after == 0 and before > 0:
            self.outbox.append(("product_stock", "sold_out", "0"))
        elif before == 0 and after > 0:
            self.outbox.append(("product_stock", "back_in_stock", str(after)))

    def unindex(self, h: ModelHold) -> None:
        """A hold leaves hold_exp when it stops being active; its queue entry stays until the queue's head pops it."""
        if h.index == "late":
            h.index = ""

    def expire_hold(self, h: ModelHold) -> None:
        self.unindex(h)
        self.held -= h.qty
        self.add_available(h.qty)
        h.state = "expired"
        self.stats["expired"] += 1
        self.outbox.append(("hold_expired", h.hold_id, str(h.qty)))

    def cancel_order(self, o: ModelOrder, now: int, reason: str) -> None:
        self.pending -= o.qty
        self.add_available(o.qty)
        o.status, o.closed, o.reason = "cancelled", now, reason
        self.stats[{"expired": "order_expired", "payment_failed": "payment_failed"}.get(reason, "cancelled")] += 1
        self.outbox.append(o.event("order_cancelled"))

    def queued(self) -> list[ModelHold]:
        return [h for h in self.holds.values() if h.index == "queue"]  # creation order

    def overdue_late_holds(self, now: int) -> list[ModelHold]:
        due = [h for h in self.holds.values() if h.index == "late" and h.expires <= now]
        return sorted(due, key=lambda h: (h.expires, parse_id(h.hold_id, "hold").ulid))

    def overdue_orders(self, now: int) -> list[ModelOrder]:
        due = [o for o in self.orders.values() if o.status == "pending" and o.expires <= now]
        return sorted(due, key=lambda o: (o.expires, o.order_id))

    def overdue_entries(self, now: int) -> int:
        """Due entries of the expiry indexes, counting queued holds released or converted before they expired."""
        return (
            sum(h.expires <= now for h in self.queued())
            + len(self.overdue_late_holds(now))
            + len(self.overdue_orders(now))
        )

    def reap(self, now: int, batch: int) -> tuple[int, int, int]:
        """Pop up to ``batch`` due queue entries, then the rest of ``batch`` from hold_exp, and ``batch`` orders."""
        holds: list[ModelHold] = []
        popped = 0
        for h in self.queued()[:batch]:
            if h.state == "active":
                if h.expires > now:
                    break
                self.expire_hold(h)
                holds.append(h)
            h.index = ""
            popped += 1
        late = self.overdue_late_holds(now)[: batch - popped]
        orders = self.overdue_orders(now)[:batch]
        for h in late:
            self.expire_hold(h)
        for o in orders:
            self.cancel_order(o, now, "expired")
        holds += late
        return len(holds), len(orders), sum(h.qty for h in holds) + sum(o.qty for o in orders)

    def reap_all(self, now: int) -> None:
        self.reap(now, 10**6)

    def used(self, customer: str) -> int:
        held = sum(h.qty for h in self.holds.values() if h.state == "active" and h.customer == customer)
        ordered = sum(o.qty for o in self.orders.values() if o.status != "cancelled" and o.customer == customer)
        return held + ordered

    def quotas(self) -> dict[str, int]:
        customers = {h.customer for h in self.holds.values()} - {""}
        return {c: self.used(c) for c in sorted(customers) if self.used(c) > 0}


class Model:
    def __init__(self) -> None:
        self.products: dict[int, ModelProduct] = {}

    def hold_of(self, hold_id: str) -> tuple[ModelProduct | None, ModelHold | None]:
        prod = self.products.get(parse_id(hold_id, "hold").product_id)
        return prod, prod.holds.get(hold_id) if prod else None

    def order_of(self, order_id: str) -> tuple[ModelProduct | None, ModelOrder | None]:
        prod = self.products.get(parse_id(order_id, "order").product_id)
        return prod, prod.orders.get(order_id) if prod else None

    def set_stock(self, p: int, total: int, price: int, limit: int, starts: int, ends: int, now: int) -> Any:
        created = p not in self.products
        prod = self.products.setdefault(p, ModelProduct(p))
        prod.reap_all(now)
        committed = prod.held + prod.pending + prod.sold
        if total < committed:
            return exc.StockBelowCommitted(p, total, committed)
        prod.total = total
        if created:  # a new product put on sale is no transition; a restock or a cut is
            prod.available = total - committed
        else:
            prod.add_available(total - committed - prod.available)
        prod.price, prod.limit, prod.starts, prod.ends = price, limit, starts, ends
        return StockChange(p, created, total, prod.available, prod.held, prod.pending, prod.sold)

    def reserve(self, p: int, qty: int, customer: str, hold_id: str, idem: str, now: int, ttl: int = HOLD_TTL) -> Any:
        prod = self.products.get(p)
        if prod is None:
            return exc.ProductNotFound(p)
        prod.reap_all(now)
        target = prod.idem.get((customer, idem), hold_id) if idem else hold_id
        if target in prod.holds:
            return replace(prod.holds[target].result(), available=prod.available)
        if (prod.starts and now < prod.starts) or (prod.ends and now >= prod.ends):
            return exc.SaleNotActive(p, prod.starts, prod.ends, now)
        if prod.limit and customer and prod.used(customer) + qty > prod.limit:
            prod.stats["limit"] += 1
            return exc.LimitExceeded(p, customer, prod.limit, prod.used(customer), qty)
        if prod.available < qty:
            prod.stats["out_of_stock"] += 1
            return exc.OutOfStock(p, qty, prod.available)
        h = prod.holds[hold_id] = ModelHold(hold_id, p, qty, customer, now + ttl)
        if h.expires >= prod.queued_until:
            h.index, prod.queued_until = "queue", h.expires
        else:
            h.index = "late"
        prod.add_available(-qty)
        prod.held += qty
        prod.stats["holds"] += 1
        if idem:
            prod.idem[customer, idem] = hold_id
        return replace(h.result(), available=prod.available)

    def release(self, hold_id: str, now: int) -> Any:
        prod, h = self.hold_of(hold_id)
        if prod is None or h is None:
            return exc.HoldNotFound(hold_id)
        if h.state == "converted":
            return exc.HoldAlreadyUsed(hold_id, h.order_id)
        if h.state == "active" and now >= h.expires:
            prod.expire_hold(h)
        if h.state == "expired":
            return exc.HoldExpired(hold_id, h.expires)
        if h.state == "active":
            prod.held -= h.qty
            prod.add_available(h.qty)
            h.state = "released"
            prod.unindex(h)
            prod.stats["released"] += 1
        return h.result()

    def convert(self, hold_id: str, order_id: str, now: int) -> Any:
        prod, h = self.hold_of(hold_id)
        if prod is None or h is None:
            return exc.HoldNotFound(hold_id)
        if h.state == "converted":
            if order_id != h.order_id:
                return exc.HoldAlreadyUsed(hold_id, h.order_id)
            return self.order(order_id, now)
        if h.state == "released":
            return exc.HoldReleased(hold_id)
        if h.state == "active" and now >= h.expires:
            prod.expire_hold(h)
        if h.state == "expired":
            return exc.HoldExpired(hold_id, h.expires)
        if order_id in prod.orders:
            return exc.InvalidId(order_id, "order")
        o = ModelOrder(order_id, hold_id, prod.pid, h.customer, h.qty, h.qty * prod.price, now, now + ORDER_TTL)
        prod.orders[order_id] = o
        prod.held -= h.qty
        prod.pending += h.qty
        h.state, h.order_id = "converted", order_id
        prod.unindex(h)
        prod.stats["orders"] += 1
        prod.outbox.append(o.event("order_created"))
        return o.result()

    def settle(self, order_id: str, txn: str, result: str, now: int) -> Any:
        prod, o = self.order_of(order_id)
        if prod is not None and txn in prod.txns:
            first_order, first_result, applied = prod.txns[txn]
            first = prod.orders[first_order]
            prod.stats["duplicate"] += 1
            refund = first_result == "success" and not applied
            return Settlement(first.result(), txn, result, applied, True, refund, False)  # type: ignore[arg-type]
        if prod is None or o is None:
            return exc.OrderNotFound(order_id)
        if o.status == "pending" and now >= o.expires:
            prod.cancel_order(o, now, "expired")
        applied = refund = revived = False
        if o.status == "pending":
            applied = True
            if result == "success":
                prod.pending -= o.qty
                prod.sold += o.qty
                o.status, o.closed, o.txn = "paid", now, txn
                prod.stats["paid"] += 1
                prod.outbox.append(o.event("order_paid"))
            else:
                prod.cancel_order(o, now, "payment_failed")
        elif result == "success" and o.reason == "expired" and prod.available >= o.qty:
            # expired unpaid, its units still on sale: revived, paid after all
            applied = revived = True
            prod.add_available(-o.qty)
            prod.sold += o.qty
            o.status, o.closed, o.txn, o.reason, o.revived = "paid", now, txn, None, True
            prod.stats["revived"] += 1
            prod.outbox.append(o.event("order_revived"))
        elif result == "success":  # cancelled, or paid by another transaction: charged for nothing
            refund = True
            prod.stats["refund_required"] += 1
        prod.txns[txn] = (order_id, result, applied)
        prod.outbox.append((*o.event("payment"), txn, result, str(int(applied)), str(int(refund))))
        return Settlement(o.result(), txn, result, applied, False, refund, revived)  # type: ignore[arg-type]

    def cancel(self, order_id: str, now: int) -> Any:
        prod, o = self.order_of(order_id)
        if prod is None or o is None:
            return exc.OrderNotFound(order_id)
        if o.status == "paid":
            return exc.OrderNotPending(order_id, "paid")
        if o.status == "cancelled":
            return Cancellation(o.result(), changed=False)
        prod.cancel_order(o, now, "expired" if now >= o.expires else "cancelled")
        return Cancellation(o.result(), changed=True)

    def hold(self, hold_id: str, now: int) -> Any:
        prod, h = self.hold_of(hold_id)
        if prod is None or h is None:
            return exc.HoldNotFound(hold_id)
        if h.state == "active" and now >= h.expires:
            prod.expire_hold(h)
        return h.result()

    def order(self, order_id: str, now: int) -> Any:
        prod, o = self.order_of(order_id)
        if prod is None or o is None:
            return exc.OrderNotFound(order_id)
        if o.status == "pending" and now >= o.expires:
            prod.cancel_order(o, now, "expired")
        return o.result()

    def reap(self, p: int, batch: int, now: int) -> ReapResult:
        prod = self.products.get(p)
        if prod is None:
            return ReapResult(p, 0, 0, 0, 0, 0)
        holds, orders, units = prod.reap(now, batch)
        left = prod.overdue_entries(now)
        return ReapResult(p, holds, orders, units, 0, left)


def outcome(call: Any) -> Any:
    try:
        return call()
    except exc.EngineError as error:
        return error


def assert_same(actual: Any, expected: Any) -> None:
    if isinstance(expected, Exception):
        assert type(actual) is type(expected), f"{actual!r} is not {expected!r}"
        assert vars(actual) == vars(expected)
    else:
        assert actual == expected


def describe(event: OutboxEvent) -> Event:
    f = event.fields
    if event.event == "hold_expired":
        return ("hold_expired", f["hold_id"], f["quantity"])
    if event.event == "product_stock":
        return ("product_stock", f["kind"], f["available"])
    described = (event.event, f["order_id"], f["status"], f["note"])
    if event.event == "payment":
        described += (f["transaction_id"], f["result"], f["applied"], f["refund_required"])
    return described


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self._patch = mock.patch.object(server_mixin, "time", self.clock)
        self._patch.start()
        self.client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        self.engine = Engine(self.client, hold_ttl_ms=HOLD_TTL, order_ttl_ms=ORDER_TTL)
        self.brief_engine = Engine(self.client, hold_ttl_ms=SHORT_HOLD_TTL, order_ttl_ms=ORDER_TTL)
        self.model = Model()
        self.serial = itertools.count(1)
        self.txn_serial = itertools.count(1)
        self.unchecked_steps = 0

    def teardown(self) -> None:
        self.client.close()
        self._patch.stop()

    def fresh_id(self, kind: Any, p: int) -> str:
        return format_id(kind, p, f"{next(self.serial):026d}")

    def pick(self, data: st.DataObject, likely: list[str], known: list[str], fresh: str) -> str:
        """Mostly an id in a state where the call does something, sometimes any known id, rarely an unknown one."""
        choice = data.draw(st.integers(0, 9))
        if likely and choice < 6:
            return data.draw(st.sampled_from(likely))
        if known and choice < 9:
            return data.draw(st.sampled_from(known))
        return fresh

    def pick_hold(self, data: st.DataObject, p: int) -> str:
        holds = [h for prod in self.model.products.values() for h in prod.holds.values()]
        active = [h.hold_id for h in holds if h.state == "active"]
        return self.pick(data, active, [h.hold_id for h in holds], self.fresh_id("hold", p))

    def pick_order(self, data: st.DataObject, p: int) -> str:
        orders = [o for prod in self.model.products.values() for o in prod.orders.values()]
        pending = [o.order_id for o in orders if o.status == "pending"]
        return self.pick(data, pending, [o.order_id for o in orders], self.fresh_id("order", p))

    @initialize(
        totals=st.tuples(st.integers(4, 12), st.integers(4, 12)),
        limits=st.tuples(st.sampled_from([0, 2, 3]), st.sampled_from([0, 1, 2])),
        customers=st.lists(st.sampled_from(CUSTOMERS), min_size=2, max_size=4),
    )
    def open_two_sales(self, totals: tuple[int, int], limits: tuple[int, int], customers: list[str | None]) -> None:
        """Two products on sale with a few holds and one order each, so every rule has something to act on."""
        for p, total, limit in zip((1, 2), totals, limits, strict=True):
            self.set_stock(p, total, limit, 100 * p, None)
            holds = [self.reserve_one(p, 1, customer, self.fresh_id("hold", p), None) for customer in customers]
            made = [h for h in holds if isinstance(h, Hold)]
            if made:
                self.convert_one(made[0].hold_id, self.fresh_id("order", p))

    def reserve_one(
        self, p: int, qty: int, customer: str | None, hold_id: str | None, idem: str | None, ttl: int = HOLD_TTL
    ) -> Any:
        engine = self.engine if ttl == HOLD_TTL else self.brief_engine
        actual = outcome(lambda: engine.reserve(p, qty, customer_id=customer, hold_id=hold_id, idempotency_key=idem))
        made = actual.hold_id if isinstance(actual, Hold) else self.fresh_id("hold", p)
        now = self.clock.ms
        assert_same(actual, self.model.reserve(p, qty, customer or "", hold_id or made, idem or "", now, ttl))
        return actual

    def convert_one(self, hold_id: str, order_id: str | None) -> Any:
        actual = outcome(lambda: self.engine.convert(hold_id, order_id=order_id))
        made = actual.order_id if isinstance(actual, Order) else self.fresh_id("order", 1)
        assert_same(actual, self.model.convert(hold_id, order_id or made, self.clock.ms))
        return actual

    @rule(
        p=product_ids,
        total=st.integers(0, 12),
        limit=st.sampled_from([0, 0, 1, 2, 3]),
        price=st.sampled_from([0, 100, 250]),
        window=st.sampled_from([None, None, None, "open", "future", "past"]),
    )
    def set_stock(self, p: int, total: int, limit: int, price: int, window: str | None) -> None:
        now = self.clock.ms
        starts, ends = {
            None: (0, 0),
            "open": (now - 1_000, now + 4_000),
            "future": (now + 1_500, 0),
            "past": (now - 5_000, now - 1),
        }[window]
        actual = outcome(
            lambda: self.engine.set_stock(
                p,
                total,
                price_cents=price,
                max_per_customer=limit,
                starts_at_ms=starts or None,
                ends_at_ms=ends or None,
            )
        )
        assert_same(actual, self.model.set_stock(p, total, price, limit, starts, ends, now))

    @rule(
        data=st.data(),
        p=product_ids,
        qty=st.integers(1, 4),
        customer=st.sampled_from(CUSTOMERS),
        mode=st.sampled_from(["new", "new", "replay", "auto"]),
        idem=st.sampled_from([None, None, "k1", "k2"]),
        ttl=st.sampled_from([HOLD_TTL, HOLD_TTL, SHORT_HOLD_TTL]),
    )
    def reserve(
        self, data: st.DataObject, p: int, qty: int, customer: str | None, mode: str, idem: str | None, ttl: int
    ) -> None:
        prod = self.model.products.get(p)
        hold_id: str | None = self.fresh_id("hold", p)
        if mode == "replay" and prod and prod.holds:
            hold_id = data.draw(st.sampled_from(sorted(prod.holds)))
        elif mode == "auto":
            hold_id = None
        self.reserve_one(p, qty, customer, hold_id, idem, ttl)

    @rule(data=st.data(), p=product_ids)
    def release(self, data: st.DataObject, p: int) -> None:
        hold_id = self.pick_hold(data, p)
        assert_same(outcome(lambda: self.engine.release(hold_id)), self.model.release(hold_id, self.clock.ms))

    @rule(data=st.data(), p=product_ids, mode=st.sampled_from(["new", "new", "replay", "other", "auto"]))
    def convert(self, data: st.DataObject, p: int, mode: str) -> None:
        hold_id = self.pick_hold(data, p)
        _, h = self.model.hold_of(hold_id)
        hp = parse_id(hold_id, "hold").product_id
        order_id: str | None = self.fresh_id("order", hp)
        others = sorted(self.model.products[hp].orders) if hp in self.model.products else []
        if mode == "replay" and h is not None and h.order_id:
            order_id = h.order_id
        elif mode == "other" and others:
            order_id = data.draw(st.sampled_from(others))
        elif mode == "auto":
            order_id = None
        self.convert_one(hold_id, order_id)

    @rule(
        data=st.data(),
        p=product_ids,
        reuse=st.booleans(),
        result=st.sampled_from(["success", "success", "failed"]),
        payload=st.sampled_from(["", "{}", '{"id": 7}']),
    )
    def settle(self, data: st.DataObject, p: int, reuse: bool, result: Any, payload: str) -> None:
        order_id = self.pick_order(data, p)
        prod, _ = self.model.order_of(order_id)
        txn = f"txn-{next(self.txn_serial)}"
        if reuse and prod is not None and prod.txns:
            txn = data.draw(st.sampled_from(sorted(prod.txns)))
        actual = outcome(lambda: self.engine.settle(order_id, txn, result, payload))
        assert_same(actual, self.model.settle(order_id, txn, result, self.clock.ms))

    @rule(data=st.data(), p=product_ids)
    def cancel(self, data: st.DataObject, p: int) -> None:
        order_id = self.pick_order(data, p)
        assert_same(outcome(lambda: self.engine.cancel(order_id)), self.model.cancel(order_id, self.clock.ms))

    @rule(data=st.data(), p=product_ids)
    def read_one(self, data: st.DataObject, p: int) -> None:
        if data.draw(st.booleans()):
            hold_id = self.pick_hold(data, p)
            assert_same(outcome(lambda: self.engine.hold(hold_id)), self.model.hold(hold_id, self.clock.ms))
        else:
            order_id = self.pick_order(data, p)
            assert_same(outcome(lambda: self.engine.order(order_id)), self.model.order(order_id, self.clock.ms))

    @rule(p=product_ids, batch=st.sampled_from([1, 2, 200]))
    def reap(self, p: int, batch: int) -> None:
        assert_same(self.engine.reap(p, batch), self.model.reap(p, batch, self.clock.ms))

    @rule(
        ms=st.sampled_from([1, 250, 500, HOLD_TTL - 1, HOLD_TTL, HOLD_TTL, HOLD_TTL + 1, ORDER_TTL, ORDER_TTL, 5_000]),
        unchecked=st.integers(0, 3),
    )
    def advance_clock(self, ms: int, unchecked: int) -> None:
        """Move server time, then let up to ``unchecked`` more calls meet overdue holds and orders themselves."""
        self.clock.advance(ms)
        self.unchecked_steps = unchecked + 1

    def records(self, key: str) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.client.hgetall(key).items()}

    @invariant()
    def engine_matches_the_model(self) -> None:
        if self.unchecked_steps:
            # The full check reaps everything, so it waits while calls meet overdue items (lazy reaping).
            self.unchecked_steps -= 1
            return
        now = self.clock.ms
        for p in PRODUCTS:
            prod = self.model.products.get(p)
            if prod is None:
                assert isinstance(outcome(lambda p=p: self.engine.snapshot(p)), exc.ProductNotFound)
                continue
            prod.reap_all(now)
            snap = self.engine.snapshot(p)
            assert snap.consistent
            assert snap == Snapshot(
                p,
                prod.total,
                prod.available,
                prod.held,
                prod.pending,
                prod.sold,
                prod.price,
                prod.limit,
                prod.starts or None,
                prod.ends or None,
                now,
                len(prod.outbox),
            )
            assert self.engine.stats(p) == dict(+prod.stats)
            # Every record, raw and in one read; the live ones also through the engine's own reads.
            keys = product_keys(p)
            assert self.records(keys.holds) == {parse_id(i, "hold").ulid: h.record() for i, h in prod.holds.items()}
            assert self.records(keys.orders) == {parse_id(i, "order").ulid: o.record() for i, o in prod.orders.items()}
            for h in prod.holds.values():
                if h.state == "active":
                    assert self.engine.hold(h.hold_id) == h.result()
            for o in prod.orders.values():
                if o.status == "pending":
                    assert self.engine.order(o.order_id) == o.result()
            quotas = self.client.hgetall(keys.customers)
            assert {k.decode(): int(v) for k, v in quotas.items()} == prod.quotas()
            events = self.engine.read_outbox(p, count=100_000)
            assert [describe(e) for e in events] == prod.outbox
            self.engine.ack_outbox(p, [e.id for e in events])
            prod.outbox.clear()


TestEngineMatchesTheModel = EngineMachine.TestCase
# A minute of CPU, started first in make test; a machine loaded several times over can take more than the
# suite's 300 s per test.
TestEngineMatchesTheModel.pytestmark = [pytest.mark.early, pytest.mark.timeout(1200)]
TestEngineMatchesTheModel.settings = settings(
    max_examples=80,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    # The explain phase traces every line under sys.settrace: minutes on a failure, for little gain here.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
