"""The OpenAPI 3 document served at ``/openapi.json``, written out by hand to match the routes exactly.

Every status a route can answer is listed with the problem ``code`` values it can carry, so a schema-driven
fuzzer (schemathesis) can hold the API to it. ``tests/test_api_openapi.py`` checks the two agree.

It stays OpenAPI 3.0: its ``integer`` is a number written without fraction or exponent, which is what the API
takes (``1.0`` is refused); from OpenAPI 3.1, JSON Schema counts ``1.0`` as an integer.
"""

from __future__ import annotations

from typing import Any

from api.validation import MAX_BODY_BYTES
from engine.calls import MAX_CUSTOMER_ID, MAX_IDEMPOTENCY_KEY, MAX_TRANSACTION_ID
from engine.ids import MAX_PRODUCT_ID
from engine.product_rules import (
    MAX_NAME,
    MAX_PER_CUSTOMER,
    MAX_PRICE_CENTS,
    MAX_QUANTITY,
    MAX_STOCK,
    NOT_BLANK_PATTERN,
    SALE_BOUND_PATTERN,
)
from engine.text import TEXT_PATTERN
from shared import signing

Schema = dict[str, Any]

HOLD_ID_PATTERN = "^h[1-9][0-9]{0,14}_[0-9A-HJKMNP-TV-Z]{26}$"
ORDER_ID_PATTERN = "^o[1-9][0-9]{0,14}_[0-9A-HJKMNP-TV-Z]{26}$"


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    if "enum" in schema:
        return {**schema, "nullable": True, "enum": [*schema["enum"], None]}
    return {**schema, "nullable": True}


def _object(properties: Schema, required: list[str] | None = None, *, closed: bool = False, **extra: Any) -> Schema:
    schema: Schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        **extra,
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


def _text(max_length: int, **extra: Any) -> Schema:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": TEXT_PATTERN, **extra}


def _int(low: int, high: int, **extra: Any) -> Schema:
    return {"type": "integer", "minimum": low, "maximum": high, **extra}


TIMESTAMP: Schema = {"type": "string", "format": "date-time", "example": "2026-11-28T01:19:44.123Z"}
SALE_BOUND: Schema = {
    "type": "string",
    "format": "date-time",
    "pattern": SALE_BOUND_PATTERN,
    "description": "An RFC 3339 date-time in the years 2000 to 2999, whole seconds 00-59 (no leap second), "
    "at most 9 digits of fraction.",
}
"""Exactly what the admin API takes (api.times.parse_sale_bound): the format and the same pattern."""
HOLD_ID: Schema = {
    "type": "string",
    "pattern": HOLD_ID_PATTERN,
    "maxLength": 48,
    "example": "h42_01JD0Z3N5W8YQ2T4V6X8Z0A1B2",
}
ORDER_ID: Schema = {
    "type": "string",
    "pattern": ORDER_ID_PATTERN,
    "maxLength": 48,
    "example": "o42_01JD0Z3N5W8YQ2T4V6X8Z0A1B3",
}
PRODUCT_ID: Schema = _int(1, MAX_PRODUCT_ID)

EVENT_ID: Schema = {
    "type": "string",
    "pattern": "^(0|[1-9][0-9]*)$",
    "description": "The `version` of the last `stats` event sent; an event without an `id:` line keeps it.",
}


def _event(name: str, data_schema: str | None, description: str) -> Schema:
    """One server-sent event, as OpenAPI 3.0 tools read a ``text/event-stream`` schema: the fields an EventSource
    parses from it. JSON Schema draft 4 has no ``contentSchema``: the JSON inside ``data`` is described by
    ``x-contentMediaType`` and ``x-contentSchema``, the 2019-09 keywords under an extension's name."""
    if data_schema is None:
        data: Schema = {"type": "string", "enum": ["{}"], "description": "An empty JSON object."}
    else:
        data = {
            "type": "string",
            "pattern": "^[{].*[}]$",
            "description": f"A {data_schema} document as one line of JSON.",
            "x-contentMediaType": "application/json",
            "x-contentSchema": _ref(data_schema),
        }
    required = ["event", "id", "data"] if name == "stats" else ["event", "data"]
    return _object(
        {"event": {"type": "string", "enum": [name]}, "id": EVENT_ID, "data": data},
        required,
        closed=True,
        description=description,
    )


