"""The race test over HTTP: put N units on sale, fire many holds at once, and check nothing was oversold.

Then a sample of the winners completes a purchase (order, signed webhook, the same webhook again) and the
final states are checked. It talks to the API only, so it tests whatever server answers at the URL.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from shared.webhook import WEBHOOK_PATH, webhook

Headers = dict[str, str]
Sign = Callable[[str], str]
"""A buyer token for a customer id (servers with FLASHSALE_BUYER_AUTH=jwt take holds and orders only with one)."""

RACE_PRODUCT_NAME = "flashsale race test"
RACE_PRICE_CENTS = 100


class RaceError(Exception):
    """The race could not be run (the server is unreachable, the admin token is refused)."""


@dataclass(frozen=True)
class Check:
    step: str
    ok: bool
    detail: str


@dataclass
class RaceReport:
    product_id: int
    stock: int
    concurrency: int
    quantity: int
    committed_before: int
    """Units of the product already held, pending or sold before the race; left as they were."""
    successes: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    """Refusals (4xx) by problem code."""
    server_errors: dict[str, int] = field(default_factory=dict)
    """5xx answers by status."""
    other_errors: dict[str, int] = field(default_factory=dict)
    """No usable answer: transport failures by kind, or statuses the contract does not allow."""
    available_after: int | None = None
    lowest_available: int | None = None
    """The lowest ``available`` seen while the holds were in flight (polled, and in refusals)."""
    checks: list[Check] = field(default_factory=list)
    released: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def expected_successes(self) -> int:
        return min(self.concurrency, self.stock // self.quantity)

    @property
    def expected_available(self) -> int:
        return self.stock - self.expected_successes * self.quantity

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "expected_successes": self.expected_successes,
            "expected_available": self.expected_available,
            "verdict": "pass" if self.passed else "fail",
        }


Progress = Callable[[str], None]


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("code") or f"http_{response.status_code}")
    except ValueError:
        return f"http_{response.status_code}"


async def _setup(
    client: httpx.AsyncClient, product_id: int, stock: int, admin_token: str
) -> tuple[dict[str, Any], int]:
    """Put ``stock`` units on sale on top of what is already committed; returns the product and that amount."""
    current = await client.get(f"/api/products/{product_id}")
    if current.status_code == 200:
        existing = current.json()
        committed = existing["stock"] - existing["available"]
        body: dict[str, Any] = {"name": existing["name"], "price_cents": existing["price_cents"]}
        for name in ("max_per_customer", "sale_starts_at", "sale_ends_at"):
            if existing.get(name) is not None:
                body[name] = existing[name]
    elif current.status_code == 404:
        committed = 0
        body = {"name": RACE_PRODUCT_NAME, "price_cents": RACE_PRICE_CENTS}
    else:
        raise RaceError(f"GET /api/products/{product_id} answered {current.status_code} {_code(current)}")
    body["stock"] = committed + stock
    put = await client.put(
        f"/api/admin/products/{product_id}", json=body, headers={"Authorization": f"Bearer {admin_token}"}
    )
    if put.status_code in (401, 403):
        raise RaceError(
            f"the admin API refused the token ({put.status_code} {_code(put)}): set FLASHSALE_ADMIN_TOKEN to the "
            "server's, or run where `flashsale up` keeps var/admin_token"
        )
    if put.status_code not in (200, 201):
        raise RaceError(f"PUT /api/admin/products/{product_id} answered {put.status_code} {_code(put)}")
    return put.json(), committed


def _buyer(sign: Sign | None, customer: str) -> Headers:
    return {} if sign is None else {"Authorization": f"Bearer {sign(customer)}"}


async def _fire(
    client: httpx.AsyncClient, report: RaceReport, run: str, sign: Sign | None
) -> list[tuple[str, Headers]]:
    """All holds at once, with a poller watching ``available``; returns the winners' hold ids and buyer headers."""
    go = asyncio.Event()
    done = asyncio.Event()
    winners: list[tuple[str, Headers]] = []
    refusals: Counter[str] = Counter()
    server: Counter[str] = Counter()
    other: Counter[str] = Counter()
    seen: list[int] = []
    path = f"/api/products/{report.product_id}"

    async def one(i: int) -> None:
        customer = f"race-{run}-{i}"
        headers = _buyer(sign, customer)
        await go.wait()
        body = {"product_id": report.product_id, "quantity": report.quantity, "customer_id": customer}
        try:
            response = await client.post("/api/holds", json=body, headers=headers)
        except httpx.HTTPError as error:
            other[type(error).__name__] += 1
            return
        if response.status_code == 201:
            winners.append((response.json()["hold_id"], headers))
        elif response.status_code >= 500:
            server[f"http_{response.status_code}"] += 1
        elif 400 <= response.status_code < 500:
            answer = response.json()
            refusals[str(answer.get("code"))] += 1
            if isinstance(answer.get("available"), int):
                seen.append(answer["available"])
        else:
            other[f"http_{response.status_code}"] += 1

    async def watch() -> None:
        await go.wait()
        while not done.is_set():
            try:
                response = await client.get(path)
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                seen.append(response.json()["available"])

    # Open the connections first, so that the holds leave together rather than behind TCP handshakes.
    await asyncio.gather(*(client.get("/livez") for _ in range(report.concurrency)), return_exceptions=True)
    holds = [asyncio.create_task(one(i)) for i in range(report.concurrency)]
    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    go.set()
    await asyncio.gather(*holds)
    done.set()
    await watcher
    report.successes = len(winners)
    report.refusals, report.server_errors, report.other_errors = dict(refusals), dict(server), dict(other)
    report.lowest_available = min(seen) if seen else None
    return winners


