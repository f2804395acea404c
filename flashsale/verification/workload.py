"""A mixed buyer workload over HTTP, and the ledger of everything the API acknowledged.

Each client loops through one purchase at a time: hold, then release, abandon (the hold expires), or
order; an order is paid, fails, is cancelled or is left to expire; some webhooks are sent twice, and a
few requests are deliberately invalid. Only answers the API gave count: a 2xx goes in the ledger, which
``flashsale.verification.audit`` later compares with PostgreSQL. A request with no answer (the server was down) is
counted, never assumed to have done anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.webhook import WEBHOOK_PATH, webhook

TRANSPORT_BACKOFF_SECONDS = 0.2
"""A client whose request got no answer waits this long before the next, so a dead server is not spun on."""


@dataclass(frozen=True)
class Mix:
    """How often each path is taken (probabilities)."""

    release: float = 0.15
    """A hold given back at once."""
    abandon: float = 0.10
    """A hold left to expire."""
    pay_success: float = 0.55
    pay_failed: float = 0.15
    cancel: float = 0.10
    """The rest of the orders are left pending, to expire."""
    resend_webhook: float = 0.15
    """A payment notification delivered twice."""
    invalid: float = 0.03
    """A request the API must refuse with a 4xx (absurd quantity, malformed id)."""
    max_quantity: int = 2


@dataclass
class AckedOrder:
    order_id: str
    product_id: int
    quantity: int
    status: str
    """The last status the API answered for it: pending, paid or cancelled."""
    transaction_id: str | None = None
    """The transaction the API said paid it."""


@dataclass
class AckedPayment:
    transaction_id: str
    order_id: str
    result: str
    applied: bool


@dataclass
class Ledger:
    """What the API acknowledged with a 2xx."""

    orders: dict[str, AckedOrder] = field(default_factory=dict)
    payments: dict[str, AckedPayment] = field(default_factory=dict)


@dataclass
class Tally:
    """Every request and what came of it."""

    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    """Answers by status and problem code: ``201``, ``409 out_of_stock``, ``503 engine_unavailable``."""
    transport_errors: Counter[str] = field(default_factory=Counter)
    """Requests without an answer, by exception name (the server was down or the connection broke)."""
    steps: Counter[str] = field(default_factory=Counter)
    """Acknowledged steps: held, released, abandoned, ordered, paid, payment_failed, cancelled, duplicates; and
    hold_lost, an acknowledged hold the API later answered it does not know."""
    violations: list[str] = field(default_factory=list)
    """Answers that break the API's contract (a 500, a wrong shape, a payment applied twice)."""
    error_latencies: list[tuple[float, float, str]] = field(default_factory=list)
    """(started at, seconds taken, status and code) of every 5xx, to check outages answer quickly."""
    answers: list[tuple[float, float, str]] = field(default_factory=list)
    """The same for every answer, when the workload records them (``record_answers``)."""

    def server_errors(self) -> Counter[str]:
        return Counter({k: n for k, n in self.statuses.items() if k.startswith("5")})

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "statuses": dict(sorted(self.statuses.items())),
            "transport_errors": dict(self.transport_errors),
            "steps": dict(sorted(self.steps.items())),
            "violations": len(self.violations),
        }


class Stop:
    """Tells clients to finish their current step and end (set from any thread)."""

    def __init__(self, seconds: float | None = None) -> None:
        self.deadline = time.monotonic() + seconds if seconds is not None else float("inf")
        self._set = False

    def set(self) -> None:
        self._set = True

    def __bool__(self) -> bool:
        return self._set or time.monotonic() >= self.deadline


