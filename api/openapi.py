"""The OpenAPI 3 document served at ``/openapi.json``: the schemas of bodies and answers built from their one
declaration (``api.bodies``), and the paths, written out to match the routes exactly.

Every status a route can answer is listed with the problem ``code`` values it can carry, so a schema-driven
fuzzer (schemathesis) can hold the API to it. ``tests/test_api_openapi.py`` checks the two agree.

It stays OpenAPI 3.0: its ``integer`` is a number written without fraction or exponent, which is what the API
takes (``1.0`` is refused); from OpenAPI 3.1, JSON Schema counts ``1.0`` as an integer. msgspec writes JSON Schema
2020-12, so ``openapi30`` adapts it: null as ``nullable``, one ``example``, and patterns in ECMA-262 again.
"""

from __future__ import annotations

from typing import Any

import msgspec

from api import bodies
from api.validation import MAX_BODY_BYTES
from shared import signing

Schema = dict[str, Any]

REF = "#/components/schemas/{name}"


def _ref(name: str) -> Schema:
    return {"$ref": REF.format(name=name)}


def ref(struct: type[msgspec.Struct]) -> Schema:
    """A reference to a Struct of ``api.bodies`` (listed in its ``SCHEMAS``)."""
    return _ref(struct.__name__)


def openapi30(schema: Any) -> Any:
    """msgspec's JSON Schema as OpenAPI 3.0 reads it."""
    if isinstance(schema, list):
        return [openapi30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: openapi30(value) for key, value in schema.items() if key not in ("title", "default", "properties")}
    if "properties" in schema:
        out["properties"] = {name: openapi30(value) for name, value in schema["properties"].items()}
    options = out.get("anyOf")
    if options is not None and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        del out["anyOf"]
        (only,) = rest  # a union of two types besides null is not declared (OpenAPI 3.0 has no such nullable)
        out = {**(only if "$ref" not in only else {"allOf": [only]}), **out, "nullable": True}
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if "enum" in out and "type" not in out and all(isinstance(v, str | None) for v in out["enum"]):
        out = {"type": "string", **out}
    if "examples" in out:
        out["example"] = out.pop("examples")[0]
    pattern = out.get("pattern")
    if isinstance(pattern, str) and pattern.endswith("\\Z"):
        out["pattern"] = pattern.removesuffix("\\Z") + "$"
    return out


def schema_of(declared: Any) -> Schema:
    """The schema of one declared type (a path parameter's, a header's)."""
    schema: Schema = openapi30(msgspec.json.schema(declared))
    return schema


def _declared() -> dict[str, Schema]:
    _, components = msgspec.json.schema_components(bodies.SCHEMAS, ref_template=REF)
    schemas = {name: openapi30(schema) for name, schema in components.items()}
    return {name: _inline_nullable_refs(schema, schemas) for name, schema in schemas.items()}


