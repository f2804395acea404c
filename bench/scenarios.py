"""The scenarios: each prepares its data, starts a fresh server, loads it, and checks the stock afterwards."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

from bench import drain_throughput, load, machine, redis_figures, servers
from bench.baselines import pg_row_lock
from bench.checks import StockCheck, check_stock
from bench.traffic import HttpRun, Tool, Traffic
from engine import Engine, calls
from engine.coalesce import MAX_BATCH
from engine.keys import product_keys
from engine.pipelining import MAX_CALLS
from persistence.catalog import ProductSpec, put_product
from persistence.db import make_engine
from persistence.models import orders, payments, products
from shared import buyer_tokens, settings
from workers.drain import DEFAULT_BATCH_SIZE

HOT_PRODUCT = 1
SPREAD_PRODUCTS = range(1001, 2001)
PURCHASE_PRODUCT = 3001
ENGINE_PRODUCT = 4001
MEMORY_PRODUCT = 5001
QUEUE_PRODUCT = 6001
QUEUE_STOCK = 1000
"""The waiting-room scenarios' stock: the first 1,000 tickets are admitted, the rest wait."""
POLLED_TICKETS = 10_000
DRAIN_SETTLE_SECONDS = 60.0
LOTS = 10**9
PACE_MS = 100
"""holds-paced: each connection's mean pause between holds (500 connections offer at most 5,000 holds/s)."""
"""Stock large enough never to run out during a scenario."""


@dataclass
class Bench:
    """One run of the harness: where it sends load, with what, and for how long."""

    tool: Tool
    server: str
    redis_url: str
    database_url: str
    workdir: Path
    seconds: float
    warmup: float
    pool_size: int
    engine_callers: int = 50
    redis_benchmark_requests: int = 300_000
    memory_holds: int = 100_000
    drain_events: int = 10_000
    drain_rounds: int = 3
    webhook_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))

    def __post_init__(self) -> None:
        self.server_pid: int | None = None
        """The server being measured (its CPU is counted with its workers'), or None for a foreign one."""
        self.redis = redis.Redis.from_url(self.redis_url)
        self.engine = Engine(self.redis)
        self.db = make_engine(self.database_url)

    def close(self) -> None:
        self.redis.close()
        self.db.dispose()

    @property
    def env(self) -> dict[str, str]:
        return {
            "FLASHSALE_REDIS_URL": self.redis_url,
            "FLASHSALE_DATABASE_URL": self.database_url,
            "FLASHSALE_WEBHOOK_SECRET": self.webhook_secret,
            "FLASHSALE_ADMIN_TOKEN": self.admin_token,
            "FLASHSALE_VAR_DIR": str(self.workdir / "var"),
            "FLASHSALE_LOG_FORMAT": "json",
        }

    def reset(self) -> None:
        """An empty engine and catalog: every scenario starts from the same state."""
        self.redis.flushdb()
        with self.db.begin() as connection:
            for table in (payments, orders, products):
                connection.execute(sa.delete(table))

    def put(self, product_ids: range | list[int], stock: int) -> None:
        for product_id in product_ids:
            put_product(self.engine, self.db, ProductSpec(product_id, f"bench {product_id}", 100, stock))

    @contextmanager
    def flashsale(self, label: str, *, workers: int = 1, **env: str) -> Iterator[str]:
        command = servers.flashsale_command(self.server, workers)
        with servers.serving("flashsale", command, {**self.env, **env}, self.workdir / f"{label}.log") as served:
            self.server_pid = served.pid
            try:
                yield served.url
            finally:
                self.server_pid = None

    def drive(
        self, base_url: str, traffic: Traffic, connections: int, *, stretch: int = 1
    ) -> tuple[HttpRun, dict[str, int]]:
        """A warm-up (not reported), then the measured run (``stretch`` times as long); returns the run and the
        answers of both."""
        counts: dict[str, int] = {}
        if self.warmup > 0:
            warm = load.run(self.tool, base_url, traffic, connections, self.warmup)
            counts = dict(warm.counts)
        with machine.cost(self.server_pid, self.redis) as spent:
            measured = load.run(self.tool, base_url, traffic, connections, self.seconds * stretch)
        measured.cost = machine.per_request(spent, measured.requests)
        for kind, n in measured.counts.items():
            counts[kind] = counts.get(kind, 0) + n
        return measured, counts