async def _purchase(
    client: httpx.AsyncClient,
    hold_id: str,
    buyer: Headers,
    price_cents: int,
    quantity: int,
    secret: str,
    run: str,
    i: int,
) -> tuple[list[Check], bool]:
    """Order, pay, pay again, read back; returns the checks and whether an order now holds the units."""
    checks: list[Check] = []

    def check(step: str, ok: bool, detail: str) -> bool:
        checks.append(Check(step, ok, detail))
        return ok

    response = await client.post("/api/orders", json={"hold_id": hold_id}, headers=buyer)
    answer = response.json()
    ordered = response.status_code == 201 and answer.get("status") == "pending"
    if not check(
        "order",
        ordered and answer.get("amount_cents") == price_cents * quantity,
        f"{response.status_code} {answer.get('status') or answer.get('code')}, amount {answer.get('amount_cents')}",
    ):
        return checks, ordered
    order_id = answer["order_id"]
    body, headers = webhook(secret, order_id, f"race-{run}-{i}", "success")
    response = await client.post(WEBHOOK_PATH, content=body, headers=headers)
    answer = response.json()
    check(
        "pay",
        response.status_code == 200
        and answer.get("status") == "paid"
        and answer.get("applied") is True
        and answer.get("duplicate") is False,
        f"{response.status_code} {answer.get('status') or answer.get('code')}, applied {answer.get('applied')}",
    )
    response = await client.post(WEBHOOK_PATH, content=body, headers=headers)
    answer = response.json()
    check(
        "duplicate webhook",
        response.status_code == 200 and answer.get("duplicate") is True and answer.get("status") == "paid",
        f"{response.status_code} {answer.get('status') or answer.get('code')}, duplicate {answer.get('duplicate')}",
    )
    response = await client.get(f"/api/orders/{order_id}", headers=buyer)
    answer = response.json()
    check(
        "final state",
        response.status_code == 200 and answer.get("status") == "paid",
        f"{response.status_code} {answer.get('status') or answer.get('code')}",
    )
    return checks, True


async def run_race(
    client: httpx.AsyncClient,
    *,
    product_id: int,
    stock: int,
    concurrency: int,
    quantity: int,
    admin_token: str,
    webhook_secret: str | None,
    sample: int = 3,
    say: Progress | None = None,
    sign: Sign | None = None,
) -> RaceReport:
    """Run the race against the API behind ``client``; ``webhook_secret`` None skips the purchase checks.

    ``sign`` gives each racing customer a buyer token (needed where FLASHSALE_BUYER_AUTH=jwt)."""
    tell = say or (lambda _: None)
    run = secrets.token_hex(3)
    try:
        product, committed = await _setup(client, product_id, stock, admin_token)
    except httpx.HTTPError as error:
        raise RaceError(f"the API does not answer: {error}") from error
    report = RaceReport(product_id, stock, concurrency, quantity, committed)
    if product["available"] != stock:
        report.failures.append(f"after setting the stock, available was {product['available']}, not {stock}")
    tell(f"product {product_id}: {stock} units on sale; firing {concurrency} holds of {quantity}")

    winners = await _fire(client, report, run, sign)
    response = await client.get(f"/api/products/{product_id}")
    report.available_after = response.json().get("available") if response.status_code == 200 else None

    ordered = 0
    if webhook_secret is not None and winners:
        tell(f"completing a purchase for {min(sample, len(winners))} winner(s)")
        for i, (hold_id, buyer) in enumerate(winners[:sample]):
            checks, holds_units = await _purchase(
                client, hold_id, buyer, product["price_cents"], quantity, webhook_secret, run, i
            )
            report.checks += checks
            ordered += holds_units
    rest = winners[sample:] if webhook_secret is not None else winners
    for hold_id, buyer in rest:
        response = await client.delete(f"/api/holds/{hold_id}", headers=buyer)
        report.released += response.status_code == 204
    response = await client.get(f"/api/products/{product_id}")
    available_at_end = response.json().get("available") if response.status_code == 200 else None

    _judge(report, ordered, available_at_end)
    return report


def _judge(report: RaceReport, ordered: int, available_at_end: int | None) -> None:
    fail = report.failures.append
    if report.successes != report.expected_successes:
        fail(f"{report.successes} holds succeeded, expected exactly {report.expected_successes}")
    if report.available_after != report.expected_available:
        fail(f"available ended at {report.available_after}, expected {report.expected_available}")
    if report.lowest_available is not None and report.lowest_available < 0:
        fail(f"available went negative: {report.lowest_available}")
    if report.server_errors:
        fail(f"{sum(report.server_errors.values())} request(s) answered 5xx")
    if report.other_errors:
        fail(f"{sum(report.other_errors.values())} request(s) got no usable answer")
    unexpected = {code: n for code, n in report.refusals.items() if code != "out_of_stock"}
    if unexpected:
        fail(f"refusals other than out_of_stock: {unexpected}")
    for check in report.checks:
        if not check.ok:
            fail(f"purchase step {check.step!r} failed: {check.detail}")
    expected_end = report.stock - ordered * report.quantity
    if available_at_end != expected_end:
        fail(f"after the purchases and releases, available was {available_at_end}, expected {expected_end}")
