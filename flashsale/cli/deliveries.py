"""``flashsale deliveries``: the merchant's events, delivered, waiting or dead-lettered, and retrying them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich.table import Table

from flashsale.cli.connections import backends, operator_settings
from flashsale.cli.output import FAILED, OK, console, fail, json_option, print_json
from persistence.deliveries import Delivery, counts
from persistence.deliveries import deliveries as listed
from persistence.deliveries import retry as retry_events


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "type": d.type,
        "stream": d.stream,
        "status": d.status,
        "attempts": d.attempts,
        "created_at": d.created_at.isoformat(),
        "next_attempt_at": d.next_attempt_at.isoformat() if d.status == "pending" else None,
        "deadline_at": d.deadline_at.isoformat(),
        "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
        "last_error": d.last_error,
    }


def table(rows: Sequence[Delivery], title: str) -> Table:
    out = Table(title=title, title_justify="left")
    for name in ("created (UTC)", "id", "type", "about", "status", "attempts", "last error"):
        out.add_column(name, justify="right" if name == "attempts" else "left")
    for d in rows:
        out.add_row(
            f"{d.created_at:%Y-%m-%d %H:%M:%S}",
            d.id,
            d.type,
            d.stream,
            d.status,
            str(d.attempts),
            d.last_error or "-",
        )
    return out


@click.group(invoke_without_command=True)
@click.option("--failed", is_flag=True, help="Only the dead-lettered events (not delivered before their deadline).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True, help="The newest N.")
@json_option
@click.pass_context
def deliveries(context: click.Context, failed: bool, limit: int, as_json: bool) -> None:
    """List the merchant's events, newest first, with how many are pending, delivered and dead-lettered.

    Exit status 0; 1 with --failed when some are dead-lettered; 2 if the database is unavailable.
    """
    if context.invoked_subcommand is not None:
        return
    settings = operator_settings()
    with backends(settings) as (_, db):
        rows = listed(db, ["failed"] if failed else None, limit=limit)
        totals = counts(db)
    code = FAILED if failed and rows else OK
    if as_json:
        print_json({"deliveries": [delivery_json(d) for d in rows], "counts": totals})
        raise SystemExit(code)
    if rows:
        console().print(table(rows, "dead-lettered events" if failed else "merchant events (newest first)"))
    click.echo(
        f"{totals['pending']} pending, {totals['delivered']} delivered, {totals['failed']} dead-lettered"
        + ("" if settings.merchant_events else " (FLASHSALE_MERCHANT_WEBHOOK_URL is not set: none are sent)")
    )
    raise SystemExit(code)


@deliveries.command()
@click.argument("event_ids", nargs=-1)
@click.option("--all-failed", is_flag=True, help="Every dead-lettered event.")
@json_option
def retry(event_ids: tuple[str, ...], all_failed: bool, as_json: bool) -> None:
    """Send dead-lettered events again (by id, or --all-failed), each with a new deadline.

    Exit status 0; 1 when an id named is not dead-lettered; 2 on bad usage or a database error.
    """
    if bool(event_ids) == all_failed:
        fail("name the event ids to retry, or --all-failed (not both)", 2)
    settings = operator_settings()
    with backends(settings) as (_, db):
        give_up = timedelta(seconds=settings.merchant_give_up_seconds)
        done = retry_events(db, None if all_failed else list(event_ids), datetime.now(UTC), give_up)
    missing = sorted(set(event_ids) - set(done))
    if as_json:
        print_json({"retried": done, "not_failed": missing})
    else:
        click.echo(
            f"{len(done)} event(s) will be sent again"
            + (f"; not dead-lettered: {', '.join(missing)}" if missing else "")
        )
    raise SystemExit(FAILED if missing else OK)
