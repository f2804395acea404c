"""The shape every fault test shares: load in the background, a fault, then the same three checks.

After the load stops and the workers drain: the invariant for every product, every order and payment the
API acknowledged in PostgreSQL exactly once (``flashsale.verification.audit``), and ``flashsale reconcile`` exiting 0.
The figures of each run go to ``var/fault-results/<name>.json`` (or ``$FLASHSALE_TEST_RESULTS_DIR``), so a test
run never changes a tracked file; ``python -m tests.faults.guarantees`` records them in ``tests/faults/results``
and puts them in docs/guarantees.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine import Engine
from flashsale.verification.audit import audit, invariant_faults, oversold_units
from flashsale.verification.workload import Ledger, Mix, Stop, Workload
from persistence.catalog import ProductSpec, put_product
from tests.faults.processes import Stack, wait_until
from tests.support.api import WEBHOOK_SECRET

RESULTS = Path(
    os.environ.get("FLASHSALE_TEST_RESULTS_DIR") or Path(__file__).resolve().parents[2] / "var" / "fault-results"
)
"""Where each run's figures go: var/fault-results (untracked), or elsewhere for a run that must not mix its
figures with this checkout's (the bare-machine one). ``python -m tests.faults.guarantees`` records them."""

CLIENTS = int(os.environ.get("FLASHSALE_FAULT_CLIENTS", "200"))
"""Concurrent clients of each fault test's load (never fewer than 50)."""
SECONDS = float(os.environ.get("FLASHSALE_FAULT_SECONDS", "10"))
"""How long each fault test's load runs."""


def add_products(engine: Engine, db: sa.Engine, product_ids: Sequence[int], stock: int, **extra: int) -> None:
    for product_id in product_ids:
        put_product(engine, db, ProductSpec(product_id, f"fault test {product_id}", 500, stock, **extra))


class Background:
    """A ``Workload`` running in its own thread and event loop while the test injects faults."""

    def __init__(self, load: Workload) -> None:
        self.load = load
        self.stop_flag = Stop()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="load", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self.load.run(self.stop_flag))
        except BaseException as error:  # handed to the test thread in stop()
            self.error = error

    def __enter__(self) -> Background:
        self.started = time.monotonic()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> Workload:
        self.stop_flag.set()
        self.thread.join(120)
        assert not self.thread.is_alive(), "the load did not stop"
        if self.error is not None:
            raise self.error
        return self.load

    def last(self, seconds: float) -> None:
        """Let the load run until ``seconds`` after it started."""
        time.sleep(max(0.0, self.started + seconds - time.monotonic()))

    def steps(self, name: str) -> int:
        return self.load.tally.steps[name]

    def wait_for(self, step: str, count: int, timeout: float = 30.0) -> None:
        wait_until(lambda: self.steps(step) >= count, f"the load acknowledged {count} {step}", timeout)


def workload(
    urls: Sequence[str],
    products: Sequence[int],
    *,
    clients: int = CLIENTS,
    seed: int = 1,
    record_answers: bool = False,
    **mix: Any,
) -> Workload:
    assert clients >= 50, "the guarantees are proven under at least 50 concurrent clients"
    return Workload(
        list(urls),
        list(products),
        WEBHOOK_SECRET,
        clients=clients,
        seed=seed,
        mix=Mix(**mix),
        record_answers=record_answers,
    )


def drained(engine: Engine, products: Sequence[int]) -> bool:
    """Nothing in any outbox, and nothing held or pending (every hold and order has settled or expired)."""
    for product_id in products:
        snap = engine.snapshot(product_id)
        if snap.outbox_backlog or snap.held or snap.pending:
            return False
    return True


