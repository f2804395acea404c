"""The dashboard's figures: sampled at most every ``TICK_SECONDS`` however many watch, with a rate history.

Nothing runs in the background: whoever wants an update newer than the one it has waits for the next tick,
and one of the waiters samples the engine for all of them. A watcher that falls behind gets the latest
update, never a backlog, so the stream is coalesced on the server. Holds and orders per second are deltas
of the engine's running counts, kept per process for the last ``HISTORY_SECONDS``. The reconcile verdict
reads PostgreSQL, so it is refreshed less often and off the sampling path.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import sqlalchemy as sa

from api import threadpool
from api.bodies import DashboardStats
from api.catalog_cache import CatalogCache
from api.errors import DatabaseUnavailable
from api.metrics import ProductFigures, engine_figures
from api.times import iso
from engine import AsyncEngine, Engine
from engine.aio import deadline
from engine.exceptions import EngineUnavailable
from engine.types import WaitingRoom
from persistence.deliveries import counts as delivery_counts
from persistence.refunds import open_count
from reconciliation.collect import collect
from reconciliation.compare import Finding, compare
from shared.logs import get_logger

log = get_logger("api.feed")

_encoder = msgspec.json.Encoder()

TICK_SECONDS = 0.5
"""At most two updates a second, whatever the traffic."""
POINT_SECONDS = 2.0
"""One point of the rate history every this many seconds."""
HISTORY_SECONDS = 300.0
RECONCILE_SECONDS = 2.0
FIRST_VERDICT_WAIT_SECONDS = 1.0
"""The first update waits this long for the first verdict, rather than show "not checked yet"."""

COUNTS = (
    "holds",
    "out_of_stock",
    "limit",
    "released",
    "expired",
    "orders",
    "paid",
    "payment_failed",
    "cancelled",
    "order_expired",
    "duplicate",
    "refund_required",
)
"""The engine's running counts per product (``engine.stats``), reported 0 until they first move."""

_SEVERITY = {"consistent": 0, "behind": 1, "drifted": 2}


@dataclass(frozen=True, slots=True)
class Point:
    """The engine's running totals, summed over products, at one moment."""

    at_ms: int
    holds: int
    orders: int


@dataclass(frozen=True, slots=True)
class Update:
    version: int
    sampled_at: float
    """time.monotonic() of the sample."""
    body: bytes
    """The stats document, JSON."""


def rates(points: Sequence[Point]) -> list[dict[str, Any]]:
    """Holds and orders per second between consecutive points, at the later point's time.

    A running count that went down (Redis flushed, a product rebuilt) counts as no activity, not negative.
    """
    out = []
    for before, after in itertools.pairwise(points):
        seconds = (after.at_ms - before.at_ms) / 1000
        if seconds <= 0:
            continue
        out.append(
            {
                "at": after.at_ms,
                "holds": round(max(0, after.holds - before.holds) / seconds, 2),
                "orders": round(max(0, after.orders - before.orders) / seconds, 2),
            }
        )
    return out


def keep_point(history: list[Point], point: Point) -> list[Point]:
    """The history with ``point``: one point per ``POINT_SECONDS``, none older than ``HISTORY_SECONDS``."""
    if history and point.at_ms - history[-1].at_ms < POINT_SECONDS * 1000:
        return history
    oldest = point.at_ms - int(HISTORY_SECONDS * 1000)
    return [p for p in history if p.at_ms >= oldest] + [point]


def verdict_body(findings: Sequence[Finding], checked_at_ms: int) -> dict[str, Any]:
    """The worst status over products, and what is off for each product that is not consistent."""
    status = max((f.status for f in findings), key=_SEVERITY.__getitem__, default="consistent")
    return {
        "status": status,
        "checked_at": iso(checked_at_ms),
        "detail": None,
        "findings": [
            {
                "product_id": f.product_id,
                "status": f.status,
                "remedy": f.remedy,
                "backlog": f.state.backlog,
                "differences": [{"field": d.field, "engine": d.engine, "durable": d.durable} for d in f.differences],
            }
            for f in findings
            if f.status != "consistent"
        ],
    }


def unknown_verdict(detail: str) -> dict[str, Any]:
    return {"status": "unknown", "checked_at": None, "detail": detail, "findings": []}


def product_body(figures: ProductFigures, name: str | None) -> dict[str, Any]:
    s = figures.snapshot
    return {
        "id": s.product_id,
        "name": name,
        "total": s.total,
        "available": s.available,
        "held": s.held,
        "pending": s.pending,
        "sold": s.sold,
        "outbox_backlog": s.outbox_backlog,
        "counts": {name: figures.stats.get(name, 0) for name in COUNTS},
        "queue": room_body(figures.room),
    }


def room_body(room: WaitingRoom | None) -> dict[str, Any] | None:
    """A product's waiting room on the dashboard: who waits, who may buy, who bought, and how fast they go in."""
    if room is None:
        return None
    return {
        "waiting": room.waiting,
        "admitted": room.admitted,
        "used": room.used_total,
        "expired": room.expired_total,
        "left": room.left_total,
        "admissions_per_second": room.admissions_per_second,
    }


