"""Prometheus metrics: request latency from this process, business counts from the engine.

The engine keeps its running counts in Redis, so they are read at scrape time and are right however
many API processes there are. Request metrics are per process; under ``flashsale serve --workers N``
prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) adds them up across workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from api import threadpool
from api.errors import DatabaseUnavailable
from engine import AsyncEngine
from engine.exceptions import EngineUnavailable, ProductNotFound
from engine.types import Snapshot, WaitingRoom
from persistence.deliveries import counts as delivery_counts
from persistence.refunds import open_count

CONTENT_TYPE = CONTENT_TYPE_LATEST
SCRAPE_CONCURRENCY = 32

REGISTRY = CollectorRegistry()

REQUEST_SECONDS = Histogram(
    "flashsale_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method.",
    ["route", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
REQUESTS = Counter(
    "flashsale_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
SIGNATURES_REJECTED = Counter(
    "flashsale_webhook_signatures_rejected",
    "Payment webhooks refused for a missing, wrong or stale signature.",
    registry=REGISTRY,
)
TRANSACTIONS_REUSED = Counter(
    "flashsale_webhook_transactions_reused",
    "Payment webhooks refused because their transaction id already belongs to another order.",
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "flashsale_rate_limited",
    "Hold requests refused by the per-client rate limit.",
    registry=REGISTRY,
)
BUYER_TOKENS_REFUSED = Counter(
    "flashsale_buyer_tokens_refused",
    "Buyer requests refused for a missing or invalid buyer token (FLASHSALE_BUYER_AUTH=jwt), by reason.",
    ["reason"],
    registry=REGISTRY,
)

# Engine running counts (engine.stats): metric name, help, label name, {stat: label value}.
_ENGINE_COUNTERS: tuple[tuple[str, str, str | None, dict[str, str]], ...] = (
    ("flashsale_holds_created", "Holds created.", None, {"holds": ""}),
    (
        "flashsale_holds_refused",
        "Holds refused, by reason.",
        "reason",
        {"out_of_stock": "out_of_stock", "limit": "limit_exceeded"},
    ),
    ("flashsale_holds_released", "Holds released by the buyer.", None, {"released": ""}),
    ("flashsale_holds_expired", "Holds that lapsed unconverted.", None, {"expired": ""}),
    ("flashsale_orders_created", "Orders created from holds.", None, {"orders": ""}),
    (
        "flashsale_orders_cancelled",
        "Orders cancelled, by reason.",
        "reason",
        {"cancelled": "cancelled", "order_expired": "expired", "payment_failed": "payment_failed"},
    ),
    (
        "flashsale_payments",
        "Payments applied to pending orders, by result.",
        "result",
        {"paid": "success", "payment_failed": "failed"},
    ),
    (
        "flashsale_payments_processing",
        "Orders held for a payment in progress (`processing`).",
        None,
        {"processing": ""},
    ),
    (
        "flashsale_orders_revived",
        "Orders paid by a success after they had expired unpaid, their units taken again.",
        None,
        {"revived": ""},
    ),
    ("flashsale_duplicate_webhooks", "Webhooks repeating a known transaction id, ignored.", None, {"duplicate": ""}),
    (
        "flashsale_refunds_required",
        "Successful payments no order took (the order was cancelled or already paid): each needs a refund.",
        None,
        {"refund_required": ""},
    ),
)


@dataclass(frozen=True, slots=True)
class ProductFigures:
    snapshot: Snapshot
    stats: dict[str, int]
    room: WaitingRoom | None = None
    """The product's waiting room, when it has one."""


async def _product(engine: AsyncEngine, product_id: int, gate: asyncio.Semaphore) -> ProductFigures | None:
    async with gate:
        try:
            snapshot = await engine.snapshot(product_id)
        except ProductNotFound:
            return None
        room = await engine.queue_info(product_id) if snapshot.waiting_room else None
        return ProductFigures(snapshot, await engine.stats(product_id), room)


