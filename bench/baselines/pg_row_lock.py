"""The seed's design, for comparison: stock in a PostgreSQL row, guarded by ``SELECT ... FOR UPDATE``.

``POST /api/holds`` takes the same body as flashsale's and, in one transaction, locks the product row,
checks the stock, decrements it and inserts a hold row. It is served by uvicorn with flashsale's
settings and keeps as many database connections as flashsale keeps Redis connections.

    python -m bench.baselines.pg_row_lock --port 8001   # BENCH_PG_URL, BENCH_POOL_SIZE from the environment
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from ulid import ULID

from engine.connection import DEFAULT_MAX_CONNECTIONS

HOLD_TTL = timedelta(seconds=120)
SCHEMA = """
CREATE TABLE IF NOT EXISTS pg_row_lock_products (
    id bigint PRIMARY KEY,
    stock bigint NOT NULL,
    available bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS pg_row_lock_holds (
    id text PRIMARY KEY,
    product_id bigint NOT NULL REFERENCES pg_row_lock_products (id),
    quantity integer NOT NULL,
    customer_id text,
    expires_at timestamptz NOT NULL
);
"""


def conninfo(url: str) -> str:
    """A libpq URL from a SQLAlchemy one (``postgresql+psycopg://`` -> ``postgresql://``)."""
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


def prepare(url: str, product_ids: range, stock: int) -> None:
    """Create the two tables, empty them, and put ``stock`` units of each product on sale."""
    with psycopg.connect(conninfo(url), autocommit=True) as connection:
        connection.execute(SCHEMA)
        connection.execute("TRUNCATE pg_row_lock_holds, pg_row_lock_products")
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO pg_row_lock_products (id, stock, available) VALUES (%s, %s, %s)",
                [(product_id, stock, stock) for product_id in product_ids],
            )


def oversold(url: str) -> tuple[int, int]:
    """Units sold beyond stock (0 when sound), and the hold rows written."""
    with psycopg.connect(conninfo(url)) as connection:
        rows = connection.execute(
            "SELECT p.stock, p.available, coalesce(sum(h.quantity), 0) FROM pg_row_lock_products p "
            "LEFT JOIN pg_row_lock_holds h ON h.product_id = p.id GROUP BY p.id"
        ).fetchall()
        holds = connection.execute("SELECT count(*) FROM pg_row_lock_holds").fetchone()
    over = sum(max(0, int(held) - int(stock)) + max(0, -int(available)) for stock, available, held in rows)
    return over, int(holds[0]) if holds else 0


class Pool:
    """A fixed set of connections handed out in turn: as bounded as flashsale's blocking Redis pool."""

    def __init__(self, url: str, size: int) -> None:
        self.url, self.size = url, size
        self.idle: asyncio.Queue[psycopg.AsyncConnection] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            self.idle.put_nowait(await psycopg.AsyncConnection.connect(conninfo(self.url), autocommit=True))

    async def close(self) -> None:
        while not self.idle.empty():
            await self.idle.get_nowait().close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        connection = await self.idle.get()
        try:
            yield connection
        finally:
            self.idle.put_nowait(connection)


def problem(status: int, code: str) -> Response:
    return Response(orjson.dumps({"code": code}), status_code=status, media_type="application/problem+json")


def create_app() -> Starlette:
    pool = Pool(os.environ["BENCH_PG_URL"], int(os.environ.get("BENCH_POOL_SIZE", DEFAULT_MAX_CONNECTIONS)))

    async def create_hold(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
            product_id, quantity = body["product_id"], body["quantity"]
            customer_id = body.get("customer_id")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return problem(422, "validation_error")
        if type(product_id) is not int or type(quantity) is not int or quantity < 1:
            return problem(422, "validation_error")
        hold_id = f"h{product_id}_{ULID()}"
        expires_at = datetime.now(UTC) + HOLD_TTL
        async with pool.connection() as connection, connection.transaction():
            row = await (
                await connection.execute(
                    "SELECT available FROM pg_row_lock_products WHERE id = %s FOR UPDATE", (product_id,)
                )
            ).fetchone()
            if row is None:
                return problem(404, "product_not_found")
            if row[0] < quantity:
                return problem(409, "out_of_stock")
            await connection.execute(
                "UPDATE pg_row_lock_products SET available = available - %s WHERE id = %s", (quantity, product_id)
            )
            await connection.execute(
                "INSERT INTO pg_row_lock_holds (id, product_id, quantity, customer_id, expires_at) "
                "VALUES (%s, %s, %s, %s, %s)",
                (hold_id, product_id, quantity, customer_id, expires_at),
            )
        answer = {
            "hold_id": hold_id,
            "product_id": product_id,
            "quantity": quantity,
            "customer_id": customer_id,
            "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
        }
        return Response(orjson.dumps(answer), status_code=201, media_type="application/json")

    async def livez(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.open()
        try:
            yield
        finally:
            await pool.close()

    return Starlette(
        routes=[Route("/api/holds", create_hold, methods=["POST"]), Route("/livez", livez, methods=["GET"])],
        lifespan=lifespan,
    )


def main() -> None:
    import uvicorn

    from api.serving import UVICORN_OPTIONS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(
        "bench.baselines.pg_row_lock:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=1,
        access_log=False,
        **UVICORN_OPTIONS,
    )


if __name__ == "__main__":
    main()