def merchant_figures(db: sa.Engine) -> dict[str, Any]:
    """What waits on the merchant's side: refunds not yet confirmed, events by delivery status."""
    return {"refunds_open": open_count(db), "deliveries": delivery_counts(db)}


class Feed:
    def __init__(self, engine: AsyncEngine, admin_engine: Engine, db: sa.Engine, catalog: CatalogCache) -> None:
        self.engine = engine
        self.admin_engine = admin_engine
        self.db = db
        self.catalog = catalog
        self._current: Update | None = None
        self._sampled: dict[str, Any] | None = None
        self._lock = asyncio.Lock()
        self._history: list[Point] = []
        self._verdict: dict[str, Any] = unknown_verdict("not checked yet")
        self._verdict_at = float("-inf")
        self._reconciling: asyncio.Task[None] | None = None
        self._merchant: dict[str, Any] = {"refunds_open": None, "deliveries": None}

    async def next(self, after: int = -1) -> Update:
        """The first update newer than version ``after`` and sampled within the last tick."""
        while True:
            current = self._current
            if current is not None:
                due = current.sampled_at + TICK_SECONDS - time.monotonic()
                if current.version > after and due > 0:
                    return current
                if current.version <= after and due > 0:
                    await asyncio.sleep(due)  # the caller has this one: wait for the next tick
                    continue
            async with self._lock:
                if self._current is current:  # nobody sampled while this caller waited for the lock
                    self._current = await self._sample(current)

    async def _sample(self, previous: Update | None) -> Update:
        with deadline(None):  # a sample serves every watcher: it is not bound by the deadline of the one it runs in
            figures = await engine_figures(self.engine)
        if figures is None:
            raise EngineUnavailable("Redis is unavailable")
        names = await self._names()
        now_ms = int(time.time() * 1000)
        point = Point(
            now_ms,
            sum(f.stats.get("holds", 0) for f in figures),
            sum(f.stats.get("orders", 0) for f in figures),
        )
        if self._history and now_ms - self._history[-1].at_ms > HISTORY_SECONDS * 1000:
            self._history = []  # nobody watched for a while: a rate over the gap would mean nothing
        self._history = keep_point(self._history, point)
        self._refresh_verdict()
        if self._verdict_at == float("-inf") and self._reconciling is not None:
            await asyncio.wait({self._reconciling}, timeout=FIRST_VERDICT_WAIT_SECONDS)
        products = sorted((product_body(f, names.get(f.snapshot.product_id)) for f in figures), key=lambda p: p["id"])
        sampled = {
            "products": products,
            "outbox_backlog": sum(p["outbox_backlog"] for p in products),
            "rates": {
                "interval_seconds": POINT_SECONDS,
                "window_seconds": HISTORY_SECONDS,
                "points": rates(self._history),
            },
            "reconcile": self._verdict,
            "merchant": self._merchant,
        }
        if previous is not None and sampled == self._sampled:
            # Nothing moved: watchers are sent nothing new (an idle sale still gains a rate point now and then).
            return Update(previous.version, time.monotonic(), previous.body)
        self._sampled = sampled
        version = 0 if previous is None else previous.version + 1
        stats = msgspec.convert({"version": version, "at": iso(now_ms), **sampled}, DashboardStats)
        return Update(version, time.monotonic(), _encoder.encode(stats))

    async def _names(self) -> dict[int, str]:
        try:
            return {pid: p.name for pid, p in (await self.catalog.products()).items()}
        except DatabaseUnavailable:
            return {}  # the numbers matter more than the names: show them without

    def _refresh_verdict(self) -> None:
        if self._reconciling is not None and not self._reconciling.done():
            return
        if time.monotonic() - self._verdict_at < RECONCILE_SECONDS:
            return
        self._reconciling = asyncio.get_running_loop().create_task(self._reconcile())

    async def _reconcile(self) -> None:
        try:
            # The same collect and compare as `flashsale reconcile`: engine, then PostgreSQL, then engine again.
            states = await threadpool.call(collect, self.admin_engine, self.db)
            self._verdict = verdict_body(compare(states), int(time.time() * 1000))
            self._merchant = await threadpool.call(merchant_figures, self.db)
        except DatabaseUnavailable:
            self._verdict = unknown_verdict("the database did not answer")
            self._merchant = {"refunds_open": None, "deliveries": None}
        except EngineUnavailable:
            self._verdict = unknown_verdict("the engine's Redis did not answer")
        except Exception as error:  # the dashboard must keep showing the numbers; the log says what broke
            log.warning("reconcile_check_failed", error=repr(error))
            self._verdict = unknown_verdict("the check failed; see the API's log")
        finally:
            self._verdict_at = time.monotonic()

    async def close(self) -> None:
        if self._reconciling is not None:
            await asyncio.gather(self._reconciling, return_exceptions=True)
