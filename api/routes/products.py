"""The public catalog: names from the (cached) catalog, stock and availability live from the engine."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.responses import json, product_body
from api.services import of
from api.validation import path_product_id
from engine import AsyncEngine
from engine.exceptions import ProductNotFound
from engine.types import Snapshot


async def _snapshot(engine: AsyncEngine, product_id: int) -> Snapshot | None:
    try:
        return await engine.snapshot(product_id)
    except ProductNotFound:
        return None  # in the catalog but not (yet, or no longer) in the engine: not for sale


async def list_products(request: Request) -> Response:
    services = of(request)
    products = await services.catalog.products()
    snapshots = await asyncio.gather(*(_snapshot(services.engine, pid) for pid in products))
    return json([product_body(products[s.product_id].name, s) for s in snapshots if s is not None])


async def get_product(request: Request) -> Response:
    product_id = path_product_id(request)
    services = of(request)
    product = await services.catalog.get(product_id)
    if product is None:
        raise ProductNotFound(product_id)
    return json(product_body(product.name, await services.engine.snapshot(product_id)))


routes = [
    Route("/api/products", list_products, methods=["GET"]),
    Route("/api/products/{id}", get_product, methods=["GET"]),
]