async def engine_figures(engine: AsyncEngine) -> list[ProductFigures] | None:
    """Every product's snapshot and running counts, or None when the engine is unavailable."""
    gate = asyncio.Semaphore(SCRAPE_CONCURRENCY)
    try:
        ids = await engine.product_ids()
        found = await asyncio.gather(*(_product(engine, pid, gate) for pid in ids))
    except EngineUnavailable:
        return None
    return [f for f in found if f is not None]


def engine_families(figures: list[ProductFigures] | None) -> Iterator[Metric]:
    up = GaugeMetricFamily("flashsale_engine_up", "1 when the engine's Redis answered this scrape.")
    up.add_metric([], 0 if figures is None else 1)
    yield up
    if figures is None:
        return
    for name, help_text, label, stats in _ENGINE_COUNTERS:
        family = CounterMetricFamily(name, help_text, labels=["product_id", *([label] if label else [])])
        for product in figures:
            pid = str(product.snapshot.product_id)
            for stat, value in stats.items():
                family.add_metric([pid, value] if label else [pid], product.stats.get(stat, 0))
        yield family
    backlog = GaugeMetricFamily(
        "flashsale_outbox_backlog", "Outbox events not yet written to the database.", labels=["product_id"]
    )
    units = GaugeMetricFamily(
        "flashsale_stock_units", "Units of a product by state (total = sum).", labels=["product_id", "state"]
    )
    for product in figures:
        s = product.snapshot
        pid = str(s.product_id)
        backlog.add_metric([pid], s.outbox_backlog)
        for state, count in (("available", s.available), ("held", s.held), ("pending", s.pending), ("sold", s.sold)):
            units.add_metric([pid, state], count)
    yield backlog
    yield units
    yield from _room_families([f.room for f in figures if f.room is not None])


def _room_families(rooms: list[WaitingRoom]) -> Iterator[Metric]:
    waiting = GaugeMetricFamily(
        "flashsale_queue_waiting", "Tickets waiting in a product's waiting room.", labels=["product_id"]
    )
    admitted = GaugeMetricFamily(
        "flashsale_queue_admitted", "Tickets admitted and not yet used or expired.", labels=["product_id"]
    )
    tickets = CounterMetricFamily(
        "flashsale_queue_tickets", "Waiting-room tickets by what happened to them.", labels=["product_id", "state"]
    )
    for room in rooms:
        pid = str(room.product_id)
        waiting.add_metric([pid], room.waiting)
        admitted.add_metric([pid], room.admitted)
        for state, count in (
            ("joined", room.joined_total),
            ("admitted", room.admitted_total),
            ("used", room.used_total),
            ("expired", room.expired_total),
            ("left", room.left_total),
        ):
            tickets.add_metric([pid, state], count)
    yield waiting
    yield admitted
    yield tickets


class _Scrape:
    def __init__(self, process: CollectorRegistry, engine: Iterable[Metric]) -> None:
        self.process = process
        self.engine = engine

    def collect(self) -> Iterable[Metric]:
        yield from self.process.collect()
        yield from self.engine


def _process_registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def merchant_families(db: sa.Engine) -> list[Metric]:
    """What waits on the merchant's side, from the database: events by delivery status, open refunds."""
    events = GaugeMetricFamily(
        "flashsale_merchant_events",
        "The merchant's events by delivery status (failed: dead-lettered, see `flashsale deliveries --failed`).",
        labels=["status"],
    )
    for status, n in delivery_counts(db).items():
        events.add_metric([status], n)
    refunds = GaugeMetricFamily(
        "flashsale_refund_requests_open", "Refund requests not yet confirmed by the provider (`flashsale refunds`)."
    )
    refunds.add_metric([], open_count(db))
    return [events, refunds]


async def render(engine: AsyncEngine, db: sa.Engine | None = None) -> bytes:
    figures = await engine_figures(engine)
    families: list[Metric] = list(engine_families(figures))
    if db is not None:
        # With the database down (/readyz says so), the engine's figures still count.
        with contextlib.suppress(DatabaseUnavailable):
            families += await threadpool.call(merchant_families, db)
    return generate_latest(_Scrape(_process_registry(), families))
