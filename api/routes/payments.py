"""The payment provider's signed webhook: check the signature and the fields, then settle (api.settlement)."""

from __future__ import annotations

from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import threadpool
from api.bodies import WebhookRequest, WebhookResult
from api.errors import ApiError, InvalidJson, RefundNotFound, WebhookDisabled
from api.metrics import SIGNATURES_REJECTED
from api.responses import json
from api.services import of
from api.settlement import Outcome
from api.times import iso
from api.validation import decode, is_json, read_body
from engine.types import PaymentResult
from persistence.refunds import confirm
from shared import logs, signing

log = logs.get_logger("api.payments")

REFUNDED = "refunded"
"""The provider gave back the charge the transaction id names: confirms flashsale's refund request."""
PROCESSING = "processing"
"""The payment is under way: hold the order for the payment grace (once)."""


async def webhook(request: Request) -> Response:
    services = of(request)
    secret = services.settings.webhook_secret
    raw = await read_body(request)
    if secret is None:
        raise WebhookDisabled()
    headers = request.headers
    if not signing.verify(secret, headers.get(signing.TIMESTAMP_HEADER), headers.get(signing.SIGNATURE_HEADER), raw):
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
    # WebhookRequest takes fields it does not declare: providers add their own, and the raw payload keeps them.
    body = decode(raw, WebhookRequest)
    payload = raw.decode("utf-8")
    if body.status == REFUNDED:
        return await refunded(request, body.order_id, body.transaction_id, payload)
    if body.status == PROCESSING:
        outcome = await services.settler.processing(body.order_id, body.transaction_id)
        if outcome.applied:
            services.drain_requests.send()
        return json(_result(body.transaction_id, outcome))
    result: PaymentResult = "success" if body.status == "success" else "failed"
    outcome = await services.settler.pay(body.order_id, body.transaction_id, result, payload)
    if not outcome.duplicate:
        services.drain_requests.send()
    return json(_result(body.transaction_id, outcome))


def _result(transaction_id: str, outcome: Outcome) -> WebhookResult:
    return WebhookResult(
        order_id=outcome.order_id,
        transaction_id=transaction_id,
        status=outcome.status,
        applied=outcome.applied,
        duplicate=outcome.duplicate,
        refund_required=outcome.refund_required,
        revived=outcome.revived,
        expires_at=UNSET if outcome.expires_at_ms is None else iso(outcome.expires_at_ms),
    )


async def refunded(request: Request, order_id: str, transaction_id: str, payload: str) -> Response:
    """``status: refunded``: the provider gave back the charge ``transaction_id``; confirm flashsale's request."""
    confirmed = await threadpool.call(confirm, of(request).db, transaction_id, payload)
    if confirmed is None or confirmed.refund.order_id != order_id:
        raise RefundNotFound(transaction_id)
    refund = confirmed.refund
    if confirmed.changed:
        log.info(
            logs.REFUND_CONFIRMED,
            order_id=order_id,
            transaction_id=transaction_id,
            product_id=refund.product_id,
            amount_cents=refund.amount_cents,
        )
    else:
        log.info(logs.DUPLICATE_WEBHOOK_IGNORED, order_id=order_id, transaction_id=transaction_id, result=REFUNDED)
    return json(
        WebhookResult(
            order_id=order_id,
            transaction_id=transaction_id,
            status="paid" if refund.reason == "already_paid" else "cancelled",
            applied=confirmed.changed,
            duplicate=not confirmed.changed,
            refund_required=True,
            revived=False,
            refund_status=refund.status,
        )
    )


routes = [Route("/api/payments/webhook", webhook, methods=["POST"])]