SCHEMAS: dict[str, Schema] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; `code` is stable, the other fields help a client act.",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "errors": {
                "type": "array",
                "description": "validation_error: every field at fault (body field, path parameter or header).",
                "items": _object({"field": {"type": "string"}, "message": {"type": "string"}}),
            },
            "available": {"type": "integer", "description": "out_of_stock: units available now."},
            "requested": {"type": "integer"},
            "limit": {"type": "integer", "description": "limit_exceeded: units one customer may have."},
            "used": {"type": "integer", "description": "limit_exceeded: units this customer already has."},
            "committed": {"type": "integer", "description": "stock_below_committed: units held, pending or sold."},
            "hold_id": {"type": "string"},
            "order_id": _nullable({"type": "string"}),
            "order_status": {"type": "string"},
            "expired_at": TIMESTAMP,
            "sale_starts_at": _nullable(TIMESTAMP),
            "sale_ends_at": _nullable(TIMESTAMP),
            "checks": {"type": "object", "additionalProperties": {"type": "string", "enum": ["ok", "down"]}},
        },
        "required": ["type", "title", "status", "detail", "code"],
    },
    "Product": _object(
        {
            "id": PRODUCT_ID,
            "name": {"type": "string"},
            "price_cents": {"type": "integer", "minimum": 0},
            "stock": {"type": "integer", "minimum": 0, "description": "Units put on sale in total."},
            "available": {"type": "integer", "minimum": 0, "description": "Units that can be held now (live)."},
            "max_per_customer": _nullable({"type": "integer", "minimum": 1, "description": "null: no limit."}),
            "sale_starts_at": _nullable(TIMESTAMP),
            "sale_ends_at": _nullable(TIMESTAMP),
        }
    ),
    "ProductSpec": _object(
        {
            "name": {
                "allOf": [
                    _text(MAX_NAME),
                    {"pattern": NOT_BLANK_PATTERN, "description": "Not blank: a character besides white space."},
                ]
            },
            "price_cents": _int(0, MAX_PRICE_CENTS),
            "stock": _int(0, MAX_STOCK, description="Total units; never below those held, pending or sold."),
            "max_per_customer": _nullable(_int(0, MAX_PER_CUSTOMER, description="0 or null: no limit.")),
            "sale_starts_at": _nullable(
                {**SALE_BOUND, "description": "null: on sale from now.", "example": "2026-11-28T09:00:00Z"}
            ),
            "sale_ends_at": _nullable(
                {
                    **SALE_BOUND,
                    "description": "null: no end. When both bounds are set, it must be after sale_starts_at "
                    "(otherwise 422 naming sale_ends_at).",
                    "example": "2026-11-28T21:00:00Z",
                }
            ),
        },
        ["name", "price_cents", "stock"],
        closed=True,
        description="Every field is set: a field left out takes its default. One rule JSON Schema cannot state: "
        "sale_ends_at must be after sale_starts_at when both are set.",
    ),
    "HoldRequest": _object(
        {
            "product_id": PRODUCT_ID,
            "quantity": _int(1, MAX_QUANTITY),
            "customer_id": _nullable(_text(MAX_CUSTOMER_ID, description="Counts against max_per_customer.")),
        },
        ["product_id", "quantity"],
        closed=True,
    ),
    "Hold": _object(
        {
            "hold_id": HOLD_ID,
            "product_id": PRODUCT_ID,
            "quantity": {"type": "integer", "minimum": 1},
            "customer_id": _nullable({"type": "string"}),
            "expires_at": TIMESTAMP,
        }
    ),
    "ActiveHold": {
        "allOf": [
            _ref("Hold"),
            _object({"status": {"type": "string", "enum": ["active"]}}),
        ]
    },
    "OrderRequest": _object({"hold_id": HOLD_ID}, closed=True),
    "Order": _object(
        {
            "order_id": ORDER_ID,
            "hold_id": HOLD_ID,
            "product_id": PRODUCT_ID,
            "customer_id": _nullable({"type": "string"}),
            "quantity": {"type": "integer", "minimum": 1},
            "amount_cents": {"type": "integer", "minimum": 0, "description": "price_cents * quantity."},
            "status": {"type": "string", "enum": ["pending", "paid", "cancelled"]},
            "created_at": TIMESTAMP,
            "expires_at": {**TIMESTAMP, "description": "When the order lapses if it is still unpaid."},
            "closed_at": _nullable({**TIMESTAMP, "description": "When it was paid or cancelled."}),
            "transaction_id": _nullable({"type": "string", "description": "The transaction that paid it."}),
            "cancel_reason": _nullable({"type": "string", "enum": ["payment_failed", "expired", "cancelled"]}),
        }
    ),
    "WebhookRequest": _object(
        {
            "order_id": ORDER_ID,
            # No '|': the engine keeps the paying transaction inside a '|'-separated record.
            "transaction_id": _text(MAX_TRANSACTION_ID, pattern="^[^|\\u0000-\\u001F\\u007F-\\u009F]+$"),
            "status": {
                "type": "string",
                "enum": ["success", "failed", "refunded"],
                "description": "`success` pays the order (or, after it expired unpaid, revives it when the units "
                "are still available, else asks for a refund); `failed` cancels it; `refunded`, with the "
                "original transaction id, confirms that the provider gave back a charge flashsale asked to refund.",
            },
        },
        description="Other fields are allowed and kept with the payment record.",
    ),
    "WebhookResult": _object(
        {
            "order_id": ORDER_ID,
            "transaction_id": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["pending", "paid", "cancelled"],
                "description": "The order's status now.",
            },
            "applied": {"type": "boolean", "description": "Whether this payment changed the order."},
            "duplicate": {"type": "boolean", "description": "This transaction id was seen before; nothing changed."},
            "refund_required": {
                "type": "boolean",
                "description": "A success the order did not take (already cancelled, or already paid by another "
                "transaction): the customer must be refunded. `flashsale refunds` lists them.",
            },
            "refund_status": {
                "type": "string",
                "enum": ["requested", "sent", "confirmed"],
                "description": "Only for `refunded`: the refund request's status now.",
            },
        },
        required=["order_id", "transaction_id", "status", "applied", "duplicate", "refund_required"],
    ),
    "Ready": _object(
        {
            "status": {"type": "string", "enum": ["ok"]},
            "checks": _object({name: {"type": "string", "enum": ["ok"]} for name in ("engine", "queue", "database")}),
        }
    ),
    "DashboardProduct": _object(
        {
            "id": PRODUCT_ID,
            "name": _nullable({"type": "string", "description": "null: the catalog does not know the product."}),
            "total": {"type": "integer", "minimum": 0},
            "available": {"type": "integer"},
            "held": {"type": "integer"},
            "pending": {"type": "integer"},
            "sold": {"type": "integer"},
            "outbox_backlog": {"type": "integer", "minimum": 0},
            "counts": {
                "type": "object",
                "description": "The engine's running counts: holds, out_of_stock, limit, released, expired, "
                "orders, paid, payment_failed, cancelled, order_expired, duplicate, refund_required.",
                "additionalProperties": {"type": "integer", "minimum": 0},
            },
        }
    ),
    "ReconcileVerdict": _object(
        {
            "status": {"type": "string", "enum": ["consistent", "behind", "drifted", "unknown"]},
            "checked_at": _nullable(TIMESTAMP),
            "detail": _nullable({"type": "string", "description": "unknown: why there is no verdict."}),
            "findings": {
                "type": "array",
                "description": "Each product that is not consistent, as `flashsale reconcile` reports it.",
                "items": _object(
                    {
                        "product_id": PRODUCT_ID,
                        "status": {"type": "string", "enum": ["behind", "drifted"]},
                        "remedy": _nullable({"type": "string", "enum": ["drain", "rebuild", "put_product"]}),
                        "backlog": {"type": "integer", "minimum": 0},
                        "differences": {
                            "type": "array",
                            "items": _object(
                                {
                                    "field": {"type": "string"},
                                    "engine": _nullable({"type": "integer"}),
                                    "durable": _nullable({"type": "integer"}),
                                }
                            ),
                        },
                    }
                ),
            },
        }
    ),
    "DashboardStats": _object(
        {
            "version": {"type": "integer", "minimum": 0, "description": "Grows when any figure changes."},
            "at": TIMESTAMP,
            "products": {"type": "array", "items": _ref("DashboardProduct")},
            "outbox_backlog": {"type": "integer", "minimum": 0},
            "rates": _object(
                {
                    "interval_seconds": {"type": "number"},
                    "window_seconds": {"type": "number"},
                    "points": {
                        "type": "array",
                        "description": "Holds and orders per second, oldest first; `at` in epoch milliseconds.",
                        "items": _object(
                            {
                                "at": {"type": "integer"},
                                "holds": {"type": "number", "minimum": 0},
                                "orders": {"type": "number", "minimum": 0},
                            }
                        ),
                    },
                }
            ),
            "reconcile": _ref("ReconcileVerdict"),
            "merchant": _ref("MerchantFigures"),
        }
    ),
    "MerchantFigures": _object(
        {
            "refunds_open": _nullable(
                {"type": "integer", "minimum": 0, "description": "Refund requests not yet confirmed."}
            ),
            "deliveries": _nullable(
                _object(
                    {name: {"type": "integer", "minimum": 0} for name in ("pending", "delivered", "failed")},
                    description="The merchant's events by delivery status; `failed` is dead-lettered.",
                )
            ),
        },
        description="Read from the database with the reconcile verdict; null when it did not answer.",
    ),
    "StreamProblem": _object(
        {
            "code": {"type": "string", "enum": ["engine_unavailable"]},
            "detail": {"type": "string"},
        },
        description="Why a `problem` event has no figures; the stream goes on and tries again a second later.",
    ),
    "StatsEvent": _event(
        "stats",
        "DashboardStats",
        "The figures, sent when any of them changed (at most twice a second). `id` is the document's `version`.",
    ),
    "ProblemEvent": _event("problem", "StreamProblem", "The engine's Redis did not answer this tick."),
    "ReconnectEvent": _event(
        "reconnect",
        None,
        "The last event: the stream ends after 5 s so that a server can stop; open it again at once.",
    ),
    "StreamEvent": {
        "description": "One server-sent event of GET /api/admin/stream, as an EventSource hands it over: `event` "
        "names it, `data` is one line of JSON (described by `x-contentSchema`), `id` the last id sent so far.",
        "oneOf": [_ref("StatsEvent"), _ref("ProblemEvent"), _ref("ReconnectEvent")],
        "discriminator": {
            "propertyName": "event",
            "mapping": {
                "stats": "#/components/schemas/StatsEvent",
                "problem": "#/components/schemas/ProblemEvent",
                "reconnect": "#/components/schemas/ReconnectEvent",
            },
        },
    },
    "DemoPaymentRequest": _object(
        {"order_id": ORDER_ID, "status": {"type": "string", "enum": ["success", "failed"]}}, closed=True
    ),
    "DemoPayment": _object(
        {
            "order_id": ORDER_ID,
            "transaction_id": {"type": "string"},
            "status": {"type": "string", "enum": ["success", "failed"], "description": "What the webhook reports."},
        }
    ),
}

