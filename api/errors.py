"""Errors as RFC 9457 problem details: one JSON shape and a stable ``code`` for every 4xx and 5xx."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.bodies import Problem
from api.times import iso
from engine import exceptions as engine_errors
from persistence import exceptions as persistence_errors
from reconciliation import exceptions as reconciliation_errors
from shared.logs import get_logger

PROBLEM_JSON = "application/problem+json"

log = get_logger("api")

_encoder = msgspec.json.Encoder()

ERROR_STATUS: dict[type[Exception], int] = {
    engine_errors.OutOfStock: 409,
    engine_errors.LimitExceeded: 409,
    engine_errors.SaleNotActive: 409,
    engine_errors.ProductNotFound: 404,
    engine_errors.HoldNotFound: 404,
    engine_errors.HoldExpired: 410,
    engine_errors.HoldReleased: 410,
    engine_errors.HoldAlreadyUsed: 409,
    engine_errors.OrderNotFound: 404,
    engine_errors.OrderNotPending: 409,
    engine_errors.TransactionReused: 409,
    engine_errors.StockBelowCommitted: 409,
    engine_errors.OutboxNotEmpty: 409,
    engine_errors.OutboxMoved: 409,
    engine_errors.InvalidId: 422,
    engine_errors.AdmissionRequired: 403,
    engine_errors.WaitingRoomOff: 409,
    engine_errors.TicketNotFound: 404,
    engine_errors.NotReplicated: 503,
    engine_errors.EngineUnavailable: 503,
    # The durable record: a write that failed, and what it left behind (persistence/exceptions.py).
    persistence_errors.CatalogWriteFailed: 503,
    persistence_errors.ProductPutIncomplete: 503,
    persistence_errors.MalformedEvent: 503,  # an event this version cannot write: the retry finds it upgraded
    # Reconciliation's repairs (reconciliation/exceptions.py).
    reconciliation_errors.NotInCatalog: 404,
    reconciliation_errors.RebuildUnsettled: 409,
}
"""The HTTP status of each error of the engine, the durable record and reconciliation, by class (a subclass
answers as its nearest listed ancestor). An error found nowhere here would answer 500: tests/test_api_errors.py
walks every error class of every package so that none is."""


UNAVAILABLE_DETAIL = {
    "engine_unavailable": "the stock engine is unavailable, try again shortly",
    "not_replicated": (
        "the write reached the stock engine, but its replicas did not confirm it in time; retry the same "
        "request: it completes or replays"
    ),
}
"""What a 503 of the engine says: the stock engine's own message is not for the public."""


def status_of(error: Exception) -> int | None:
    for cls in type(error).__mro__:
        status = ERROR_STATUS.get(cls)
        if status is not None:
            return status
    return None


_STATUS_CODE = {404: "not_found", 405: "method_not_allowed"}


