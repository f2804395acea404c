"""``flashsale reconcile``: does Redis agree with the durable record, and the repairs when it does not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import click
import sqlalchemy as sa
from rich.table import Table

from engine import Engine
from engine.exceptions import EngineError, StockBelowCommitted
from flashsale.cli.connections import backends, operator_settings
from flashsale.cli.output import ERROR, FAILED, OK, console, fail, json_option, print_json, progress
from persistence.conflicts import StoredConflict, resolve_conflicts
from reconciliation.collect import LostWrite, catalog_ids, collect
from reconciliation.compare import Finding, compare
from reconciliation.exceptions import ReconciliationError
from reconciliation.repair import drain_to_end, rebuild
from shared import logs
from shared.logs import get_logger
from workers.drain import DrainFailed
from workers.reaper import reap

log = get_logger("flashsale.reconcile")

VERDICT = {"consistent": "ok", "behind": "behind", "drifted": "DRIFT"}
CHUNK = 50
"""Products read per round trip to the database; the progress bar moves once per chunk."""


def survey(engine: Engine, db: sa.Engine, *, quiet: bool) -> list[Finding]:
    ids = sorted(set(engine.product_ids()) | set(catalog_ids(db)))
    findings: list[Finding] = []
    with progress(quiet=quiet) as bar:
        task = bar.add_task("comparing Redis with the database", total=len(ids))
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            findings += compare(collect(engine, db, chunk))
            bar.advance(task, len(chunk))
    return findings


def finding_json(finding: Finding) -> dict[str, Any]:
    state = finding.state
    return {
        "product_id": finding.product_id,
        "redis": asdict(state.engine) if state.engine else None,
        "database": asdict(state.durable) if state.durable else None,
        "outbox_backlog": state.backlog,
        "verdict": VERDICT[finding.status],
        "remedy": finding.remedy,
        "differences": [asdict(d) for d in finding.differences],
        "payment_conflicts": [conflict_json(c) for c in state.conflicts],
        "lost_writes": [lost_json(lost) for lost in state.lost],
    }


def lost_json(lost: LostWrite) -> dict[str, Any]:
    return {"order_id": lost.order_id, "kind": lost.kind, "database": lost.durable, "redis": lost.engine}


def loss_counts(findings: Sequence[Finding]) -> dict[str, int]:
    """Writes Redis lost that PostgreSQL has, by kind (order, payment, cancellation), and in all."""
    counts = {"order": 0, "payment": 0, "cancellation": 0}
    for finding in findings:
        for lost in finding.state.lost:
            counts[lost.kind] += 1
    return {"total": sum(counts.values()), **counts}


def loss_line(counts: dict[str, int]) -> str:
    return (
        f"{counts['total']} write(s) PostgreSQL has and Redis lost: {counts['order']} order(s) Redis does not know, "
        f"{counts['payment']} payment(s) and {counts['cancellation']} cancellation(s) it no longer has"
    )


def conflict_json(conflict: StoredConflict) -> dict[str, Any]:
    return {
        "transaction_id": conflict.transaction_id,
        "order_id": conflict.order_id,
        "recorded_order_id": conflict.recorded_order_id,
        "result": conflict.status,
        "applied": conflict.applied,
        "received_at": conflict.received_at.isoformat(),
        "detected_at": conflict.detected_at.isoformat(),
    }


def conflict_line(conflict: StoredConflict) -> str:
    effect = (
        "paid it"
        if conflict.applied and conflict.status == "success"
        else ("cancelled it" if conflict.applied else "was recorded, not applied")
    )
    return (
        f"product {conflict.product_id}: transaction {conflict.transaction_id} was already recorded for order "
        f"{conflict.recorded_order_id}, yet reached order {conflict.order_id} and {effect} "
        f"(received {conflict.received_at:%Y-%m-%d %H:%M:%S} UTC)"
    )


def _cell(value: int | None) -> str:
    return "-" if value is None else str(value)


def _note(finding: Finding) -> str:
    parts = []
    for d in finding.differences:
        if d.field == "missing_in_engine":
            parts.append("not in Redis")
        elif d.field == "missing_in_catalog":
            parts.append("not in the catalog")
        elif d.field == "negative":
            parts.append(f"a counter is {d.engine}")
        elif d.field == "counters":
            parts.append(f"parts add up to {d.engine}, total is {d.durable}")
        elif d.field == "payment_conflicts":
            parts.append(f"{d.durable} transaction id(s) also used by another order")
        elif d.field == "lost_writes":
            parts.append(f"Redis lost {d.durable} write(s) the database has (a failover?)")
        else:
            parts.append(f"{d.field}: Redis {d.engine}, database {d.durable}")
    if finding.status == "behind" and finding.state.backlog == 0:
        parts.append("moved while read")
    return "; ".join(parts)


def table(findings: Sequence[Finding], title: str) -> Table:
    out = Table(title=title, title_justify="left")
    for name in ("product", "total", "available", "held", "pending", "sold"):
        out.add_column(name, justify="right")
    out.add_column("db pending", justify="right")
    out.add_column("db paid", justify="right")
    out.add_column("backlog", justify="right")
    out.add_column("verdict")
    out.add_column("note")
    colour = {"consistent": "green", "behind": "yellow", "drifted": "bold red"}
    for f in findings:
        e, d = f.state.engine, f.state.durable
        out.add_row(
            str(f.product_id),
            *(_cell(getattr(e, name) if e else None) for name in ("total", "available", "held", "pending", "sold")),
            _cell(d.pending if d else None),
            _cell(d.paid if d else None),
            str(f.state.backlog),
            f"[{colour[f.status]}]{VERDICT[f.status]}[/]",
            _note(f),
        )
    return out


def advice(findings: Sequence[Finding]) -> list[str]:
    """What would repair each product that is not ok, as the flags to run."""
    lines = []
    behind = [f.product_id for f in findings if f.remedy == "drain"]
    if behind:
        lines.append(f"behind (outbox not yet in the database) {_ids(behind)}: a worker will catch up, or run --fix")
    for f in findings:
        if f.remedy == "rebuild" and f.state.lost:
            lines.append(
                f"product {f.product_id}: Redis lost {len(f.state.lost)} write(s) the database has; --fix rebuilds it "
                "from the database (active holds are dropped)"
            )
        elif f.remedy == "rebuild":
            lines.append(f"product {f.product_id}: restore Redis from the database with --rebuild {f.product_id}")
        if f.state.conflicts:
            lines += [conflict_line(c) for c in f.state.conflicts]
            lines.append(
                f"product {f.product_id}: check each transaction with the payment provider, settle the orders "
                "(refund, or collect the missing payment), then run --resolve-conflict TRANSACTION"
            )
        if f.remedy == "put_product":
            lines.append(
                f"product {f.product_id}: the catalog and the engine disagree on the stock put on sale; "
                f"put it again with `flashsale product set {f.product_id} ...`"
            )
    return lines


def rebuild_lost(engine: Engine, db: sa.Engine, product_ids: Sequence[int], act: Any) -> None:
    """Rebuild each product whose Redis lost writes: ``available`` becomes stock less what the database holds in
    pending and paid orders, so that units sold before the loss are not sold again. A product the database
    holds more units of than its stock (sold twice between the loss and now) is left for the operator."""
    for product_id in product_ids:
        try:
            change = rebuild(engine, db, product_id)
        except StockBelowCommitted as error:
            act(
                "rebuild_refused",
                f"product {product_id}: the database holds {error.committed} units in pending and paid orders, more "
                f"than its stock {error.requested}: units were sold twice since Redis lost writes. Cancel (and "
                f"refund) orders or raise the stock, then run --rebuild {product_id}",
                product_id=product_id,
                committed=error.committed,
                stock=error.requested,
            )
            continue
        act(
            "rebuild",
            f"rebuilt product {product_id} from the database after Redis lost writes: available {change.available}, "
            f"pending {change.pending}, sold {change.sold}",
            product_id=product_id,
            reason="lost_writes",
            total=change.total,
            available=change.available,
            pending=change.pending,
            sold=change.sold,
        )


def _ids(ids: Sequence[int]) -> str:
    return ", ".join(map(str, ids[:10])) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


@click.command()
@click.option(
    "--fix",
    is_flag=True,
    help="Repair what is behind (reap overdue holds and orders, drain every outbox), and rebuild from the "
    "database each product whose Redis lost writes the database has (after a failover).",
)
@click.option(
    "--rebuild",
    "rebuild_id",
    type=click.IntRange(1, 10**15 - 1),
    metavar="PRODUCT",
    help="Restore PRODUCT's Redis state from the database (after Redis lost it). Active holds are dropped.",
)
@click.option(
    "--rebuild-all",
    is_flag=True,
    help="Restore every product that is missing from Redis or whose counters drifted, from the database.",
)
@click.option(
    "--resolve-conflict",
    "resolved",
    multiple=True,
    metavar="TRANSACTION",
    help="Mark the payment conflicts of TRANSACTION resolved, once dealt with (repeatable).",
)
@json_option
def reconcile(fix: bool, rebuild_id: int | None, rebuild_all: bool, resolved: tuple[str, ...], as_json: bool) -> None:
    """Compare Redis (the engine) with the database for every product, and repair on request.

    With no flag this is a dry run: it changes nothing. The verdict per product is ok, behind
    (the outbox has events the database has not applied yet; a worker catches up) or DRIFT. A payment
    whose transaction id was already recorded for another order (a payment conflict) is DRIFT until
    --resolve-conflict marks it dealt with. So is a product whose Redis lost writes the database has (an
    order it does not know, a payment or cancellation it no longer has: a failover to a replica that
    lacked them); the run counts them, and --fix rebuilds the product from the database.
    Exit status: 0 when nothing has drifted, 1 when drift remains, 2 when it could not check
    (a service is down, a repair failed).
    """
    if rebuild_id is not None and rebuild_all:
        fail("--rebuild and --rebuild-all are exclusive", ERROR)
    settings = operator_settings()
    actions: list[dict[str, Any]] = []

    def act(action: str, message: str, **fields: Any) -> None:
        log.info("reconcile_action", action=action, **fields)
        actions.append({"action": action, "message": message, **fields})
        if not as_json:
            click.echo(f"→ {message}")

    with backends(settings) as (engine, db):
        try:
            for transaction_id in resolved:
                marked = resolve_conflicts(db, transaction_id)
                act(
                    "resolve_conflict",
                    f"marked {marked} payment conflict(s) of transaction {transaction_id} resolved"
                    if marked
                    else f"transaction {transaction_id} has no open payment conflict",
                    transaction_id=transaction_id,
                    resolved=marked,
                )
            before = survey(engine, db, quiet=as_json)
            changing = fix or rebuild_id is not None or rebuild_all
            if not as_json:
                console().print(table(before, "before" if changing else "dry run: nothing changed"))
            if fix:
                reaped = reap(engine)
                act(
                    "reap",
                    f"reaped {reaped.holds_expired} overdue hold(s) and {reaped.orders_expired} overdue order(s) "
                    f"({reaped.units_returned} units back on sale)",
                    **asdict(reaped),
                )
                drained = drain_to_end(engine, db)
                act(
                    "drain",
                    f"drained {drained.events} outbox event(s): {drained.orders_written} order row(s) and "
                    f"{drained.payments_written} payment row(s) written",
                    **drained.summary(),
                )
            losses = loss_counts(before)
            if losses["total"]:
                log.warning(logs.RECONCILE_LOST_WRITES, **losses)
                if not as_json:
                    click.echo(loss_line(losses))
            if fix:
                rebuild_lost(engine, db, [f.product_id for f in before if f.state.lost], act)
            targets = [rebuild_id] if rebuild_id is not None else []
            if rebuild_all:
                targets = [f.product_id for f in before if f.remedy == "rebuild"]
                if not targets:
                    act("rebuild", "nothing to rebuild: every product is in Redis with sound counters", products=[])
            with progress(quiet=as_json or len(targets) < 2) as bar:
                task = bar.add_task("rebuilding from the database", total=len(targets))
                for product_id in targets:
                    change = rebuild(engine, db, product_id)
                    act(
                        "rebuild",
                        f"rebuilt product {product_id} from the database: total {change.total}, available "
                        f"{change.available}, pending {change.pending}, sold {change.sold}",
                        product_id=product_id,
                        total=change.total,
                        available=change.available,
                        pending=change.pending,
                        sold=change.sold,
                    )
                    bar.advance(task)
            after = survey(engine, db, quiet=as_json) if changing else before
        except (EngineError, ReconciliationError, DrainFailed) as error:
            code = getattr(error, "code", "error")
            log.error("reconcile_failed", code=code, error=str(error))
            if as_json:
                print_json({"error": {"code": code, "detail": str(error)}, "actions": actions, "exit_code": ERROR})
                raise SystemExit(ERROR) from None
            fail(f"{code}: {error}", ERROR)

    drifted = [f.product_id for f in after if f.status == "drifted"]
    status = FAILED if drifted else OK
    if as_json:
        print_json(
            {
                "dry_run": not changing,
                "consistent": not drifted,
                "lost_writes": losses,
                "products": [finding_json(f) for f in after],
                "before": [finding_json(f) for f in before] if changing else None,
                "actions": actions,
                "advice": advice(after),
                "exit_code": status,
            }
        )
        raise SystemExit(status)
    if changing:
        console().print(table(after, "after"))
    for line in advice(after):
        click.echo(line)
    if not after:
        click.echo("no products: the catalog and Redis are both empty")
    elif drifted:
        click.echo(f"DRIFT remains on {len(drifted)} product(s): {_ids(drifted)}")
    else:
        click.echo(f"{len(after)} product(s): no drift")
    raise SystemExit(status)