PROBLEM_CONTENT = "application/problem+json"


def _problem(description: str, *codes: str) -> Schema:
    schema = {
        "allOf": [_ref("Problem"), {"type": "object", "properties": {"code": {"type": "string", "enum": list(codes)}}}]
    }
    listed = ", ".join(f"`{c}`" for c in codes)
    return {"description": f"{description} ({listed})", "content": {PROBLEM_CONTENT: {"schema": schema}}}


def _ok(description: str, schema: Schema, media: str = "application/json") -> Schema:
    return {"description": description, "content": {media: {"schema": schema}}}


def _body(name: str) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def _path(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


IDEMPOTENCY_KEY: Schema = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": _text(MAX_IDEMPOTENCY_KEY),
    "description": (
        "A retry with the same key returns the first 201 body and takes effect once. A key belongs to its caller:"
        " on a hold, the customer_id it came with (requests without one share one scope); on an order, the hold."
        " Another caller's request with the same key is a request of its own."
    ),
}

UNAVAILABLE = _problem("The stock engine's Redis did not answer; retry shortly", "engine_unavailable")
WRITE_UNAVAILABLE = _problem(
    "Retry the same request: the stock engine's Redis did not answer, or (FLASHSALE_REDIS_ACK_REPLICAS) its replicas "
    "did not confirm the write in time; a retry completes or replays it",
    "engine_unavailable",
    "not_replicated",
)
UNAVAILABLE_OR_DB = _problem(
    "Redis or the database did not answer; retry shortly", "engine_unavailable", "database_unavailable"
)
INVALID_JSON = _problem("The body is not a JSON object, or is not sent as application/json", "invalid_json")
TOO_LARGE = _problem(f"The body is larger than {MAX_BODY_BYTES} bytes", "payload_too_large")
INVALID = _problem("Fields at fault, listed in `errors`", "validation_error")
INVALID_PATH = _problem("The path parameter is not a valid id, listed in `errors`", "validation_error")
BUYER_TOKEN = _problem(
    "With FLASHSALE_BUYER_AUTH=jwt: the buyer token is missing, malformed, expired, not yet valid, for another "
    'audience or issuer, or not signed by the configured key (`WWW-Authenticate: Bearer error="invalid_token"`)',
    "invalid_buyer_token",
)
BUYER_SECURITY: list[dict[str, list[str]]] = [{"buyerToken": []}]
"""Every buyer operation: with FLASHSALE_BUYER_AUTH=jwt a hold or order is its buyer's alone; with off, no token."""


