"""``flashsale pay``: send a correctly signed payment webhook, as the payment provider would."""

from __future__ import annotations

import click
import httpx

from flashsale.cli.connections import operator_settings
from flashsale.cli.output import ERROR, FAILED, fail, json_option, print_json
from shared import vardir
from shared.settings import WEBHOOK_SECRET_FILE
from shared.webhook import WEBHOOK_PATH, new_transaction_id, webhook

TIMEOUT_SECONDS = 10.0


@click.command()
@click.argument("order_id")
@click.option("--status", type=click.Choice(["success", "failed"]), required=True, help="What the provider reports.")
@click.option("--transaction-id", help="The provider's transaction id; default: a new random one.")
@click.option("--url", help="The API's base URL; default: where `flashsale up` serves from this directory.")
@json_option
def pay(order_id: str, status: str, transaction_id: str | None, url: str | None, as_json: bool) -> None:
    """Pay (or fail) ORDER_ID through a signed webhook.

    The secret is FLASHSALE_WEBHOOK_SECRET, else the one `flashsale up` keeps in var/webhook_secret.
    Send the same --transaction-id twice to see the duplicate being ignored.
    """
    settings = operator_settings()
    if settings.webhook_secret is None:
        fail(
            f"no webhook secret: set FLASHSALE_WEBHOOK_SECRET, or run where `flashsale up` keeps "
            f"{settings.var_dir / WEBHOOK_SECRET_FILE}",
            ERROR,
        )
    base = (url or vardir.served_url(settings.var_dir)).rstrip("/")
    body, headers = webhook(settings.webhook_secret, order_id, transaction_id or new_transaction_id(), status)
    try:
        response = httpx.post(base + WEBHOOK_PATH, content=body, headers=headers, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as error:
        fail(f"nothing answers at {base} ({error}); is `flashsale up` running? (--url to choose)", ERROR)
    try:
        answer = response.json()
    except ValueError:
        answer = {"detail": response.text[:300]}
    if as_json:
        print_json({"http_status": response.status_code, **answer})
    if response.status_code == 200:
        if not as_json:
            click.echo(_describe(answer))
        return
    code = answer.get("code", "error")
    if not as_json:
        hint = ""
        if code == "invalid_signature":
            hint = " (does the server use the same webhook secret? it reads FLASHSALE_WEBHOOK_SECRET or var/)"
        click.echo(f"flashsale pay: {response.status_code} {code}: {answer.get('detail', '')}{hint}", err=True)
    raise SystemExit(ERROR if response.status_code >= 500 else FAILED)


def _describe(answer: dict[str, object]) -> str:
    order, txn, status = answer.get("order_id"), answer.get("transaction_id"), answer.get("status")
    if answer.get("duplicate"):
        return f"order {order} is {status}: transaction {txn} was already received, nothing changed (duplicate)"
    if answer.get("refund_required"):
        return f"order {order} is {status}: transaction {txn} paid for it too late, a refund is required"
    if answer.get("applied"):
        return f"order {order} is now {status} (transaction {txn})"
    return f"order {order} stays {status}: transaction {txn} was recorded but not applied"