@dataclass
class Point:
    """One measured run of an HTTP scenario, with the stock check after it."""

    run: HttpRun
    check: StockCheck
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {**self.run.as_json(), "check": self.check.as_json(), **self.extra}


def livez(bench: Bench, connections: int) -> Point:
    bench.reset()
    with bench.flashsale(f"livez-{connections}") as url:
        run, _ = bench.drive(url, Traffic("livez"), connections)
    return Point(run, StockCheck())


def holds(bench: Bench, product_ids: range, connections: int, label: str, workers: int = 1, **env: str) -> Point:
    bench.reset()
    bench.put(product_ids, LOTS)
    traffic = Traffic("holds", (str(product_ids[0]), str(product_ids[-1])))
    with bench.flashsale(f"{label}-{connections}", workers=workers, **env) as url:
        run, counts = bench.drive(url, traffic, connections)
    client_holds = counts.get("201", 0)
    return Point(run, check_stock(bench.engine, product_ids, client_holds=client_holds), {"client_holds": client_holds})


def holds_hot(bench: Bench, connections: int) -> Point:
    return holds(bench, range(HOT_PRODUCT, HOT_PRODUCT + 1), connections, "holds-hot")


def holds_hot_two_workers(bench: Bench, connections: int) -> Point:
    """holds-hot saturated (500 connections) on ``flashsale serve --workers 2``: two API processes, one Redis."""
    point = holds(bench, range(HOT_PRODUCT, HOT_PRODUCT + 1), connections, "holds-hot-2-workers", workers=2)
    point.extra["workers"] = 2
    return point


def holds_hot_jwt(bench: Bench, connections: int) -> Point:
    """holds-hot with buyer tokens on (FLASHSALE_BUYER_AUTH=jwt, HS256): a token per connection, each verified
    once and then found in the API's cache of verified tokens."""
    secret = secrets.token_urlsafe(32)
    tokens = [buyer_tokens.issue(secret, f"bench-buyer-{i}", ttl_seconds=3600) for i in range(connections)]
    product = range(HOT_PRODUCT, HOT_PRODUCT + 1)
    bench.reset()
    bench.put(product, LOTS)
    traffic = Traffic("holds_jwt", (str(HOT_PRODUCT), str(HOT_PRODUCT), *tokens))
    label = f"holds-hot-jwt-{connections}"
    with bench.flashsale(label, FLASHSALE_BUYER_AUTH="jwt", FLASHSALE_BUYER_JWT_SECRET=secret) as url:
        run, counts = bench.drive(url, traffic, connections)
    client_holds = counts.get("201", 0)
    check = check_stock(bench.engine, product, client_holds=client_holds)
    refused = {status: n for status, n in counts.items() if status != "201"}
    if refused:
        check.problems.append(f"holds-hot-jwt: answers other than 201: {refused}")
    return Point(run, check, {"client_holds": client_holds, "buyers": connections})


def holds_hot_replicated(bench: Bench, connections: int) -> Point:
    """holds-hot with a replica of the engine's Redis and FLASHSALE_REDIS_ACK_REPLICAS=1: each coalesced batch
    (or pipelined round trip) is answered once WAIT says the replica has it."""
    with servers.private_replica(bench.workdir / f"replica-{connections}", bench.redis_url) as replica_url:
        product = range(HOT_PRODUCT, HOT_PRODUCT + 1)
        waits_before = _waits(bench.redis)
        point = holds(bench, product, connections, "holds-hot-replicated", FLASHSALE_REDIS_ACK_REPLICAS="1")
        waits = _waits(bench.redis) - waits_before
        replica = redis.Redis.from_url(replica_url)
        try:
            on_replica = int(replica.hget(f"fs:{{{HOT_PRODUCT}}}:product", "n_holds") or 0)
        finally:
            replica.close()
    if on_replica < point.extra["client_holds"]:
        point.check.problems.append(f"{point.extra['client_holds']} holds answered, {on_replica} on the replica")
    point.extra.update({"ack_replicas": 1, "replica_holds": on_replica, "waits": waits})
    return point