def _paths() -> dict[str, Any]:
    product = _path("id", PRODUCT_ID, "Product id.")
    hold = _path("hold_id", HOLD_ID, "Hold id, as returned by POST /api/holds.")
    order = _path("order_id", ORDER_ID, "Order id, as returned by POST /api/orders.")
    return {
        "/api/products": {
            "get": {
                "summary": "List the products on sale",
                "operationId": "listProducts",
                "tags": ["catalog"],
                "responses": {
                    "200": _ok("Every product, with live availability", {"type": "array", "items": _ref("Product")}),
                    "503": UNAVAILABLE_OR_DB,
                },
            }
        },
        "/api/products/{id}": {
            "get": {
                "summary": "One product, with live availability",
                "operationId": "getProduct",
                "tags": ["catalog"],
                "parameters": [product],
                "responses": {
                    "200": _ok("The product", _ref("Product")),
                    "404": _problem("No such product", "product_not_found"),
                    "422": INVALID_PATH,
                    "503": UNAVAILABLE_OR_DB,
                },
            }
        },
        "/api/holds": {
            "post": {
                "summary": "Hold units of a product for a few minutes",
                "operationId": "createHold",
                "tags": ["buying"],
                "security": BUYER_SECURITY,
                "parameters": [IDEMPOTENCY_KEY],
                "requestBody": _body("HoldRequest"),
                "responses": {
                    "201": _ok("The hold", _ref("Hold")),
                    "400": INVALID_JSON,
                    "401": BUYER_TOKEN,
                    "404": _problem("No such product", "product_not_found"),
                    "409": _problem(
                        "The units cannot be held, or the Idempotency-Key was first used for another request",
                        "out_of_stock",
                        "limit_exceeded",
                        "sale_not_active",
                        "idempotency_key_reused",
                    ),
                    "413": TOO_LARGE,
                    "422": _problem(
                        "Fields at fault, listed in `errors`; or (buyer tokens) a customer_id other than the token's",
                        "validation_error",
                        "customer_mismatch",
                    ),
                    "429": _problem("Too many hold requests from this address, or buyer, this second", "rate_limited"),
                    "503": WRITE_UNAVAILABLE,
                },
            }
        },
        "/api/holds/{hold_id}": {
            "get": {
                "summary": "An active hold",
                "operationId": "getHold",
                "tags": ["buying"],
                "security": BUYER_SECURITY,
                "parameters": [hold],
                "responses": {
                    "200": _ok("The hold, still active", _ref("ActiveHold")),
                    "401": BUYER_TOKEN,
                    "404": _problem("No such hold (or another buyer's)", "hold_not_found"),
                    "409": _problem("The hold became an order", "hold_already_used"),
                    "410": _problem("The hold expired or was released", "hold_expired", "hold_released"),
                    "422": INVALID_PATH,
                    "503": UNAVAILABLE,
                },
            },
            "delete": {
                "summary": "Release a hold: its units are available again at once",
                "operationId": "releaseHold",
                "tags": ["buying"],
                "security": BUYER_SECURITY,
                "parameters": [hold],
                "responses": {
                    "204": {"description": "Released (releasing twice has one effect)"},
                    "401": BUYER_TOKEN,
                    "404": _problem("No such hold (or another buyer's)", "hold_not_found"),
                    "409": _problem("The hold became an order", "hold_already_used"),
                    "410": _problem("The hold expired", "hold_expired"),
                    "422": INVALID_PATH,
                    "503": WRITE_UNAVAILABLE,
                },
            },
        },
        "/api/orders": {
            "post": {
                "summary": "Turn a hold into an order awaiting payment",
                "operationId": "createOrder",
                "tags": ["buying"],
                "security": BUYER_SECURITY,
                "parameters": [IDEMPOTENCY_KEY],
                "requestBody": _body("OrderRequest"),
                "responses": {
                    "201": _ok("The order, pending payment", _ref("Order")),
                    "400": INVALID_JSON,
                    "401": BUYER_TOKEN,
                    "404": _problem("No such hold (or another buyer's)", "hold_not_found"),
                    "409": _problem("The hold already became an order", "hold_already_used"),
                    "410": _problem("The hold expired or was released", "hold_expired", "hold_released"),
                    "413": TOO_LARGE,
                    "422": INVALID,
                    "503": WRITE_UNAVAILABLE,
                },
            }
        },
        "/api/orders/{order_id}": {
            "get": {
                "summary": "An order and its current status",
                "operationId": "getOrder",
                "tags": ["buying"],
                "security": BUYER_SECURITY,
                "parameters": [order],
                "responses": {
                    "200": _ok("The order", _ref("Order")),
                    "401": BUYER_TOKEN,
                    "404": _problem("No such order (or another buyer's)", "order_not_found"),
                    "422": INVALID_PATH,
                    "503": UNAVAILABLE_OR_DB,
                },
            }
        },
        "/api/orders/{order_id}/cancel": {
            "post": {
                "summary": "Cancel an unpaid order: its units are available again",
                "operationId": "cancelOrder",
                "tags": ["buying"],
                "security": BUYER_SECURITY,
                "parameters": [order],
                "responses": {
                    "200": _ok("The order, cancelled (cancelling twice returns it unchanged)", _ref("Order")),
                    "401": BUYER_TOKEN,
                    "404": _problem("No such order (or another buyer's)", "order_not_found"),
                    "409": _problem("The order is paid", "order_not_pending"),
                    "422": INVALID_PATH,
                    "503": _problem(
                        "Redis or the database did not answer, the replicas did not confirm the cancel in time "
                        "(retry it), or the engine lost this order until a reconcile",
                        "engine_unavailable",
                        "not_replicated",
                        "database_unavailable",
                        "order_state_unknown",
                    ),
                },
            }
        },
        "/api/payments/webhook": {
            "post": {
                "summary": "The payment provider reports a transaction (signed)",
                "description": (
                    f'`{signing.SIGNATURE_HEADER}: v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>">` keyed with '
                    f"FLASHSALE_WEBHOOK_SECRET, and `{signing.TIMESTAMP_HEADER}: <unix seconds>` within "
                    f"{signing.TOLERANCE_SECONDS} s of now. A transaction id takes effect at most once in the "
                    "whole sale: sent again for its order it is a duplicate; sent for another order, on any "
                    "product, it is refused (409) without naming that order."
                ),
                "operationId": "paymentWebhook",
                "tags": ["payments"],
                "parameters": [
                    {
                        "name": signing.TIMESTAMP_HEADER,
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
                    },
                    {
                        "name": signing.SIGNATURE_HEADER,
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^v1=[0-9a-f]{64}$"},
                    },
                ],
                "requestBody": _body("WebhookRequest"),
                "responses": {
                    "200": _ok("What the payment did", _ref("WebhookResult")),
                    "400": INVALID_JSON,
                    "401": _problem("Missing, malformed, wrong or stale signature", "invalid_signature"),
                    "404": _problem(
                        "Neither the engine nor the database knows the order; for `refunded`, no refund was "
                        "requested of that transaction for that order",
                        "order_not_found",
                        "refund_not_found",
                    ),
                    "409": _problem("The transaction id already belongs to another order", "transaction_id_reused"),
                    "413": TOO_LARGE,
                    "422": INVALID,
                    "503": _problem(
                        "Retry later: Redis or the database did not answer, the replicas did not confirm the "
                        "payment in time, the engine lost the order until a reconcile, or no webhook secret is "
                        "configured",
                        "engine_unavailable",
                        "not_replicated",
                        "database_unavailable",
                        "order_state_unknown",
                        "webhook_disabled",
                    ),
                },
            }
        },
        "/api/admin/products/{id}": {
            "put": {
                "summary": "Create or change a product, in the database and the engine",
                "operationId": "putProduct",
                "tags": ["admin"],
                "security": [{"adminToken": []}],
                "parameters": [product],
                "requestBody": _body("ProductSpec"),
                "responses": {
                    "200": _ok("Changed", _ref("Product")),
                    "201": _ok("Created", _ref("Product")),
                    "400": INVALID_JSON,
                    "401": _problem("Missing or wrong admin token", "unauthorized"),
                    "403": _problem("No admin token is configured on the server", "admin_disabled"),
                    "409": _problem("Stock below the units held, pending or sold", "stock_below_committed"),
                    "413": TOO_LARGE,
                    "422": INVALID,
                    "503": _problem(
                        "Retry: Redis or the database did not answer, or refused the write. Nothing changed, "
                        "except after `product_put_incomplete`, which says what is left, and `not_replicated` "
                        "(both stores took the change, the replicas did not confirm it in time); putting the "
                        "product again makes both agree",
                        "engine_unavailable",
                        "not_replicated",
                        "database_unavailable",
                        "catalog_write_failed",
                        "product_put_incomplete",
                    ),
                },
            }
        },
        "/api/admin/stats": {
            "get": {
                "summary": "The dashboard's figures: stock per product, running counts, rates, backlog, reconcile",
                "description": "Sampled at most twice a second however many ask; the verdict every 2 s.",
                "operationId": "dashboardStats",
                "tags": ["admin"],
                "security": [{"adminToken": []}],
                "responses": {
                    "200": _ok("The figures now", _ref("DashboardStats")),
                    "401": _problem("Missing or wrong admin token", "unauthorized"),
                    "403": _problem("No admin token is configured on the server", "admin_disabled"),
                    "503": UNAVAILABLE,
                },
            }
        },
        "/api/admin/stream": {
            "get": {
                "summary": "The dashboard's figures as Server-Sent Events",
                "description": (
                    "The stream opens with `retry: 1000` (no event), then sends StreamEvent events: `stats` "
                    "carries a DashboardStats document each time a figure changed, at most twice a second (a slow "
                    "reader gets the latest, never a backlog); `problem` says the engine did not answer; "
                    "`reconnect` ends the stream after 5 s: open it again. The 200 answer's schema describes one "
                    "event, as OpenAPI 3.0 tools read an event stream (OpenAPI 3.2 calls it `itemSchema`)."
                ),
                "operationId": "dashboardStream",
                "tags": ["admin"],
                "security": [{"adminToken": []}],
                "responses": {
                    "200": _ok(
                        "An event stream; each event is a StreamEvent", _ref("StreamEvent"), "text/event-stream"
                    ),
                    "401": _problem("Missing or wrong admin token", "unauthorized"),
                    "403": _problem("No admin token is configured on the server", "admin_disabled"),
                },
            }
        },
        "/api/demo/payments": {
            "post": {
                "summary": "The simulated payment provider: pay (or fail) a pending order by a signed webhook",
                "description": (
                    "Off unless FLASHSALE_DEMO_PROVIDER=1 (`flashsale up` sets it). About a second after the 202, "
                    "the provider calls POST /api/payments/webhook on this server, signed with the webhook secret."
                ),
                "operationId": "demoPayment",
                "tags": ["demo"],
                "requestBody": _body("DemoPaymentRequest"),
                "responses": {
                    "202": _ok("The provider will send the webhook", _ref("DemoPayment")),
                    "400": INVALID_JSON,
                    "403": _problem("The simulated provider is off on this server", "demo_provider_disabled"),
                    "404": _problem("No such order", "order_not_found"),
                    "409": _problem("The order is paid or cancelled", "order_not_pending"),
                    "413": TOO_LARGE,
                    "422": INVALID,
                    "503": _problem(
                        "Redis did not answer, or no webhook secret is configured",
                        "engine_unavailable",
                        "webhook_disabled",
                    ),
                },
            }
        },
        "/": {
            "get": {
                "summary": "The demo storefront (HTML)",
                "operationId": "storefrontPage",
                "tags": ["pages"],
                "responses": {"200": _ok("The page", {"type": "string"}, "text/html")},
            }
        },
        "/dashboard": {
            "get": {
                "summary": "The operator's live dashboard (HTML; its data needs the admin token)",
                "operationId": "dashboardPage",
                "tags": ["pages"],
                "responses": {"200": _ok("The page", {"type": "string"}, "text/html")},
            }
        },
        "/livez": {
            "get": {
                "summary": "The process answers (no I/O)",
                "operationId": "livez",
                "tags": ["operations"],
                "responses": {
                    "200": _ok("Alive", _object({"status": {"type": "string", "enum": ["ok"]}})),
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "The engine's Redis, the queue's Redis and the database all answer",
                "operationId": "readyz",
                "tags": ["operations"],
                "responses": {
                    "200": _ok("Ready", _ref("Ready")),
                    "503": _problem("Something is down; `checks` names it", "not_ready"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text format)",
                "operationId": "metrics",
                "tags": ["operations"],
                "responses": {"200": _ok("Metrics", {"type": "string"}, "text/plain")},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "tags": ["operations"],
                "responses": {"200": _ok("OpenAPI 3 document", {"type": "object"})},
            }
        },
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "flashsale",
            "version": "1",
            "description": (
                "A flash-sale API: hold units, turn a hold into an order, get paid by a signed webhook. "
                "Every 4xx and 5xx answer is application/problem+json with a stable `code`."
            ),
        },
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer", "description": "FLASHSALE_ADMIN_TOKEN"},
                "buyerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "A buyer token, required with FLASHSALE_BUYER_AUTH=jwt (ignored with off): a JWT whose `sub` "
                        "is the buyer and customer id, with `exp`, signed HS256, RS256 or ES256 by the key the server "
                        "is configured with (`flashsale token SUB` prints one for the HS256 secret)."
                    ),
                },
            },
        },
    }
