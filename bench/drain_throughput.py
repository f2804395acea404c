"""How fast one worker drains the outbox into PostgreSQL.

    .venv/bin/python bench/drain_throughput.py [--events 10000] [--redis-url URL] [--database-url URL]

Places orders through the engine until the outbox of one product holds ``--events`` events (orders
created, paid, failed and cancelled), then runs one burst worker (``flashsale worker --burst``, in
process) and prints the events drained per second. The product gets a random id and is removed from
Redis and the database afterwards, so the bench is safe on a shared server. The database is created
and migrated if it does not exist.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import time

import redis
import sqlalchemy as sa

from engine import Engine
from engine.keys import PRODUCTS_KEY, product_keys
from persistence.catalog import ProductSpec, put_product
from persistence.db import make_engine, normalize_url
from persistence.migrate import upgrade
from persistence.models import orders, payments, products
from shared import logs, settings
from workers.drain import DEFAULT_BATCH_SIZE
from workers.run import run_worker

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/flashsale_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def ensure_database(url: str) -> None:
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    server = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        exists = connection.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database})
        if exists.first() is None:
            connection.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
    server.dispose()


def fill_outbox(engine: Engine, product_id: int, events: int) -> int:
    """Orders cycling through paid (3 events), pending (1), failed (3) and cancelled (2); returns the orders."""
    placed = 0
    while engine.outbox_backlog(product_id) < events:
        order = engine.convert(engine.reserve(product_id, 1, customer_id=f"c{placed % 97}").hold_id)
        kind = placed % 4
        if kind == 0:
            engine.settle(order.order_id, f"bench-{product_id}-{placed}", "success", '{"bench": true}')
        elif kind == 2:
            engine.settle(order.order_id, f"bench-{product_id}-{placed}", "failed", '{"bench": true}')
        elif kind == 3:
            engine.cancel(order.order_id)
        placed += 1
    return placed


def clean(client: redis.Redis, db: sa.Engine, product_id: int) -> None:
    client.delete(*product_keys(product_id).all())
    client.srem(PRODUCTS_KEY, product_id)
    mine = orders.c.product_id == product_id
    with db.begin() as connection:
        connection.execute(sa.delete(payments).where(payments.c.order_id.in_(sa.select(orders.c.id).where(mine))))
        connection.execute(sa.delete(orders).where(mine))
        connection.execute(sa.delete(products).where(products.c.id == product_id))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--rounds", type=int, default=3, help="report each round and the median")
    args = parser.parse_args()

    ensure_database(args.database_url)
    upgrade(args.database_url)
    logs.configure("console", level=logging.WARNING)
    client = redis.Redis.from_url(args.redis_url)
    db = make_engine(args.database_url)
    config = settings.load(
        {"FLASHSALE_REDIS_URL": args.redis_url, "FLASHSALE_DATABASE_URL": args.database_url, "FLASHSALE_VAR_DIR": "var"}
    )
    backend = normalize_url(args.database_url).get_backend_name()
    rates = [one_round(client, db, config, args.events, args.batch_size) for _ in range(args.rounds)]
    db.dispose()
    print(
        f"median: {statistics.median(rates):,.0f} events/s drained into {backend} by one worker "
        f"(batch size {args.batch_size})"
    )


def one_round(client: redis.Redis, db: sa.Engine, config: settings.Settings, events: int, batch_size: int) -> float:
    engine = Engine(client)
    product_id = random.randrange(10**12, 10**13)
    try:
        put_product(engine, db, ProductSpec(product_id, "drain bench", 100, events * 2))
        placed = fill_outbox(engine, product_id, events)
        backlog = engine.outbox_backlog(product_id)

        started = time.perf_counter()
        run_worker(config, burst=True, batch_size=batch_size)
        elapsed = time.perf_counter() - started

        with db.connect() as connection:
            written = connection.execute(
                sa.select(sa.func.count()).select_from(orders).where(orders.c.product_id == product_id)
            ).scalar_one()
        left = engine.outbox_backlog(product_id)
        if written != placed or left:
            raise SystemExit(f"drain incomplete: {written} of {placed} orders written, {left} events left")
        rate = backlog / elapsed
        print(f"drained {backlog} outbox events ({placed} orders) in {elapsed:.2f} s: {rate:,.0f} events/s")
        return rate
    finally:
        clean(client, db, product_id)


if __name__ == "__main__":
    main()