def _waits(client: redis.Redis) -> int:
    """WAIT commands the server has run: one per coalesced batch or pipelined round trip of writes."""
    return int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


def holds_spread(bench: Bench, connections: int) -> Point:
    return holds(bench, SPREAD_PRODUCTS, connections, "holds-spread")


def holds_paced(bench: Bench, connections: int) -> Point:
    """Hot-product holds from connections that each pause PACE_MS between holds: latency below saturation."""
    bench.reset()
    product = range(HOT_PRODUCT, HOT_PRODUCT + 1)
    bench.put(product, LOTS)
    traffic = Traffic("holds_paced", (str(HOT_PRODUCT), str(HOT_PRODUCT), str(PACE_MS)))
    with bench.flashsale(f"holds-paced-{connections}") as url:
        # Three times as long: every run opens its connections at once, and the first answers of 500 fresh
        # connections, queued behind one another, would otherwise be the slowest 1% of a 10 s run.
        run, counts = bench.drive(url, traffic, connections, stretch=3)
    check = check_stock(bench.engine, product, client_holds=counts.get("201", 0))
    return Point(run, check, {"pause_ms": PACE_MS})


def _put_room(bench: Bench) -> None:
    spec = ProductSpec(QUEUE_PRODUCT, "bench waiting room", 100, QUEUE_STOCK, waiting_room=True)
    put_product(bench.engine, bench.db, spec)


def queue_join(bench: Bench, connections: int) -> Point:
    """POST /api/products/{id}/queue on one product with a waiting room: every join a new ticket."""
    bench.reset()
    _put_room(bench)
    traffic = Traffic("queue_join", (str(QUEUE_PRODUCT),))
    with bench.flashsale(f"queue-join-{connections}") as url:
        run, counts = bench.drive(url, traffic, connections)
    room = bench.engine.queue_info(QUEUE_PRODUCT)
    check = check_stock(bench.engine, [QUEUE_PRODUCT])
    if room.joined_total < counts.get("201", 0):
        check.problems.append(f"{counts.get('201', 0)} joins answered 201, {room.joined_total} tickets in Redis")
    if room.admitted > QUEUE_STOCK:
        check.problems.append(f"{room.admitted} admitted to {QUEUE_STOCK} units")
    return Point(run, check, {"client_joins": counts.get("201", 0), "tickets": room.joined_total})


def join_tickets(bench: Bench, product_id: int, n: int, chunk: int = 2000) -> list[str]:
    """``n`` tickets, joined in pipelined batches of the engine's own ``queue_join`` call."""
    script = bench.engine._scripts["queue_join"]
    tickets: list[str] = []
    for start in range(0, n, chunk):
        batch = [calls.queue_join(product_id) for _ in range(min(chunk, n - start))]
        pipe = bench.redis.pipeline(transaction=False)
        for call in batch:
            script(keys=call.keys, args=call.args, client=pipe)
        tickets += [call.decode(reply).ticket for call, reply in zip(batch, pipe.execute(), strict=True)]
    return tickets


def polled_room(bench: Bench) -> Traffic:
    """A product with a waiting room and 10,000 tickets (1,000 admitted), and the traffic that polls them."""
    _put_room(bench)
    listed = bench.workdir / "tickets.txt"
    listed.write_text("\n".join(join_tickets(bench, QUEUE_PRODUCT, POLLED_TICKETS)) + "\n", encoding="utf-8")
    return Traffic("queue_poll", (str(listed),))


def queue_poll(bench: Bench, connections: int) -> Point:
    """GET /api/queue/{ticket} over 10,000 tickets of one product, 1,000 admitted and 9,000 waiting."""
    bench.reset()
    traffic = polled_room(bench)
    with bench.flashsale(f"queue-poll-{connections}") as url:
        run, counts = bench.drive(url, traffic, connections)
    check = check_stock(bench.engine, [QUEUE_PRODUCT])
    if counts.get("200", 0) < run.requests:
        check.problems.append(f"{run.requests - counts.get('200', 0)} polls not answered 200")
    return Point(run, check, {"tickets": POLLED_TICKETS})