def _inline_nullable_refs(schema: Any, schemas: dict[str, Schema]) -> Any:
    """A nullable reference as a copy of the schema it names, marked nullable: OpenAPI 3.0's ``nullable`` has no
    effect beside ``allOf`` (only beside ``type``), so ``null`` would not pass."""
    if isinstance(schema, list):
        return [_inline_nullable_refs(item, schemas) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("nullable") and [*schema.get("allOf", [])] and set(schema) <= {"allOf", "nullable", "description"}:
        (target,) = schema["allOf"]
        named = schemas[target["$ref"].rsplit("/", 1)[1]]
        return {**_inline_nullable_refs(named, schemas), **{k: v for k, v in schema.items() if k != "allOf"}}
    return {key: _inline_nullable_refs(value, schemas) for key, value in schema.items()}


EVENT_ID: Schema = {
    "type": "string",
    "pattern": "^(0|[1-9][0-9]*)$",
    "description": "The `version` of the last `stats` event sent; an event without an `id:` line keeps it.",
}


def _event(name: str, data: type[msgspec.Struct] | None, description: str) -> Schema:
    """One server-sent event, as OpenAPI 3.0 tools read a ``text/event-stream`` schema: the fields an EventSource
    parses from it. JSON Schema draft 4 has no ``contentSchema``: the JSON inside ``data`` is described by
    ``x-contentMediaType`` and ``x-contentSchema``, the 2019-09 keywords under an extension's name."""
    if data is None:
        field: Schema = {"type": "string", "enum": ["{}"], "description": "An empty JSON object."}
    else:
        field = {
            "type": "string",
            "pattern": "^[{].*[}]$",
            "description": f"A {data.__name__} document as one line of JSON.",
            "x-contentMediaType": "application/json",
            "x-contentSchema": ref(data),
        }
    return {
        "type": "object",
        "properties": {"event": {"type": "string", "enum": [name]}, "id": EVENT_ID, "data": field},
        "required": ["event", "id", "data"] if name == "stats" else ["event", "data"],
        "additionalProperties": False,
        "description": description,
    }


EVENTS: dict[str, Schema] = {
    "StatsEvent": _event(
        "stats",
        bodies.DashboardStats,
        "The figures, sent when any of them changed (at most twice a second). `id` is the document's `version`.",
    ),
    "ProblemEvent": _event("problem", bodies.StreamProblem, "The engine's Redis did not answer this tick."),
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
}
"""The event stream's framing, which is no JSON body: each event's fields, its data one of the declared bodies."""

SCHEMAS: dict[str, Schema] = {**_declared(), **EVENTS}
"""Every schema of the document: the declared bodies and answers, then the stream's events."""

PROBLEM_CONTENT = "application/problem+json"


def _problem(description: str, *codes: str) -> Schema:
    code = {"type": "object", "properties": {"code": {"type": "string", "enum": list(codes)}}}
    schema = {"allOf": [ref(bodies.Problem), code]}
    listed = ", ".join(f"`{c}`" for c in codes)
    return {"description": f"{description} ({listed})", "content": {PROBLEM_CONTENT: {"schema": schema}}}


def _ok(description: str, schema: Schema, media: str = "application/json") -> Schema:
    return {"description": description, "content": {media: {"schema": schema}}}


def _body(struct: type[msgspec.Struct]) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": ref(struct)}}}


def _path(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


IDEMPOTENCY_KEY: Schema = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": schema_of(bodies.IdempotencyKey),
    "description": (
        "A retry with the same key returns the first 201 body and takes effect once. A key belongs to its caller:"
        " on a hold, the customer_id it came with (the token's `sub` with buyer tokens; requests without one share"
        " one scope); on an order, the hold."
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
ADMISSION_HEADER: Schema = {
    "name": "X-Flashsale-Admission",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": bodies.ADMISSION_PATTERN, "maxLength": 64},
    "description": "The admission token of a waiting-room ticket (docs/waiting-room.md): required by a product with "
    "a waiting room, used up by the hold it buys.",
}

TICKET: Schema = {"type": "string", "pattern": bodies.TICKET_PATTERN, "maxLength": 64}
INVALID_PATH = _problem("The path parameter is not a valid id, listed in `errors`", "validation_error")
BUYER_TOKEN = _problem(
    "With FLASHSALE_BUYER_AUTH=jwt: the buyer token is missing, malformed, expired, not yet valid, for another "
    'audience or issuer, or not signed by the configured key (`WWW-Authenticate: Bearer error="invalid_token"`)',
    "invalid_buyer_token",
)
BUYER_SECURITY: list[dict[str, list[str]]] = [{"buyerToken": []}]
"""Every buyer operation: with FLASHSALE_BUYER_AUTH=jwt a hold or order is its buyer's alone; with off, no token."""


PRODUCT = ref(bodies.Product)


def _paths() -> dict[str, Any]:
    ticket = _path("ticket", TICKET, "Ticket, as returned by POST /api/products/{id}/queue.")
    poll_hint = {"Retry-After": {"description": "Seconds until the next poll", "schema": {"type": "integer"}}}
    no_room = _problem("The product has no waiting room", "waiting_room_off")
    product = _path("id", schema_of(bodies.ProductId), "Product id.")
    hold = _path("hold_id", schema_of(bodies.HoldId), "Hold id, as returned by POST /api/holds.")
    order = _path("order_id", schema_of(bodies.OrderId), "Order id, as returned by POST /api/orders.")
    return {
        "/api/products": {
            "get": {
                "summary": "List the products on sale",
                "operationId": "listProducts",
                "tags": ["catalog"],
                "responses": {
                    "200": _ok("Every product, with live availability", {"type": "array", "items": PRODUCT}),
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
                    "200": _ok("The product", ref(bodies.Product)),
                    "404": _problem("No such product", "product_not_found"),
                    "422": INVALID_PATH,
                    "503": UNAVAILABLE_OR_DB,
                },
            }
        },
        "/api/products/{id}/queue": {
            "post": {
                "summary": "Join the product's waiting room",
                "operationId": "joinQueue",
                "tags": ["waiting room"],
                "security": BUYER_SECURITY,
                "parameters": [product],
                "responses": {
                    "201": {**_ok("A new ticket", ref(bodies.Ticket)), "headers": poll_hint},
                    "401": BUYER_TOKEN,
                    "200": {
                        **_ok("This buyer's ticket, joined before (buyer tokens on)", ref(bodies.Ticket)),
                        "headers": poll_hint,
                    },
                    "404": _problem("No such product", "product_not_found"),
                    "409": _problem("No waiting room, or the sale has ended", "waiting_room_off", "sale_not_active"),
                    "422": INVALID_PATH,
                    "429": _problem("Too many requests from this address this second", "rate_limited"),
                    "503": WRITE_UNAVAILABLE,
                },
            },
            "get": {
                "summary": "The product's waiting room: the seed's SHA-256 at once, the seed after the start",
                "operationId": "getQueue",
                "tags": ["waiting room"],
                "parameters": [product],
                "responses": {
                    "200": _ok("The waiting room", ref(bodies.WaitingRoom)),
                    "404": _problem("No such product", "product_not_found"),
                    "409": no_room,
                    "422": INVALID_PATH,
                    "503": UNAVAILABLE,
                },
            },
        },
        "/api/products/{id}/queue/draw": {
            "get": {
                "summary": "The pre-queue's draw, once the sale has started: the seed and the ticket numbers",
                "operationId": "getQueueDraw",
                "tags": ["waiting room"],
                "parameters": [product],
                "responses": {
                    "200": _ok("The draw", ref(bodies.WaitingRoomDraw)),
                    "404": _problem("No such product", "product_not_found"),
                    "409": _problem(
                        "No waiting room, or the sale has not started", "waiting_room_off", "draw_not_revealed"
                    ),
                    "422": INVALID_PATH,
                    "503": UNAVAILABLE,
                },
            }
        },
        "/api/queue/{ticket}": {
            "get": {
                "summary": "Where a ticket stands",
                "operationId": "pollQueue",
                "tags": ["waiting room"],
                "security": BUYER_SECURITY,
                "parameters": [ticket],
                "responses": {
                    "200": {**_ok("The ticket", ref(bodies.Ticket)), "headers": poll_hint},
                    "401": BUYER_TOKEN,
                    "404": _problem(
                        "No such ticket (or its room was closed, or it is another buyer's)", "ticket_not_found"
                    ),
                    "422": INVALID_PATH,
                    "503": UNAVAILABLE,
                },
            },
            "delete": {
                "summary": "Leave the waiting room",
                "operationId": "leaveQueue",
                "tags": ["waiting room"],
                "security": BUYER_SECURITY,
                "parameters": [ticket],
                "responses": {
                    "204": {"description": "Left (again: 204; a used or expired ticket is left as it was)"},
                    "401": BUYER_TOKEN,
                    "404": _problem(
                        "No such ticket (or its room was closed, or it is another buyer's)", "ticket_not_found"
                    ),
                    "422": INVALID_PATH,
                    "503": WRITE_UNAVAILABLE,
                },
            },
        },
        "/api/holds": {
            "post": {
                "summary": "Hold units of a product for a few minutes",
                "operationId": "createHold",
                "tags": ["buying"],
                "security": BUYER_SECURITY,
                "parameters": [IDEMPOTENCY_KEY, ADMISSION_HEADER],
                "requestBody": _body(bodies.HoldRequest),
                "responses": {
                    "201": _ok("The hold", ref(bodies.Hold)),
                    "400": INVALID_JSON,
                    "401": BUYER_TOKEN,
                    "403": _problem(
                        "The product has a waiting room, and this hold has no valid admission", "admission_required"
                    ),
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
                    "200": _ok("The hold, still active", ref(bodies.ActiveHold)),
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
                "requestBody": _body(bodies.OrderRequest),
                "responses": {
                    "201": _ok("The order, pending payment", ref(bodies.Order)),
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
                    "200": _ok("The order", ref(bodies.Order)),
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
                    "200": _ok("The order, cancelled (cancelling twice returns it unchanged)", ref(bodies.Order)),
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
                "requestBody": _body(bodies.WebhookRequest),
                "responses": {
                    "200": _ok("What the payment did", ref(bodies.WebhookResult)),
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
                "requestBody": _body(bodies.ProductSpec),
                "responses": {
                    "200": _ok("Changed", ref(bodies.Product)),
                    "201": _ok("Created", ref(bodies.Product)),
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
                    "200": _ok("The figures now", ref(bodies.DashboardStats)),
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
        "/api/demo/login": {
            "post": {
                "summary": "The demo identity provider: a buyer token for a shopper's name",
                "description": (
                    "Off unless FLASHSALE_DEMO_PROVIDER=1 (`flashsale up` sets it), and only where buyer tokens are "
                    "signed with an HS256 secret (FLASHSALE_BUYER_JWT_SECRET, or the one `flashsale up` keeps): "
                    "anyone may log in as anyone, as in a demo."
                ),
                "operationId": "demoLogin",
                "tags": ["demo"],
                "requestBody": _body(bodies.DemoLoginRequest),
                "responses": {
                    "200": _ok("The shopper's token", ref(bodies.DemoLogin)),
                    "400": INVALID_JSON,
                    "403": _problem(
                        "The demo provider is off, or this server has no HS256 secret to sign with",
                        "demo_provider_disabled",
                        "demo_login_unavailable",
                    ),
                    "413": TOO_LARGE,
                    "422": INVALID,
                },
            }
        },
        "/api/demo/payments": {
            "post": {
                "summary": "The simulated payment provider: pay (or fail) a pending order by a signed webhook",
                "description": (
                    "Off unless FLASHSALE_DEMO_PROVIDER=1 (`flashsale up` sets it). About a second after the 202, "
                    "the provider calls POST /api/payments/webhook on this server, signed with the webhook secret. "
                    "With buyer tokens on, it pays only the token's buyer's orders."
                ),
                "operationId": "demoPayment",
                "tags": ["demo"],
                "security": BUYER_SECURITY,
                "requestBody": _body(bodies.DemoPaymentRequest),
                "responses": {
                    "202": _ok("The provider will send the webhook", ref(bodies.DemoPayment)),
                    "400": INVALID_JSON,
                    "401": BUYER_TOKEN,
                    "403": _problem("The simulated provider is off on this server", "demo_provider_disabled"),
                    "404": _problem("No such order (or another buyer's)", "order_not_found"),
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
                    "200": _ok("Alive", ref(bodies.Live)),
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "The engine's Redis, the queue's Redis and the database all answer",
                "operationId": "readyz",
                "tags": ["operations"],
                "responses": {
                    "200": _ok("Ready", ref(bodies.Ready)),
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