class ApiError(Exception):
    """An answer other than success: a status, a stable code, a sentence, and any fields that help."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers
        self.extra = extra


class ValidationFailed(ApiError):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        fields = ", ".join(e["field"] for e in errors)
        super().__init__(422, "validation_error", f"invalid fields: {fields}", errors=errors)


class InvalidJson(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, "invalid_json", detail)


class DatabaseUnavailable(ApiError):
    def __init__(self, detail: str = "the database did not answer") -> None:
        super().__init__(503, "database_unavailable", detail, headers={"Retry-After": "1"})


class RefundNotFound(ApiError):
    def __init__(self, transaction_id: str) -> None:
        super().__init__(
            404,
            "refund_not_found",
            f"no refund was requested of transaction {transaction_id} for this order",
            transaction_id=transaction_id,
        )


class WebhookDisabled(ApiError):
    def __init__(self) -> None:
        super().__init__(
            503,
            "webhook_disabled",
            "no webhook secret is configured on this server (FLASHSALE_WEBHOOK_SECRET)",
            headers={"Retry-After": "60"},
        )


class OrderStateUnknown(ApiError):
    """PostgreSQL says pending, yet the engine has no state: Redis lost it until `flashsale reconcile` restores it."""

    def __init__(self, order_id: str) -> None:
        super().__init__(
            503,
            "order_state_unknown",
            "the engine has no state for this order; try again once it has been reconciled",
            headers={"Retry-After": "5"},
            order_id=order_id,
        )


def _title(code: str) -> str:
    return code.replace("_", " ").capitalize().replace("json", "JSON")


def problem(status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """A problem answer; each of ``extra`` is a field ``api.bodies.Problem`` declares."""
    body = Problem(type=f"urn:flashsale:problem:{code}", title=_title(code), status=status, detail=detail, code=code)
    for name, value in extra.items():
        setattr(body, name, value)  # AttributeError for a field Problem does not declare: declare it there
    return Response(_encoder.encode(body), status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _engine_extra(error: engine_errors.EngineError) -> dict[str, Any]:
    """The data of an engine error that helps a client act on it."""
    match error:
        case engine_errors.OutOfStock():
            return {"available": error.available, "requested": error.requested}
        case engine_errors.LimitExceeded():
            return {"limit": error.limit, "used": error.used, "requested": error.requested}
        case engine_errors.SaleNotActive():
            return {
                "sale_starts_at": iso(error.starts_at_ms) if error.starts_at_ms else None,
                "sale_ends_at": iso(error.ends_at_ms) if error.ends_at_ms else None,
            }
        case engine_errors.HoldExpired():
            return {"hold_id": error.hold_id, "expired_at": iso(error.expired_at_ms)}
        case engine_errors.HoldAlreadyUsed():
            return {"hold_id": error.hold_id, "order_id": error.order_id}
        case engine_errors.HoldError():
            return {"hold_id": error.hold_id}
        case engine_errors.OrderNotPending():
            return {"order_id": error.order_id, "order_status": error.status}
        case engine_errors.StockBelowCommitted():
            return {"committed": error.committed, "requested": error.requested}
        case engine_errors.AdmissionRequired():
            return {"product_id": error.product_id, "reason": error.reason}
    return {}


def engine_problem(error: engine_errors.EngineError) -> Response:
    status = status_of(error)
    if status is None:
        return internal_error(error)
    headers = {"Retry-After": "1"} if status == 503 else None
    detail = (
        UNAVAILABLE_DETAIL.get(error.code, UNAVAILABLE_DETAIL["engine_unavailable"]) if status == 503 else error.message
    )
    return problem(status, error.code, detail, headers=headers, **_engine_extra(error))


def internal_error(error: BaseException) -> Response:
    log.error("internal_error", error=repr(error), exc_info=error)
    return problem(500, "internal_error", "an unexpected error occurred; it has been logged")


async def on_api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return problem(error.status, error.code, error.detail, headers=error.headers, **error.extra)


async def on_engine_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, engine_errors.EngineError)
    return engine_problem(error)


async def on_store_error(request: Request, error: Exception) -> Response:
    """An error of the durable record or of reconciliation: its status, code and sentence."""
    assert isinstance(error, persistence_errors.PersistenceError | reconciliation_errors.ReconciliationError)
    status = status_of(error)
    if status is None:
        return internal_error(error)
    headers = {"Retry-After": "1"} if status == 503 else None
    return problem(status, error.code, error.message, headers=headers)


async def on_http_exception(request: Request, error: Exception) -> Response:
    """Starlette's own 404 (unknown path) and 405 (wrong method), in the same shape as ours."""
    assert isinstance(error, HTTPException)
    status = error.status_code
    code = _STATUS_CODE.get(status, HTTPStatus(status).phrase.lower().replace(" ", "_"))
    detail = error.detail if error.detail != HTTPStatus(status).phrase else _default_detail(request, status)
    return problem(status, code, detail, headers=dict(error.headers or {}))


def _default_detail(request: Request, status: int) -> str:
    if status == 404:
        return f"no such path: {request.url.path}"
    if status == 405:
        return f"{request.method} is not allowed on {request.url.path}"
    return HTTPStatus(status).phrase


EXCEPTION_HANDLERS = {
    ApiError: on_api_error,
    engine_errors.EngineError: on_engine_error,
    persistence_errors.PersistenceError: on_store_error,
    reconciliation_errors.ReconciliationError: on_store_error,
    HTTPException: on_http_exception,
}