def queue_memory(bench: Bench) -> dict[str, Any]:
    """Redis memory per waiting ticket: the room's keys before and after 100,000 joins."""
    bench.reset()
    _put_room(bench)
    join_tickets(bench, QUEUE_PRODUCT, 1)
    keys = product_keys(QUEUE_PRODUCT)
    room = (keys.queue, keys.queue_wait, keys.queue_adm, keys.queue_tab, keys.queue_subs)

    def room_bytes() -> int:
        return sum(int(bench.redis.memory_usage(key, samples=0) or 0) for key in room)

    before, used_before = room_bytes(), int(bench.redis.info("memory")["used_memory"])
    n = bench.memory_holds
    join_tickets(bench, QUEUE_PRODUCT, n)
    return {
        "tickets": n,
        "bytes_per_ticket": round((room_bytes() - before) / n, 1),
        "used_memory_per_ticket": round((int(bench.redis.info("memory")["used_memory"]) - used_before) / n, 1),
    }


def pg_row_lock_holds(bench: Bench, connections: int) -> Point:
    pg_row_lock.prepare(bench.database_url, range(HOT_PRODUCT, HOT_PRODUCT + 1), LOTS)
    env = {"BENCH_PG_URL": bench.database_url, "BENCH_POOL_SIZE": str(bench.pool_size)}
    log = bench.workdir / f"pg-row-lock-{connections}.log"
    with servers.serving("pg-row-lock", servers.baseline_command(), env, log) as served:
        bench.server_pid = served.pid
        try:
            run, counts = bench.drive(served.url, Traffic("holds", (str(HOT_PRODUCT), str(HOT_PRODUCT))), connections)
        finally:
            bench.server_pid = None
    over, written = pg_row_lock.oversold(bench.database_url)
    check = StockCheck(products=1, oversold_units=over, holds_granted=written)
    if over:
        check.problems.append(f"{over} units oversold")
    if counts.get("201", 0) > written:
        check.problems.append(f"the client saw {counts.get('201', 0)} holds granted, PostgreSQL has {written}")
    return Point(run, check)


def purchases(bench: Bench, connections: int) -> Point:
    """hold -> order -> signed webhook, with one ``flashsale worker`` draining the outbox meanwhile."""
    bench.reset()
    bench.put([PURCHASE_PRODUCT], LOTS)
    traffic = Traffic("purchases", (str(PURCHASE_PRODUCT), bench.webhook_secret))
    with (
        servers.worker(bench.env, bench.workdir / f"worker-{connections}.log"),
        bench.flashsale(f"purchases-{connections}") as url,
    ):
        run, counts = bench.drive(url, traffic, connections)
        backlog_after_run = bench.engine.outbox_backlog(PURCHASE_PRODUCT)
        drained_in = _wait_for_drain(bench, PURCHASE_PRODUCT)
    check = check_stock(bench.engine, [PURCHASE_PRODUCT], client_holds=counts.get("hold", 0))
    stats = bench.engine.stats(PURCHASE_PRODUCT)
    with bench.db.connect() as connection:
        persisted = connection.execute(
            sa.select(sa.func.count()).select_from(orders).where(orders.c.product_id == PURCHASE_PRODUCT)
        ).scalar_one()
    if persisted != stats.get("orders", 0):
        check.problems.append(f"PostgreSQL has {persisted} orders, the engine made {stats.get('orders', 0)}")
    extra = {
        "purchases_per_second": round(run.counts.get("paid", 0) / run.seconds, 1) if run.seconds else 0.0,
        "outbox_backlog_after_run": backlog_after_run,
        "drained_within_s": drained_in,
        "orders_in_postgresql": persisted,
        "engine_orders": stats.get("orders", 0),
        "engine_paid": stats.get("paid", 0),
    }
    return Point(run, check, extra)


def _wait_for_drain(bench: Bench, product_id: int) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < DRAIN_SETTLE_SECONDS:
        if bench.engine.outbox_backlog(product_id) == 0:
            return round(time.monotonic() - started, 2)
        time.sleep(0.2)
    return None


