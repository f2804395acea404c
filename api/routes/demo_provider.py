"""A simulated payment provider and identity provider built into the API, for demos; ``flashsale up`` turns them on.

``POST /api/demo/login`` stands for the shop's login: it signs a buyer token for any name with the HS256 secret
(``shared.buyer_tokens``), so the storefront can buy with buyer tokens on.

``POST /api/demo/payments`` stands for the buyer's visit to the provider's checkout: it answers 202 at once
and, a moment later, the provider calls the payment webhook of the server that took the checkout, signed
with the webhook secret exactly as ``flashsale pay`` signs (``shared.webhook``). Off unless
``FLASHSALE_DEMO_PROVIDER=1``: it pays pending orders without money. With buyer tokens on, it is a buyer endpoint:
the token is required and pays only its own buyer's orders (another's answers 404, as ``GET /api/orders/{id}`` does).
"""

from __future__ import annotations

import asyncio
import time

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.bodies import DemoLogin, DemoLoginRequest, DemoPayment, DemoPaymentRequest
from api.buyer_auth import owner
from api.errors import ApiError, WebhookDisabled
from api.responses import json
from api.services import of
from api.times import iso
from api.validation import decode, read_json
from engine import exceptions as engine_errors
from engine.types import PaymentResult
from shared import buyer_tokens
from shared.logs import get_logger
from shared.webhook import WEBHOOK_PATH, new_transaction_id, webhook

log = get_logger("api.demo_provider")

DELAY_SECONDS = 1.0
"""A real provider takes a moment: long enough for the buyer to see the order pending first."""
ATTEMPTS = 3
RETRY_SECONDS = 1.0
TIMEOUT_SECONDS = 10.0


def webhook_url(request: Request) -> str:
    """The webhook on the server that took the checkout, at the address the connection reached."""
    server = request.scope.get("server")
    if server and server[1] is not None:
        host, port = server
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}{WEBHOOK_PATH}"
    return str(request.base_url).rstrip("/") + WEBHOOK_PATH


async def send_webhook(url: str, secret: str, order_id: str, transaction_id: str, result: PaymentResult) -> None:
    """Call the webhook after ``DELAY_SECONDS``, retrying a few times as providers do when it fails."""
    await asyncio.sleep(DELAY_SECONDS)
    where = {"order_id": order_id, "transaction_id": transaction_id, "result": result}
    # trust_env off: the provider calls this very server, never through a proxy from the environment.
    async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, trust_env=False) as client:
        for attempt in range(1, ATTEMPTS + 1):
            body, headers = webhook(secret, order_id, transaction_id, result)
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as error:
                outcome = f"{type(error).__name__}: {error}"
            else:
                if response.status_code < 500:
                    log.info("demo_webhook_sent", status_code=response.status_code, attempt=attempt, **where)
                    return
                outcome = f"HTTP {response.status_code}"
            if attempt < ATTEMPTS:
                await asyncio.sleep(RETRY_SECONDS)
    log.warning("demo_webhook_failed", error=outcome, attempts=ATTEMPTS, **where)


async def checkout(request: Request) -> Response:
    services = of(request)
    settings = services.settings
    if not settings.demo_provider:
        raise ApiError(
            403,
            "demo_provider_disabled",
            "the simulated payment provider is off on this server (FLASHSALE_DEMO_PROVIDER=1 turns it on)",
        )
    who = owner(await services.buyer_auth.authenticate(request))
    secret = settings.webhook_secret
    if secret is None:
        raise WebhookDisabled()
    body = decode(await read_json(request), DemoPaymentRequest)
    order_id, result = body.order_id, body.status
    order = await services.engine.order(order_id, owner=who)  # another buyer's order: OrderNotFound, 404
    if order.status != "pending":
        raise engine_errors.OrderNotPending(order_id, order.status)
    transaction_id = new_transaction_id()
    log.info("demo_payment_started", order_id=order_id, transaction_id=transaction_id, result=result)
    response = json(DemoPayment(order_id=order_id, transaction_id=transaction_id, status=result), 202)
    response.background = BackgroundTask(send_webhook, webhook_url(request), secret, order_id, transaction_id, result)
    return response


DEMO_TOKEN_TTL_SECONDS = 3600


async def login(request: Request) -> Response:
    """The demo identity provider: a buyer token for whatever name the shopper gives, signed with the HS256 secret."""
    settings = of(request).settings
    if not settings.demo_provider:
        raise ApiError(
            403,
            "demo_provider_disabled",
            "the demo login is off on this server (FLASHSALE_DEMO_PROVIDER=1 turns it on)",
        )
    secret = settings.buyer_jwt_secret
    if secret is None:
        raise ApiError(
            403,
            "demo_login_unavailable",
            "this server has no HS256 buyer secret to sign a token with (FLASHSALE_BUYER_JWT_SECRET)",
        )
    name = decode(await read_json(request), DemoLoginRequest).name
    now = int(time.time())
    token = buyer_tokens.issue(
        secret,
        name,
        ttl_seconds=DEMO_TOKEN_TTL_SECONDS,
        issuer=settings.buyer_jwt_issuer,
        audience=settings.buyer_jwt_audience,
        now=now,
    )
    log.info("demo_login", sub=name)
    return json(DemoLogin(token=token, sub=name, expires_at=iso((now + DEMO_TOKEN_TTL_SECONDS) * 1000)))


routes = [
    Route("/api/demo/login", login, methods=["POST"]),
    Route("/api/demo/payments", checkout, methods=["POST"]),
]
