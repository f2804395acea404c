"""Admin: put products on sale. Every call needs the admin bearer token."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import threadpool
from api.auth import require_admin
from api.responses import json, product_body
from api.services import of
from api.validation import Fields, path_product_id, read_json
from engine.exceptions import EngineError, ProductRuleError
from engine.product_rules import MAX_NAME, MAX_PER_CUSTOMER, MAX_PRICE_CENTS, MAX_STOCK, check_sale_window
from persistence.catalog import ProductSpec, put_product
from persistence.exceptions import PersistenceError
from shared.logs import PRODUCT_PUT_FAILED, get_logger

log = get_logger("api.admin")


def _window(fields: Fields) -> tuple[datetime | None, datetime | None]:
    # Each bound's form is in the OpenAPI document; the rule between the two is in its description only.
    starts, ends = fields.sale_bound("sale_starts_at"), fields.sale_bound("sale_ends_at")
    try:
        return check_sale_window(starts, ends)
    except ProductRuleError as error:
        fields.fault(error.field, error.reason)
        return starts, ends


async def put(request: Request) -> Response:
    services = of(request)
    require_admin(request, services.settings.admin_token)
    product_id = path_product_id(request)
    body, _ = await read_json(request)
    fields = Fields(body)
    name = fields.name("name", MAX_NAME)
    price_cents = fields.integer("price_cents", 0, MAX_PRICE_CENTS)
    stock = fields.integer("stock", 0, MAX_STOCK)
    max_per_customer = fields.integer("max_per_customer", 0, MAX_PER_CUSTOMER, required=False)
    starts, ends = _window(fields)
    fields.check()
    spec = ProductSpec(product_id, name or "", price_cents, stock, max_per_customer, starts, ends)
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
