"""The soak test: a whole stack under a mixed workload for a given time, checked every second.

It runs its own API, worker and scheduler (supervised, with short hold and order TTLs so that things
expire) on the configured Redis and database, puts its products on sale, and drives the mixed workload of
``flashsale.verification.workload`` at them. Every second it checks the invariant of every product; every
``kill_worker_every`` seconds it kills the worker with SIGKILL (the supervisor starts another). At the end
it lets the workers drain, reconciles Redis with the database and audits every acknowledged order and
payment against PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa

from engine import Engine
from engine.exceptions import EngineError, ProductNotFound
from flashsale.stack.readiness import free_port, http_ready
from flashsale.stack.supervisor import ChildSpec, Supervisor
from flashsale.verification.audit import audit, invariant_faults, oversold_units
from flashsale.verification.workload import Mix, Stop, Workload
from persistence.catalog import ProductSpec, put_product
from reconciliation.collect import collect
from reconciliation.compare import compare
from shared.settings import Settings

READY_TIMEOUT = 60.0
RESTOCK_EVERY = 5
"""Seconds between two looks for products running out."""
SETTLE_GRACE = 60.0
"""Time allowed after the load for the last holds and orders to expire and the outbox to drain."""

Say = Callable[[str], None]


@dataclass(frozen=True)
class SoakOptions:
    duration: float = 30.0
    clients: int = 100
    products: int = 4
    first_product: int = 900_001
    stock: int = 500
    hold_ttl: int = 2
    order_ttl: int = 3
    api_workers: int = 1
    kill_worker_every: float = 10.0
    """Seconds between two SIGKILLs of the worker; 0 never kills it."""
    seed: int = 1

    @property
    def product_ids(self) -> list[int]:
        return list(range(self.first_product, self.first_product + self.products))


@dataclass
class SoakReport:
    options: SoakOptions
    seconds: float = 0.0
    invariant_checks: int = 0
    invariant_violations: list[str] = field(default_factory=list)
    oversold: int = 0
    worker_kills: int = 0
    restocks: int = 0
    worker_restarts: int = 0
    max_backlog: int = 0
    settle_seconds: float = 0.0
    settled: bool = False
    reconcile: dict[str, int] = field(default_factory=dict)
    """Products by verdict (consistent, behind, drifted) after the drain."""
    audit: dict[str, Any] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "duration_s": round(self.seconds, 1),
            "clients": self.options.clients,
            "products": self.options.product_ids,
            "hold_ttl_s": self.options.hold_ttl,
            "order_ttl_s": self.options.order_ttl,
            "invariant_checks": self.invariant_checks,
            "invariant_violations": len(self.invariant_violations),
            "oversold": self.oversold,
            "worker_kills": self.worker_kills,
            "worker_restarts": self.worker_restarts,
            "restocks": self.restocks,
            "max_backlog": self.max_backlog,
            "settled": self.settled,
            "settle_s": round(self.settle_seconds, 1),
            "reconcile": self.reconcile,
            "audit": self.audit,
            "load": self.load,
            "failures": self.failures[:20],
        }


def children(settings: Settings, options: SoakOptions, port: int, secret: str) -> list[ChildSpec]:
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "FLASHSALE_REDIS_URL": settings.redis_url,
        "FLASHSALE_REDIS_CLUSTER": "1" if settings.redis_cluster else "0",
        "FLASHSALE_QUEUE_REDIS_URL": settings.queue_redis_url,
        "FLASHSALE_DATABASE_URL": settings.database_url,
        "FLASHSALE_WEBHOOK_SECRET": secret,
        "FLASHSALE_HOLD_TTL_SECONDS": str(options.hold_ttl),
        "FLASHSALE_ORDER_TTL_SECONDS": str(options.order_ttl),
        "FLASHSALE_REAPER_INTERVAL_SECONDS": "1",
        "FLASHSALE_DRAIN_INTERVAL_SECONDS": "2",
        "FLASHSALE_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }
    python = [sys.executable, "-m", "flashsale"]
    serve = [*python, "serve", "--port", str(port), "--workers", str(options.api_workers)]
    return [
        ChildSpec("api", serve, env),
        ChildSpec("worker", [*python, "worker"], env),
        ChildSpec("scheduler", [*python, "scheduler"], env),
    ]


def put_on_sale(engine: Engine, db: sa.Engine, options: SoakOptions, product_ids: list[int] | None = None) -> int:
    """``stock`` more units of each product (or of the given ones) on top of what is held, pending or sold.

    Returns the number of products put on sale. Run again during the load, it restocks sold-out products
    (through the same ``put_product`` as the admin API), so a long soak keeps selling.
    """
    ids = options.product_ids if product_ids is None else product_ids
    for product_id in ids:
        try:
            snap = engine.snapshot(product_id)
            committed = snap.held + snap.pending + snap.sold
        except ProductNotFound:
            committed = 0
        spec = ProductSpec(product_id, f"soak {product_id}", 700, committed + options.stock, max_per_customer=6)
        put_product(engine, db, spec)
    return len(ids)


def _settled(engine: Engine, product_ids: list[int]) -> bool:
    for product_id in product_ids:
        snap = engine.snapshot(product_id)
        if snap.outbox_backlog or snap.held or snap.pending:
            return False
    return True


class _Monitor:
    """Checks the invariant every second while the load runs, and kills the worker on schedule."""

    def __init__(
        self,
        engine: Engine,
        db: sa.Engine,
        options: SoakOptions,
        report: SoakReport,
        supervisor: Supervisor,
        say: Say,
    ) -> None:
        self.engine = engine
        self.db = db
        self.options = options
        self.report = report
        self.supervisor = supervisor
        self.say = say

    def check(self) -> None:
        try:
            faults = invariant_faults(self.engine, self.options.product_ids)
            backlog = sum(self.engine.outbox_backlog(p) for p in self.options.product_ids)
        except EngineError as error:
            self.report.failures.append(f"the engine did not answer a check: {error}")
            return
        self.report.invariant_checks += 1
        self.report.max_backlog = max(self.report.max_backlog, backlog)
        for fault in faults:
            self.report.invariant_violations.append(fault)
            self.say(f"INVARIANT BROKEN: {fault}")

    def restock(self) -> None:
        """Products with less than a quarter of their stock left get ``stock`` more units."""
        try:
            low = [p for p in self.options.product_ids if self.engine.snapshot(p).available < self.options.stock // 4]
            self.report.restocks += put_on_sale(self.engine, self.db, self.options, low)
        except (EngineError, sa.exc.SQLAlchemyError) as error:
            self.report.failures.append(f"restocking failed: {error}")

    def kill_worker(self) -> None:
        pid = self.supervisor.pids().get("worker")
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
            self.report.worker_kills += 1
            self.say(f"killed the worker (pid {pid}) with SIGKILL")

    async def run(self, stop: Stop) -> None:
        started = time.monotonic()
        next_kill = started + self.options.kill_worker_every if self.options.kill_worker_every else float("inf")
        while not stop:
            await asyncio.to_thread(self.check)
            if int(time.monotonic() - started) % RESTOCK_EVERY == 0:
                await asyncio.to_thread(self.restock)
            if time.monotonic() >= next_kill:
                self.kill_worker()
                next_kill += self.options.kill_worker_every
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started) % 1.0))


async def run_soak(
    settings: Settings, engine: Engine, db: sa.Engine, options: SoakOptions, say: Say, log: TextIO
) -> SoakReport:
    report = SoakReport(options)
    secret = secrets.token_hex(16)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    put_on_sale(engine, db, options)

    def echo(source: str, line: str, alert: bool) -> None:
        log.write(f"{source} | {line}\n")

    supervisor = Supervisor(children(settings, options, port, secret), echo, backoff_start=0.2, backoff_max=2.0)
    supervisor.start()
    try:
        if not await http_ready(url + "/readyz", within=READY_TIMEOUT):
            raise RuntimeError(f"the soak's API did not become ready at {url} in {READY_TIMEOUT:.0f}s")
        say(
            f"soak: {options.clients} clients on products {options.product_ids[0]}..{options.product_ids[-1]} "
            f"for {options.duration:g}s at {url}"
        )
        load = Workload([url], options.product_ids, secret, clients=options.clients, seed=options.seed, mix=Mix())
        stop = Stop(options.duration)
        monitor = _Monitor(engine, db, options, report, supervisor, say)
        await asyncio.gather(load.run(stop), monitor.run(stop))
        report.seconds = load.seconds
        report.load = load.tally.summary()
        say(f"load done: {load.tally.requests} requests; waiting for the workers to drain")

        started = time.monotonic()
        deadline = started + options.hold_ttl + options.order_ttl + SETTLE_GRACE
        while time.monotonic() < deadline:
            if await asyncio.to_thread(_settled, engine, options.product_ids):
                report.settled = True
                break
            await asyncio.to_thread(monitor.check)
            await asyncio.sleep(0.5)
        report.settle_seconds = time.monotonic() - started
        report.worker_restarts = supervisor.restarts.get("worker", 0)
        await asyncio.to_thread(_final_checks, engine, db, options, load, report)
    finally:
        await supervisor.stop()
    return report


def _final_checks(engine: Engine, db: sa.Engine, options: SoakOptions, load: Workload, report: SoakReport) -> None:
    failures = report.failures
    if not report.settled:
        failures.append("the workers did not drain every outbox (or holds and orders did not expire) in time")
    if report.invariant_violations:
        failures.append(
            f"the invariant broke {len(report.invariant_violations)} time(s): {report.invariant_violations[0]}"
        )
    if report.invariant_checks < int(options.duration) - 1:
        failures.append(f"only {report.invariant_checks} invariant checks in {options.duration:g}s")
    failures += invariant_faults(engine, options.product_ids)
    report.oversold = oversold_units(engine, options.product_ids)
    findings = compare(collect(engine, db, options.product_ids))
    for finding in findings:
        report.reconcile[finding.status] = report.reconcile.get(finding.status, 0) + 1
        if finding.status != "consistent":
            failures.append(f"reconcile: product {finding.product_id} is {finding.status}: {finding.differences}")
    result = audit(db, load.ledger, options.product_ids)
    report.audit = result.summary()
    report.oversold += result.oversold_units
    failures += result.lost[:10]
    failures += [f"order {order_id} has two applied payments" for order_id in result.applied_twice]
    if report.oversold:
        failures.append(f"{report.oversold} unit(s) oversold")
    failures += load.tally.violations[:10]
    server_errors = load.tally.server_errors()
    if server_errors:
        failures.append(f"server errors: {dict(server_errors)}")
    if options.kill_worker_every and options.duration >= options.kill_worker_every and not report.worker_kills:
        failures.append("the worker was never killed")


def write_log_path(var_dir: Path) -> Path:
    var_dir.mkdir(parents=True, exist_ok=True)
    return var_dir / "soak.log"
