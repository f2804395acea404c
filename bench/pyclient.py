"""The fallback load generator when wrk is absent: keep-alive HTTP/1.1 over asyncio streams.

It sends the same traffic as the wrk scripts in bench/wrk/ (same paths, bodies and purchase flow), one
coroutine per connection, and times every request. One Python process is slower than the server it
measures, so its figures are a floor; the harness marks them ``python``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import secrets
import time
from collections import Counter
from urllib.parse import urlsplit

from bench.traffic import HttpRun, Traffic
from shared import signing

_HOLD = re.compile(rb'^\{"hold_id":"(h\d+_\w+)"')
_ORDER = re.compile(rb'^\{"order_id":"(o\d+_\w+)"')


class Flow:
    """The requests of one traffic shape; ``answer`` sees each response (to count it, or to follow it up)."""

    def __init__(self, traffic: Traffic, host: str) -> None:
        self.script = traffic.script
        self.args = traffic.args
        self.host = host
        self.counts: Counter[str] = Counter()
        self.serial = itertools.count(1)
        self.run = secrets.token_hex(4)
        """Makes this run's transaction ids its own: an id reused for another order is refused (409)."""
        self.holds: list[str] = []
        self.orders: list[str] = []
        self.tickets: list[str] = []
        self.pause = float(traffic.args[2]) / 1000 if traffic.script == "holds_paced" else 0.0

    def _post(self, path: str, body: bytes, extra: str = "") -> bytes:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n"
        )
        return head.encode() + body

    def next_request(self) -> bytes:
        n = next(self.serial)
        if self.script == "livez":
            return f"GET /livez HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()
        if self.script in ("holds", "holds_paced"):
            product = random.randint(int(self.args[0]), int(self.args[1]))
            body = f'{{"product_id":{product},"quantity":1,"customer_id":"py-{n}"}}'.encode()
            return self._post("/api/holds", body)
        if self.script == "holds_jwt":  # as holds_jwt.lua: the tokens follow FIRST LAST, used in turn
            product = random.randint(int(self.args[0]), int(self.args[1]))
            token = self.args[2 + n % (len(self.args) - 2)]
            body = f'{{"product_id":{product},"quantity":1}}'.encode()
            return self._post("/api/holds", body, f"Authorization: Bearer {token}\r\n")
        if self.script == "queue_join":
            return self._post(f"/api/products/{self.args[0]}/queue", b"")
        if self.script == "queue_poll":
            if not self.tickets:
                with open(self.args[0], encoding="utf-8") as listed:
                    self.tickets = listed.read().split()
            return (
                f"GET /api/queue/{self.tickets[n % len(self.tickets)]} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()
            )
        if self.script == "purchases":
            product, secret = int(self.args[0]), self.args[1]
            if self.orders:
                txn = f"tpy-{self.run}-{n}"
                body = f'{{"order_id":"{self.orders.pop()}","transaction_id":"{txn}","status":"success"}}'.encode()
                stamp = str(int(time.time()))
                signature = signing.sign(secret, stamp, body)
                extra = f"{signing.TIMESTAMP_HEADER}: {stamp}\r\n{signing.SIGNATURE_HEADER}: {signature}\r\n"
                return self._post("/api/payments/webhook", body, extra)
            if self.holds:
                return self._post("/api/orders", f'{{"hold_id":"{self.holds.pop()}"}}'.encode())
            return self._post("/api/holds", f'{{"product_id":{product},"quantity":1,"customer_id":"pp-{n}"}}'.encode())
        raise ValueError(f"no Python traffic named {self.script!r}")

    def answer(self, status: int, body: bytes) -> None:
        if self.script == "purchases":
            if status == 201 and (hold := _HOLD.match(body)):
                self.holds.append(hold.group(1).decode())
                self.counts["hold"] += 1
                return
            if status == 201 and (order := _ORDER.match(body)):
                self.orders.append(order.group(1).decode())
                self.counts["order"] += 1
                return
            if status == 200 and b'"status":"paid"' in body:
                self.counts["paid"] += 1
                return
        self.counts[str(status)] += 1


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _connection(
    host: str, port: int, flow: Flow, deadline: float, latencies: list[float], errors: Counter[str]
) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        errors["connect"] += 1
        return
    try:
        while time.perf_counter() < deadline:
            request = flow.next_request()
            started = time.perf_counter()
            try:
                status, body = await _exchange(reader, writer, request)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors["read"] += 1
                return
            latencies.append(time.perf_counter() - started)
            if status >= 400:
                errors["status"] += 1
            flow.answer(status, body)
            if flow.pause:
                await asyncio.sleep(random.uniform(0, 2 * flow.pause))  # as holds_paced.lua: out of step
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


async def _drive(base_url: str, traffic: Traffic, connections: int, seconds: float) -> HttpRun:
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    flow = Flow(traffic, f"{host}:{port}")
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_connection(host, port, flow, deadline, latencies, errors) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return HttpRun(
        tool="python",
        connections=connections,
        seconds=elapsed,
        requests=len(ordered),
        p50_ms=_percentile(ordered, 50) * 1000,
        p90_ms=_percentile(ordered, 90) * 1000,
        p99_ms=_percentile(ordered, 99) * 1000,
        max_ms=(ordered[-1] if ordered else 0.0) * 1000,
        errors=dict(errors),
        counts=dict(flow.counts),
    )


def run_python(base_url: str, traffic: Traffic, connections: int, seconds: float) -> HttpRun:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_drive(base_url, traffic, connections, seconds))
    return uvloop.run(_drive(base_url, traffic, connections, seconds))
