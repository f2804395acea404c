"""Admin: put products on sale. Every call needs the admin bearer token."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import bodies, threadpool
from api.auth import require_admin
from api.responses import json, product_body
from api.services import of
from api.times import parse_sale_bound
from api.validation import Fields, decode, path_product_id, read_json
from engine.exceptions import EngineError, ProductRuleError
from engine.product_rules import DEFAULT_ADMISSION_TTL_SECONDS, check_sale_window
from persistence.catalog import ProductSpec, put_product
from persistence.exceptions import PersistenceError
from shared.logs import PRODUCT_PUT_FAILED, get_logger

log = get_logger("api.admin")


def _bound(fields: Fields, name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_sale_bound(value)
    except ValueError as error:  # the pattern's form, but no moment of the calendar (February 30th)
        fields.fault(name, str(error))
        return None


def _window(fields: Fields, values: Mapping[str, Any]) -> None:
    """What JSON Schema cannot state of a sale window: real moments, the end after the start (the document says it
    in the ProductSpec's description)."""
    starts = _bound(fields, "sale_starts_at", values.get("sale_starts_at"))
    ends = _bound(fields, "sale_ends_at", values.get("sale_ends_at"))
    try:
        check_sale_window(starts, ends)
    except ProductRuleError as error:
        fields.fault(error.field, error.reason)


def _moment(value: str | None) -> datetime | None:
    return None if value is None else parse_sale_bound(value)


async def put(request: Request) -> Response:
    services = of(request)
    require_admin(request, services.settings.admin_token)
    product_id = path_product_id(request)
    body = decode(await read_json(request), bodies.ProductSpec, also=_window)
    starts, ends = check_sale_window(_moment(body.sale_starts_at), _moment(body.sale_ends_at))
    spec = ProductSpec(
        product_id,
        body.name,
        body.price_cents,
        body.stock,
        body.max_per_customer or 0,
        starts,
        ends,
        waiting_room=bool(body.waiting_room),
        admit_per_second=body.admit_per_second,
        admission_ttl_seconds=body.admission_ttl_seconds or DEFAULT_ADMISSION_TTL_SECONDS,
        low_stock_threshold=body.low_stock_threshold or 0,
    )
    try:
        product, created = await threadpool.call(put_product, services.admin_engine, services.db, spec)
    except (EngineError, PersistenceError) as error:
        log.warning(PRODUCT_PUT_FAILED, product_id=product_id, code=error.code, error=str(error))
        raise
    finally:
        services.catalog.invalidate()  # a failed put changes nothing, unless it says it could not undo
    log.info(
        "product_saved",
        product_id=product.id,
        created=created,
        stock=product.stock,
        price_cents=product.price_cents,
    )
    return json(product_body(product.name, await services.engine.snapshot(product_id)), 201 if created else 200)


routes = [Route("/api/admin/products/{id}", put, methods=["PUT"])]
