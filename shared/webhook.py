"""What a payment provider sends: the webhook body and its signed headers."""

from __future__ import annotations

import secrets

import orjson

from shared import signing

WEBHOOK_PATH = "/api/payments/webhook"


def new_transaction_id() -> str:
    return "txn_" + secrets.token_hex(8)


def webhook(secret: str, order_id: str, transaction_id: str, status: str) -> tuple[bytes, dict[str, str]]:
    """The raw body and the headers (signature, timestamp, content type) of one payment notification."""
    body = orjson.dumps({"order_id": order_id, "transaction_id": transaction_id, "status": status})
    return body, {**signing.headers(secret, body), "Content-Type": "application/json"}