@dataclass
class Outcome:
    """The figures of one run, and what was wrong."""

    name: str
    guarantee: str
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    test: str = field(default_factory=lambda: os.environ.get("PYTEST_CURRENT_TEST", "?").split(" (")[0])
    """The pytest node id of the test that ran."""

    def write(self) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        record = {
            "name": self.name,
            "guarantee": self.guarantee,
            "test": self.test,
            "ran_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "passed": not self.problems,
            **self.figures,
            "problems": self.problems[:20],
        }
        (RESULTS / f"{self.name}.json").write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")

    def check(self) -> None:
        """Write the figures, then fail with every problem found."""
        self.write()
        assert not self.problems, "\n".join(self.problems[:20])


def verify(
    stack: Stack,
    engine: Engine,
    db: sa.Engine,
    products: Sequence[int],
    loads: Sequence[Workload],
    outcome: Outcome,
    *,
    faults: int,
    allowed_5xx: Sequence[str] = (),
    drain_timeout: float = 90.0,
    losses_expected: bool = False,
) -> Outcome:
    """Wait for the workers to drain, then run the three checks and fill in ``outcome``.

    ``losses_expected``: the run measures what its configuration loses (a failover without replicated
    acknowledgement), so acknowledged writes missing from PostgreSQL are counted (``lost``), not problems."""
    problems = outcome.problems
    started = time.monotonic()
    try:
        wait_until(lambda: drained(engine, products), "the workers drained every outbox", drain_timeout, 0.2)
    except AssertionError as error:
        problems.append(str(error))
    drain_seconds = time.monotonic() - started
    problems += invariant_faults(engine, products)
    redis_oversold = oversold_units(engine, products)
    merged_orders: dict[str, Any] = {}
    merged_payments: dict[str, Any] = {}
    for load in loads:
        merged_orders.update(load.ledger.orders)
        merged_payments.update(load.ledger.payments)
        problems += load.tally.violations[:10]
        unexpected = {k: n for k, n in load.tally.server_errors().items() if k not in allowed_5xx}
        if unexpected:
            problems.append(f"unexpected server errors: {unexpected}")
        hung = {k: n for k, n in load.tally.transport_errors.items() if "Timeout" in k}
        if hung:
            problems.append(f"requests that waited out the client's timeout (a hang): {hung}")
    result = audit(db, Ledger(merged_orders, merged_payments), products)
    if not losses_expected:
        problems += result.lost[:10]
    problems += [f"order {o} has two applied payments" for o in result.applied_twice]
    if result.oversold:
        problems.append(f"PostgreSQL oversold: {result.oversold}")
    reconcile = stack.run("reconcile", "--json")
    verdicts: dict[str, int] = {}
    try:
        report = json.loads(reconcile.stdout)
        for product in report["products"]:
            verdicts[product["verdict"]] = verdicts.get(product["verdict"], 0) + 1
    except (ValueError, KeyError):
        report = None
    if reconcile.returncode != 0:
        problems.append(
            f"flashsale reconcile exited {reconcile.returncode}: {reconcile.stdout[-800:]} {reconcile.stderr[-800:]}"
        )

    requests = sum(load.tally.requests for load in loads)
    statuses: dict[str, int] = {}
    steps: dict[str, int] = {}
    transport: dict[str, int] = {}
    for load in loads:
        for key, n in load.tally.statuses.items():
            statuses[key] = statuses.get(key, 0) + n
        for key, n in load.tally.steps.items():
            steps[key] = steps.get(key, 0) + n
        for key, n in load.tally.transport_errors.items():
            transport[key] = transport.get(key, 0) + n
    outcome.figures.update(
        {
            "clients": sum(load.clients for load in loads),
            "duration_s": round(max(load.seconds for load in loads), 1),
            "requests": requests,
            "faults_injected": faults,
            "acknowledged_orders": result.orders_checked,
            "acknowledged_payments": result.payments_checked,
            "lost": len(result.lost),
            "oversold": result.oversold_units + redis_oversold,
            "applied_twice": len(result.applied_twice),
            "reconcile_exit": reconcile.returncode,
            "reconcile_verdicts": verdicts,
            "drain_s": round(drain_seconds, 1),
            "statuses": dict(sorted(statuses.items())),
            "no_answer": transport,
            "steps": dict(sorted(steps.items())),
        }
    )
    return outcome