@dataclass
class Workload:
    """``clients`` buyers on ``products`` through the API at ``urls`` (one picked per request)."""

    urls: Sequence[str]
    products: Sequence[int]
    webhook_secret: str
    clients: int = 50
    mix: Mix = field(default_factory=Mix)
    seed: int = 0
    customers: int = 1000
    timeout: float = 10.0
    record_answers: bool = False
    """Keep (started at, seconds taken, status and code) of every answer in ``tally.answers``."""
    ledger: Ledger = field(default_factory=Ledger)
    tally: Tally = field(default_factory=Tally)
    started_at: float = 0.0
    ended_at: float = 0.0

    @property
    def seconds(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    async def run(self, stop: Stop) -> None:
        # One small client per buyer: httpx's pool scans all its connections on every request, so one
        # shared pool of hundreds of connections would make this process, not the API, the bottleneck.
        tls = ssl.create_default_context()
        limits = httpx.Limits(max_connections=len(self.urls), max_keepalive_connections=len(self.urls))
        timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 2.0))
        self.started_at = time.monotonic()
        async with contextlib.AsyncExitStack() as clients:
            https = [
                await clients.enter_async_context(httpx.AsyncClient(limits=limits, timeout=timeout, verify=tls))
                for _ in range(self.clients)
            ]
            await asyncio.gather(*(self._client(http, i, stop) for i, http in enumerate(https)))
        self.ended_at = time.monotonic()

    async def _client(self, http: httpx.AsyncClient, index: int, stop: Stop) -> None:
        buyer = _Buyer(self, http, random.Random(self.seed * 100_003 + index), index)
        while not stop:
            await buyer.purchase()