def redis_benchmark(bench: Bench) -> dict[str, Any]:
    bench.reset()
    bench.engine.set_stock(ENGINE_PRODUCT, 10**12)
    timed = redis_figures.redis_benchmark(bench.redis_url, ENGINE_PRODUCT, 50, bench.redis_benchmark_requests)
    check = check_stock(bench.engine, [ENGINE_PRODUCT])
    return {**timed.as_json(), "connections": 50, "check": check.as_json()}


def engine_only(bench: Bench, coalesce: int = MAX_BATCH, pipeline: int = MAX_CALLS) -> dict[str, Any]:
    bench.reset()
    bench.engine.set_stock(ENGINE_PRODUCT, 10**12)
    timed = redis_figures.engine_reserves(
        bench.redis_url, ENGINE_PRODUCT, bench.engine_callers, bench.seconds, coalesce=coalesce, pipeline=pipeline
    )
    check = check_stock(bench.engine, [ENGINE_PRODUCT], client_holds=timed.calls - timed.errors)
    return {**timed.as_json(), "callers": bench.engine_callers, "coalesce": coalesce, "check": check.as_json()}


def engine_alone(bench: Bench) -> dict[str, Any]:
    """The same, each reserve in a script call and a round trip of its own: what coalescing buys.

    ``AsyncEngine(coalesce=1, pipeline=1)``: one EVALSHA per reserve, as a naive client sends them.
    """
    return engine_only(bench, coalesce=1, pipeline=1)


def memory(bench: Bench) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, customers in (("with_customer", True), ("anonymous", False)):
        bench.reset()
        run = redis_figures.memory_per_hold(bench.redis_url, MEMORY_PRODUCT, bench.memory_holds, customers=customers)
        results[label] = run.as_json()
    check = check_stock(bench.engine, [MEMORY_PRODUCT])
    return {**results, "bytes_per_hold": results["with_customer"]["bytes_per_hold"], "check": check.as_json()}


def drain(bench: Bench) -> dict[str, Any]:
    """Events per second one worker drains into the database: bench/drain_throughput.py's rounds."""
    bench.reset()
    config = settings.load(bench.env)
    rates = [
        drain_throughput.one_round(bench.redis, bench.db, config, bench.drain_events, DEFAULT_BATCH_SIZE)
        for _ in range(bench.drain_rounds)
    ]
    rates.sort()
    return {
        "events": bench.drain_events,
        "rounds": [round(rate, 1) for rate in rates],
        "events_per_second": round(rates[len(rates) // 2], 1),
        "batch_size": DEFAULT_BATCH_SIZE,
        "database": bench.db.dialect.name,
        "check": StockCheck().as_json(),  # each round checks that every order reached the database
    }


HTTP_SCENARIOS: dict[str, Callable[[Bench, int], Point]] = {
    "livez": livez,
    "holds-hot": holds_hot,
    "holds-hot-replicated": holds_hot_replicated,
    "holds-hot-jwt": holds_hot_jwt,
    "pg-row-lock": pg_row_lock_holds,
    "holds-spread": holds_spread,
    "holds-paced": holds_paced,
    "holds-hot-2-workers": holds_hot_two_workers,
    "purchases": purchases,
    "queue-join": queue_join,
    "queue-poll": queue_poll,
}
LADDERS = ("livez", "holds-hot", "holds-hot-replicated", "pg-row-lock")
"""Run at every connection count given; the others at their FIXED_CONNECTIONS."""
FIXED_CONNECTIONS = {
    "holds-spread": 50,
    "holds-paced": 500,
    "holds-hot-2-workers": 500,
    "purchases": 50,
    "holds-hot-jwt": 50,
    "queue-join": 50,
    "queue-poll": 50,
}
OTHER_SCENARIOS: dict[str, Callable[[Bench], dict[str, Any]]] = {
    "redis-benchmark": redis_benchmark,
    "engine": engine_only,
    "engine-alone": engine_alone,
    "drain": drain,
    "memory": memory,
    "queue-memory": queue_memory,
}
ALL = (*HTTP_SCENARIOS, *OTHER_SCENARIOS)


def unavailable(name: str) -> str | None:
    """Why scenario ``name`` cannot run on this machine (a tool it needs is missing), or None."""
    if name == "redis-benchmark" and redis_figures.redis_benchmark_path() is None:
        return redis_figures.REDIS_BENCHMARK_MISSING
    return None
