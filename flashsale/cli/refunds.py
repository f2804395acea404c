"""``flashsale refunds``: the charges to give back, from the database, with what an operator needs to act."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table

from flashsale.cli.connections import backends, operator_settings
from flashsale.cli.output import OK, console, json_option, print_json
from persistence.refunds import Refund, refunds_required


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
    }


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def table(refunds: Sequence[Refund]) -> Table:
    out = Table(title="refunds required (oldest first)", title_justify="left")
    for name in ("received (UTC)", "transaction", "order", "product", "customer", "amount"):
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
            r.why,
        )
    return out


@click.command()
@json_option
def refunds(as_json: bool) -> None:
    """List the payments to refund: successes that no order took.

    A success is flagged when its order was already cancelled (it expired unpaid, a payment failed, the
    buyer cancelled) or already paid by another transaction: the customer was charged for nothing. Give
    the money back through the payment provider, by transaction id. Exit status 0; 2 if the database is
    unavailable.
    """
    settings = operator_settings()
    with backends(settings) as (_, db):
        found = refunds_required(db)
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
