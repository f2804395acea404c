"""The payment provider's signed webhook: settle in the engine, or answer from PostgreSQL for old orders."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import database
from api.errors import ApiError, InvalidJson, OrderStateUnknown, WebhookDisabled
from api.metrics import SIGNATURES_REJECTED
from api.responses import json
from api.services import Services
from api.times import to_ms
from api.validation import Fields, is_json, parse_object, read_body
from engine import exceptions as engine_errors
from engine.calls import MAX_TRANSACTION_ID
from engine.types import OutboxEvent, PaymentResult, Settlement
from flashsale import logs, signing
from persistence.events import apply_events
from persistence.records import OrderRecord, get_order, get_payment

log = logs.get_logger("api.payments")

RESULTS: tuple[PaymentResult, ...] = ("success", "failed")


def _answer(
    order_id: str, transaction_id: str, status: str, *, applied: bool, duplicate: bool, refund_required: bool
) -> Response:
    return json(
        {
            "order_id": order_id,
            "transaction_id": transaction_id,
            "status": status,
            "applied": applied,
            "duplicate": duplicate,
            "refund_required": refund_required,
        }
    )


def _log_settlement(s: Settlement) -> None:
    order = s.order
    where = {"order_id": order.order_id, "transaction_id": s.transaction_id, "product_id": order.product_id}
    if s.duplicate:
        log.info(logs.DUPLICATE_WEBHOOK_IGNORED, result=s.result, order_status=order.status, **where)
    elif s.applied and s.result == "success":
        log.info(logs.PAYMENT_SUCCESS, amount_cents=order.amount_cents, customer_id=order.customer_id, **where)
    elif s.applied:
        log.info(logs.ORDER_CANCELLED, reason="payment_failed", quantity=order.quantity, **where)
    else:
        log.warning("payment_not_applied", result=s.result, order_status=order.status, **where)
    if s.refund_required:
        log.warning(
            logs.REFUND_REQUIRED,
            amount_cents=order.amount_cents,
            cancel_reason=order.cancel_reason,
            customer_id=order.customer_id,
            **where,
        )


def late_payment(record: OrderRecord, transaction_id: str, result: PaymentResult, payload: str) -> OutboxEvent:
    """A ``payment`` event for an order the engine has forgotten (closed over a day ago), never applied.

    The engine cannot write it, having no record of the order, so the API hands it to the same writer
    the outbox drain uses: the payment is in PostgreSQL before the provider is told it was received.
    """
    note = record.transaction_id if record.status == "paid" else record.cancel_reason
    closed = record.paid_at or record.cancelled_at
    fields = {
        "event": "payment",
        "at": str(int(time.time() * 1000)),
        "order_id": record.id,
        "product_id": str(record.product_id),
        "hold_id": record.hold_id,
        "customer_id": record.customer_id or "",
        "quantity": str(record.quantity),
        "amount_cents": str(record.amount_cents),
        "status": record.status,
        "created_ms": str(to_ms(record.created_at)),
        "expires_ms": str(to_ms(record.expires_at)),
        "closed_ms": str(to_ms(closed)) if closed else "0",
        "note": note or "",
        "transaction_id": transaction_id,
        "result": result,
        "applied": "0",
        "payload": payload,
    }
    return OutboxEvent(record.product_id, "0-0", "payment", fields)


def routes(services: Services) -> list[Route]:
    engine, db, drain, secret = services.engine, services.db, services.drain, services.settings.webhook_secret

    async def _from_database(order_id: str, transaction_id: str, result: PaymentResult, payload: str) -> Response:
        known = await database.call(get_payment, db, transaction_id)
        if known is not None:
            record = await database.call(get_order, db, known.order_id)
            log.info(logs.DUPLICATE_WEBHOOK_IGNORED, order_id=known.order_id, transaction_id=transaction_id)
            status = record.status if record is not None else ("paid" if known.status == "success" else "cancelled")
            return _answer(
                known.order_id, transaction_id, status, applied=known.applied, duplicate=True, refund_required=False
            )
        record = await database.call(get_order, db, order_id)
        if record is None:
            raise engine_errors.OrderNotFound(order_id)
        if record.status == "pending":
            raise OrderStateUnknown(order_id)
        await database.call(apply_events, db, [late_payment(record, transaction_id, result, payload)])
        refund = result == "success" and record.status == "cancelled"
        where = {"order_id": order_id, "transaction_id": transaction_id, "product_id": record.product_id}
        log.warning("payment_not_applied", result=result, order_status=record.status, **where)
        if refund:
            log.warning(
                logs.REFUND_REQUIRED, amount_cents=record.amount_cents, cancel_reason=record.cancel_reason, **where
            )
        return _answer(order_id, transaction_id, record.status, applied=False, duplicate=False, refund_required=refund)

    async def webhook(request: Request) -> Response:
        raw = await read_body(request)
        if secret is None:
            raise WebhookDisabled()
        headers = request.headers
        if not signing.verify(
            secret, headers.get(signing.TIMESTAMP_HEADER), headers.get(signing.SIGNATURE_HEADER), raw
        ):
            SIGNATURES_REJECTED.inc()
            log.warning("webhook_signature_rejected", client=request.client.host if request.client else None)
            raise ApiError(
                401,
                "invalid_signature",
                f"{signing.SIGNATURE_HEADER} must sign '<{signing.TIMESTAMP_HEADER}>.<body>' with the webhook secret, "
                f"and the timestamp must be within {signing.TOLERANCE_SECONDS} s of now",
            )
        if not is_json(headers.get("content-type")):
            raise InvalidJson("the body must be JSON, sent with Content-Type: application/json")
        fields = Fields(parse_object(raw))
        order_id = fields.identifier("order_id", "order")
        transaction_id = fields.text("transaction_id", MAX_TRANSACTION_ID) or ""
        if "|" in transaction_id:
            # The engine keeps the paying transaction inside a '|'-separated order record (engine/lua/_prelude.lua).
            fields.fault("transaction_id", "must not contain '|'")
        result = fields.choice("status", RESULTS)
        fields.check(closed=False)  # providers add fields of their own; the raw payload keeps them
        payload = raw.decode("utf-8")
        try:
            settlement = await engine.settle(order_id, transaction_id, result, payload)
        except engine_errors.OrderNotFound:
            return await _from_database(order_id, transaction_id, result, payload)
        _log_settlement(settlement)
        if not settlement.duplicate:
            drain.request()
        order = settlement.order
        return _answer(
            order.order_id,
            transaction_id,
            order.status,
            applied=settlement.applied,
            duplicate=settlement.duplicate,
            refund_required=settlement.refund_required,
        )

    return [Route("/api/payments/webhook", webhook, methods=["POST"])]