class _Buyer:
    def __init__(self, load: Workload, http: httpx.AsyncClient, rng: random.Random, index: int) -> None:
        self.load = load
        self.http = http
        self.rng = rng
        self.index = index
        self.mix = load.mix
        self.tally = load.tally
        self.ledger = load.ledger
        self.sequence = 0
        self.turn = 0

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """(status, JSON body or None); status 0 when no answer came."""
        # Round robin: a purchase's steps go to different servers, and no keep-alive connection idles long
        # enough for the server to close it just as a request goes out on it.
        self.turn += 1
        url = self.load.urls[(self.index + self.turn) % len(self.load.urls)] + path
        self.tally.requests += 1
        started = time.monotonic()
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            self.tally.transport_errors[type(error).__name__] += 1
            await asyncio.sleep(TRANSPORT_BACKOFF_SECONDS)
            return 0, None
        taken = time.monotonic() - started
        body = _json(response)
        code = body.get("code") if isinstance(body, dict) and response.status_code >= 400 else None
        key = f"{response.status_code} {code}" if code else str(response.status_code)
        self.tally.statuses[key] += 1
        if self.load.record_answers:
            self.tally.answers.append((started, taken, key))
        if response.status_code >= 500:
            self.tally.error_latencies.append((started, taken, key))
            if response.status_code == 500 or code is None:
                self.violation(f"{method} {path} answered {key}: {response.text[:200]}")
        elif response.status_code >= 400 and (
            code is None or "problem+json" not in response.headers.get("content-type", "")
        ):
            self.violation(f"{method} {path} answered {response.status_code} without a problem body")
        return response.status_code, body

    def violation(self, what: str) -> None:
        self.tally.violations.append(what)

    async def purchase(self) -> None:
        if self.rng.random() < self.mix.invalid:
            await self.invalid()
            return
        product_id = self.rng.choice(self.load.products)
        quantity = self.rng.randint(1, self.mix.max_quantity)
        customer = f"c{self.rng.randrange(self.load.customers)}"
        status, body = await self.call(
            "POST", "/api/holds", json={"product_id": product_id, "quantity": quantity, "customer_id": customer}
        )
        if status != 201:
            return
        self.tally.steps["held"] += 1
        hold_id = body["hold_id"]
        roll = self.rng.random()
        if roll < self.mix.release:
            status, body = await self.call("DELETE", f"/api/holds/{hold_id}")
            if status == 204:
                self.tally.steps["released"] += 1
            self.check_hold(status, body)
            return
        if roll < self.mix.release + self.mix.abandon:
            self.tally.steps["abandoned"] += 1
            return
        status, body = await self.call("POST", "/api/orders", json={"hold_id": hold_id})
        if status != 201:
            self.check_hold(status, body)
            return
        if body.get("status") != "pending" or body.get("quantity") != quantity:
            self.violation(f"order for {hold_id} answered {body}")
        order = AckedOrder(body["order_id"], product_id, quantity, "pending")
        self.ledger.orders[order.order_id] = order
        self.tally.steps["ordered"] += 1
        await self.settle(order)

    def check_hold(self, status: int, body: Any) -> None:
        """A hold the API acknowledged that it no longer knows was lost (an expired one answers 410, not 404)."""
        if status == 404 and isinstance(body, dict) and body.get("code") == "hold_not_found":
            self.tally.steps["hold_lost"] += 1

    async def settle(self, order: AckedOrder) -> None:
        roll = self.rng.random()
        if roll < self.mix.pay_success:
            await self.pay(order, "success")
        elif roll < self.mix.pay_success + self.mix.pay_failed:
            await self.pay(order, "failed")
        elif roll < self.mix.pay_success + self.mix.pay_failed + self.mix.cancel:
            status, body = await self.call("POST", f"/api/orders/{order.order_id}/cancel")
            if status == 200:
                self.record_order(order, body)
                self.tally.steps["cancelled"] += 1
        else:
            self.tally.steps["left_pending"] += 1

    async def pay(self, order: AckedOrder, result: str) -> None:
        self.sequence += 1
        transaction_id = f"w{self.load.seed}-{self.index}-{self.sequence}-{self.rng.getrandbits(32):08x}"
        raw, headers = webhook(self.load.webhook_secret, order.order_id, transaction_id, result)
        deliveries = 2 if self.rng.random() < self.mix.resend_webhook else 1
        for delivery in range(deliveries):
            status, body = await self.call("POST", WEBHOOK_PATH, content=raw, headers=headers)
            if status != 200:
                continue
            self.record_payment(order, transaction_id, result, body, again=delivery > 0)

    def record_payment(self, order: AckedOrder, transaction_id: str, result: str, body: Any, *, again: bool) -> None:
        applied, duplicate = bool(body.get("applied")), bool(body.get("duplicate"))
        known = self.ledger.payments.get(transaction_id)
        if known is not None:
            if not duplicate:
                self.violation(f"transaction {transaction_id} delivered again was not a duplicate: {body}")
            elif applied != known.applied:
                self.violation(f"transaction {transaction_id}: applied {known.applied}, then {applied}: {body}")
            self.tally.steps["duplicates"] += 1
            return
        if again and duplicate:
            self.tally.steps["duplicates"] += 1  # the first delivery's answer was lost: this one tells
        self.ledger.payments[transaction_id] = AckedPayment(transaction_id, order.order_id, result, applied)
        expected = "paid" if result == "success" else "cancelled"
        if applied and body.get("status") != expected:
            self.violation(f"transaction {transaction_id} applied but the order is {body.get('status')}")
        if applied:
            self.tally.steps["paid" if result == "success" else "payment_failed"] += 1
        else:
            self.tally.steps["payment_not_applied"] += 1
        self.record_order(order, body)

    def record_order(self, order: AckedOrder, body: Any) -> None:
        status = body.get("status")
        if order.status != "pending" and status != order.status:
            self.violation(f"order {order.order_id} was {order.status}, now answered {status}")
        if status in ("paid", "cancelled"):
            order.status = status
            if status == "paid":
                order.transaction_id = body.get("transaction_id")

    async def invalid(self) -> None:
        """A request that must be refused with a 4xx and change nothing."""
        choice = self.rng.randrange(4)
        if choice == 0:
            status, _ = await self.call("POST", "/api/holds", json={"product_id": 1, "quantity": 10**9})
        elif choice == 1:
            status, _ = await self.call("POST", "/api/orders", json={"hold_id": "h1_../../fs:{2}:product"})
        elif choice == 2:
            status, _ = await self.call("GET", "/api/orders/o1_" + "Z" * 60)
        else:
            status, _ = await self.call("POST", WEBHOOK_PATH, json={"order_id": "o1_x", "status": "success"})
        if status and not 400 <= status < 500:
            self.violation(f"an invalid request (kind {choice}) answered {status}")
        elif status:
            self.tally.steps["refused_invalid"] += 1


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def run(load: Workload, seconds: float) -> Workload:
    """Run ``load`` for ``seconds`` in this thread (blocking); returns it, filled in."""
    asyncio.run(load.run(Stop(seconds)))
    return load
