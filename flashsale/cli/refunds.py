"""``flashsale refunds``: the refund requests still open, from the database, with what an operator needs to act."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table

from flashsale.cli.connections import backends, operator_settings
from flashsale.cli.output import FAILED, OK, console, fail, json_option, print_json
from persistence.refunds import Refund, mark_sent
from persistence.refunds import refunds as open_refunds
from shared import logs

log = logs.get_logger("flashsale.refunds")


def refund_json(refund: Refund) -> dict[str, Any]:
    return {
        "transaction_id": refund.transaction_id,
        "order_id": refund.order_id,
        "product_id": refund.product_id,
        "customer_id": refund.customer_id,
        "amount_cents": refund.amount_cents,
        "received_at": refund.received_at.isoformat(),
        "reason": refund.reason,
        "paid_by": refund.paid_by,
        "why": refund.why,
        "status": refund.status,
        "sent_at": refund.sent_at.isoformat() if refund.sent_at else None,
    }


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def table(refunds: Sequence[Refund]) -> Table:
    out = Table(title="refunds open (oldest first)", title_justify="left")
    for name in ("received (UTC)", "transaction", "order", "product", "customer", "amount", "status"):
        out.add_column(name, justify="right" if name in ("product", "amount") else "left")
    out.add_column("why")
    for r in refunds:
        out.add_row(
            f"{r.received_at:%Y-%m-%d %H:%M:%S}",
            r.transaction_id,
            r.order_id,
            str(r.product_id),
            r.customer_id or "-",
            _money(r.amount_cents),
            r.status,
            r.why,
        )
    return out


@click.group(invoke_without_command=True)
@json_option
@click.pass_context
def refunds(context: click.Context, as_json: bool) -> None:
    """List the refunds still open: successes that no order took, requested or sent, not yet confirmed.

    A success is refunded when its order was already cancelled for good (it expired unpaid and its units were
    gone, a payment failed, the buyer cancelled) or already paid by another transaction: the customer was
    charged for nothing. Give the money back through the payment provider, by transaction id, then
    `flashsale refunds sent TXN`; the provider's `refunded` webhook confirms it. Exit status 0; 2 if the
    database is unavailable.
    """
    if context.invoked_subcommand is not None:
        return
    settings = operator_settings()
    with backends(settings) as (_, db):
        found = open_refunds(db)
    total = sum(r.amount_cents for r in found)
    if as_json:
        print_json({"refunds": [refund_json(r) for r in found], "count": len(found), "total_cents": total})
        raise SystemExit(OK)
    if not found:
        click.echo("no refunds required")
        raise SystemExit(OK)
    console().print(table(found))
    click.echo(f"{len(found)} refund(s) required, {_money(total)} in all")
    raise SystemExit(OK)


@refunds.command()
@click.argument("transaction_id")
@json_option
def sent(transaction_id: str, as_json: bool) -> None:
    """Mark a refund as asked of the payment provider (requested → sent). Exit 0; 1 no such refund; 2 error."""
    settings = operator_settings()
    with backends(settings) as (_, db):
        refund = mark_sent(db, transaction_id)
    if refund is None:
        fail(f"refund_not_found: no refund was requested for transaction {transaction_id}", FAILED)
    log.info(logs.REFUND_SENT, transaction_id=transaction_id, order_id=refund.order_id, status=refund.status)
    if as_json:
        print_json(refund_json(refund))
    else:
        click.echo(f"refund of {transaction_id} ({_money(refund.amount_cents)}) is {refund.status}")
    raise SystemExit(OK)
