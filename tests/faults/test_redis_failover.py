"""Fault 7: the engine's primary fails under load, and Redis Sentinel promotes its replica.

One primary, one replica, three sentinels, all real ``redis-server`` processes; the engine and the queue
both reach the primary through the sentinels (``FLASHSALE_REDIS_SENTINELS``). The API, the worker and the
scheduler are never restarted: they must find the new primary by themselves.

- Killed (SIGKILL) while its replica lags: the replica's link is held for a second first, as over a slow
  network, so the primary acknowledges writes the replica never gets (redis/redis#4819). With
  ``FLASHSALE_REDIS_ACK_REPLICAS=1`` those writes are answered 503 ``not_replicated``, never acknowledged,
  and nothing acknowledged is lost. With ``=0`` the run counts what was lost; ``flashsale reconcile`` finds
  each write PostgreSQL has and Redis lost, and ``--fix`` brings both back into agreement.
- Stopped (SIGSTOP) for longer than the failover, then continued: it must come back as a replica, and nothing
  it accepted alone may be acknowledged (``min-replicas-to-write`` fences it; WAIT would not confirm).

While the primary is switched, every request is answered within the engine's deadline plus 0.5 s: by the API's
own clock (its request-duration histogram, every request of the load included) and end to end for a probe
client in a process of its own (``tests/faults/probe.py``); what the 200 load clients measured, their shared
event loop's lag on a busy machine included, is reported.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import redis
import sqlalchemy as sa
from rq.job import Job

from engine import Engine
from engine.connection import connect
from engine.exceptions import EngineUnavailable, NotReplicated
from engine.replication import acknowledgement
from flashsale.verification.audit import audit
from shared.settings import load as load_settings
from tests.conftest import unavailable
from tests.faults.harness import SECONDS, Background, Outcome, add_products, verify, workload
from tests.faults.probe import Answer, Probe, answered_slower_than
from tests.faults.processes import Api, Stack, wait_until
from tests.support.replicas import role
from tests.support.sentinel import FAILOVER_TIMEOUT_MS, ReplicatedRedis, replicated_redis
from workers.schedule import PERIODIC_PREFIX

pytestmark = pytest.mark.slow

PRODUCTS = [1, 2, 3, 4]
STOCK = 3000
"""More than the load sells: with acknowledgement off, a lost order's units go back on sale until the fix."""
LAG_SECONDS = 1.0
"""How long the replica's link is held before the primary is killed."""
DEADLINE_SECONDS = load_settings({}).redis_timeout_seconds
ANSWER_BOUND_SECONDS = DEADLINE_SECONDS + 0.5
UNAVAILABLE = "503 engine_unavailable"
NOT_REPLICATED = "503 not_replicated"
FENCED = ("--min-replicas-to-write", "1", "--min-replicas-max-lag", "2")
"""A primary that has heard from no replica for 2 s refuses writes (NOREPLICAS)."""


@pytest.fixture
def start_replicated() -> Iterator[Callable[..., ReplicatedRedis]]:
    contexts = []

    def start(*server_args: str, link: bool = False) -> ReplicatedRedis:
        context = replicated_redis(*server_args, link=link)
        try:
            started = context.__enter__()
        except Exception as error:  # a missing binary: reported, never hidden in CI
            unavailable(f"could not start a primary, a replica and three sentinels: {error}")
            raise
        contexts.append(context)
        return started

    yield start
    for context in reversed(contexts):
        context.__exit__(None, None, None)


def sentinel_stack(make_stack: Callable[..., Stack], setup: ReplicatedRedis, ack_replicas: int) -> Stack:
    """Engine and queue both on the primary the sentinels name."""
    return make_stack(
        setup.url,
        setup.url,
        FLASHSALE_REDIS_SENTINELS=setup.sentinel_list,
        FLASHSALE_QUEUE_REDIS_SENTINELS=setup.sentinel_list,
        FLASHSALE_REDIS_ACK_REPLICAS=str(ack_replicas),
    )


class Watch:
    """What the bound is checked on while the primary is switched: the API's count of answers slower than the
    bound, and a probe reading a product one request at a time."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.slow_before = answered_slower_than(api.url, ANSWER_BOUND_SECONDS)
        self.probe = Probe(api.url, PRODUCTS[0], "read")

    def close(self) -> None:
        self.probe.__exit__()

    def end(self) -> tuple[float, list[Answer]]:
        """(answers the API gave slower than the bound since the start, the probe's answers)."""
        probed = self.probe.answers()
        return answered_slower_than(self.api.url, ANSWER_BOUND_SECONDS) - self.slow_before, probed


def check_answers(
    outcome: Outcome, load: Background, start: float, end: float, watched: tuple[float, list[Answer]] | None = None
) -> None:
    """Every request in flight between ``start`` and ``end`` was answered within the bound: none the API answered
    slower, and none of the probe's; without a ``Watch`` (the cluster test), none of the load's."""
    if watched is None:
        late_load = [taken for began, taken, _ in load.load.tally.answers if began < end and began + taken > start]
        if late_load and max(late_load) > ANSWER_BOUND_SECONDS:
            outcome.problems.append(f"requests waited up to {max(late_load):.2f}s (bound {ANSWER_BOUND_SECONDS}s)")
        return
    slow, probed = watched
    during = [(taken, key) for began, taken, key in load.load.tally.answers if began < end and began + taken > start]
    probe_during = [(taken, key) for began, taken, key in probed if began < end and began + taken > start]
    slowest = max((taken for taken, _ in during), default=None)
    probe_slowest = max((taken for taken, _ in probe_during), default=None)
    outcome.figures.update(
        {
            "answers_during_failover": len(during),
            "answers_503_during_failover": sum(key.startswith("503") for _, key in during),
            "slowest_answer_during_failover_s": round(slowest, 3) if slowest is not None else None,
            "api_answers_slower_than_bound": slow,
            "probe_answers_during_failover": len(probe_during),
            "probe_slowest_answer_s": round(probe_slowest, 3) if probe_slowest is not None else None,
        }
    )
    if slow:
        outcome.problems.append(
            f"the API answered {slow:g} requests in more than {ANSWER_BOUND_SECONDS}s (by its own clock) during the "
            f"failover; the load's clients saw up to {slowest}s"
        )
    if not probe_during:
        outcome.problems.append("the probe sent nothing during the failover")
    late = sorted((round(taken, 2), key) for taken, key in probe_during if taken > ANSWER_BOUND_SECONDS)
    if late:
        outcome.problems.append(f"the probe waited longer than {ANSWER_BOUND_SECONDS}s: {late}")


def check_periodic_jobs_ran_after(outcome: Outcome, setup: ReplicatedRedis, moment: datetime) -> None:
    """The scheduler enqueued, and a worker ran, the periodic reap after ``moment``: both found the new primary."""
    client = connect(setup.url, sentinels=setup.config, socket_timeout=5)

    def ran() -> bool:
        try:
            ended = Job.fetch(PERIODIC_PREFIX + "reap", connection=client).ended_at
        except Exception:
            return False
        return ended is not None and ended.replace(tzinfo=ended.tzinfo or UTC) > moment

    try:
        wait_until(ran, "a periodic reap ran on the new primary", 30)
    except AssertionError as error:
        outcome.problems.append(f"{error}: the scheduler or the worker did not reconnect")
    finally:
        client.close()


def killed_while_lagging(
    start_replicated: Callable[..., ReplicatedRedis],
    make_stack: Callable[..., Stack],
    db_f: sa.Engine,
    ack_replicas: int,
) -> tuple[ReplicatedRedis, Stack, Engine, Background, dict[str, float], tuple[float, list[Answer]]]:
    """Run the load, hold the replica's link, SIGKILL the primary, let the sentinels promote the replica (and,
    acknowledging, start the old primary again as its replica), and run the load on. The load is stopped."""
    setup = start_replicated(link=True)
    stack = sentinel_stack(make_stack, setup, ack_replicas)
    engine = Engine(connect(setup.url, sentinels=setup.config, socket_timeout=5))
    add_products(engine, db_f, PRODUCTS, stock=STOCK)
    api = stack.api()
    stack.scheduler()
    stack.worker()
    assert setup.link is not None
    times: dict[str, float] = {}

    with Background(workload([api.url], PRODUCTS, record_answers=True)) as load:
        load.wait_for("paid", 50)
        old = setup.primary_port()
        assert old is not None
        watch = Watch(api)
        times["lag_at"] = time.monotonic()
        acknowledged_before_lag = load.steps("ordered") + load.steps("paid")
        setup.link.hold()
        time.sleep(LAG_SECONDS)
        times["acknowledged_during_lag"] = load.steps("ordered") + load.steps("paid") - acknowledged_before_lag
        times["killed_wall"] = time.time()
        times["killed_at"] = time.monotonic()
        setup.server(old).process.kill()
        setup.link.cut()
        new = setup.wait_for_new_primary(old)
        times["promoted_at"] = time.monotonic()
        if ack_replicas:
            # The new primary has no replica until the old one is back as one: writes answer not_replicated.
            setup.restart_as_replica(setup.server(old), new)
            times["replica_back_at"] = time.monotonic()
        ordered = load.steps("ordered")
        try:
            load.wait_for("ordered", ordered + 50, timeout=60)
            times["recovered_at"] = time.monotonic()
            watched = watch.end()
        finally:
            watch.close()
        time.sleep(SECONDS / 2)
    return setup, stack, engine, load, times, watched


def failover_figures(outcome: Outcome, load: Background, times: dict[str, float]) -> None:
    statuses = load.load.tally.statuses
    outcome.figures.update(
        {
            "replica_lag_s": LAG_SECONDS,
            "failover_s": round(times["promoted_at"] - times["killed_at"], 1),
            "load_recovered_s": round(times["recovered_at"] - times["killed_at"], 1),
            **(
                {"replica_back_s": round(times["replica_back_at"] - times["killed_at"], 1)}
                if "replica_back_at" in times
                else {}
            ),
            "acknowledged_during_lag": int(times["acknowledged_during_lag"]),
            "answers_not_replicated": statuses.get(NOT_REPLICATED, 0),
            "holds_lost": load.steps("hold_lost"),
        }
    )


def test_primary_killed_with_replicated_acknowledgement_loses_nothing_acknowledged(
    start_replicated: Callable[..., ReplicatedRedis], make_stack: Callable[..., Stack], db_f: sa.Engine
) -> None:
    setup, stack, engine, load, times, watched = killed_while_lagging(
        start_replicated, make_stack, db_f, ack_replicas=1
    )

    outcome = Outcome(
        "redis_failover_acked",
        "Primary killed (SIGKILL) while its replica lagged, FLASHSALE_REDIS_ACK_REPLICAS=1: Sentinel promotes the "
        "replica, the processes follow it, nothing acknowledged is lost",
    )
    verify(stack, engine, db_f, PRODUCTS, [load.load], outcome, faults=1, allowed_5xx=[UNAVAILABLE, NOT_REPLICATED])
    failover_figures(outcome, load, times)
    check_answers(outcome, load, times["lag_at"], times["recovered_at"], watched)
    check_periodic_jobs_ran_after(outcome, setup, datetime.fromtimestamp(times["killed_wall"], UTC))
    if load.steps("hold_lost"):
        outcome.problems.append(f"{load.steps('hold_lost')} acknowledged holds were lost")
    if not load.load.tally.statuses.get(NOT_REPLICATED):
        outcome.problems.append("no write was answered not_replicated while the replica lagged")
    engine.redis.close()
    outcome.check()


def test_primary_killed_without_acknowledgement_loses_writes_that_reconcile_finds_and_fixes(
    start_replicated: Callable[..., ReplicatedRedis], make_stack: Callable[..., Stack], db_f: sa.Engine
) -> None:
    setup, stack, engine, load, times, watched = killed_while_lagging(
        start_replicated, make_stack, db_f, ack_replicas=0
    )
    # The drain empties every outbox before reconcile looks, so that only real losses remain.
    wait_until(lambda: all(engine.outbox_backlog(p) == 0 for p in PRODUCTS), "the outboxes drained", 60, 0.2)
    found = stack.run("reconcile", "--json")
    fixed = stack.run("reconcile", "--fix", "--json")

    outcome = Outcome(
        "redis_failover_unacked",
        "Primary killed (SIGKILL) while its replica lagged, FLASHSALE_REDIS_ACK_REPLICAS=0: the writes lost are "
        "counted, reconcile finds each one PostgreSQL has, and --fix makes Redis and PostgreSQL agree with no oversell",
    )
    lost_in_redis = _lost_writes(found.stdout)
    outcome.figures["lost_writes_found_by_reconcile"] = lost_in_redis
    outcome.figures["reconcile_before_fix_exit"] = found.returncode
    outcome.figures["reconcile_fix_exit"] = fixed.returncode
    outcome.figures["products_rebuilt"] = _rebuilt(fixed.stdout)
    if fixed.returncode != 0:
        outcome.problems.append(f"reconcile --fix exited {fixed.returncode}: {fixed.stdout[-800:]}{fixed.stderr[-99:]}")
    if lost_in_redis.get("total") and found.returncode != 1:
        outcome.problems.append(f"reconcile found lost writes yet exited {found.returncode}")
    verify(
        stack,
        engine,
        db_f,
        PRODUCTS,
        [load.load],
        outcome,
        faults=1,
        allowed_5xx=[UNAVAILABLE],
        losses_expected=True,
    )
    failover_figures(outcome, load, times)
    check_answers(outcome, load, times["lag_at"], times["recovered_at"], watched)
    check_periodic_jobs_ran_after(outcome, setup, datetime.fromtimestamp(times["killed_wall"], UTC))
    lost_everywhere = audit(db_f, load.load.ledger, PRODUCTS).lost
    outcome.figures["acknowledged_lost_everywhere"] = len(lost_everywhere)
    outcome.figures["acknowledged_writes_lost"] = (
        lost_in_redis.get("total", 0) + len(lost_everywhere) + load.steps("hold_lost")
    )
    if not times["acknowledged_during_lag"]:
        outcome.problems.append("nothing was acknowledged while the replica lagged: the run measured no loss")
    engine.redis.close()
    outcome.check()


def write_alone(stale: Engine, old_port: int) -> str:
    """A hold through ``stale`` right after the old primary continues: what came of it."""
    if role(old_port) != "master":
        return "the old primary was demoted before the write"
    try:
        stale.reserve(PRODUCTS[0], 1, customer_id="stale-client")
    except NotReplicated:
        return "not_replicated"
    except EngineUnavailable as error:
        return f"engine_unavailable: {error}"
    return "acknowledged"


def _lost_writes(stdout: str) -> dict[str, int]:
    try:
        return dict(json.loads(stdout)["lost_writes"])
    except (ValueError, KeyError, TypeError):
        return {}


def _rebuilt(stdout: str) -> list[int]:
    try:
        actions = json.loads(stdout)["actions"]
    except (ValueError, KeyError):
        return []
    return sorted(a["product_id"] for a in actions if a.get("reason") == "lost_writes")


def test_primary_stopped_past_the_failover_comes_back_a_replica_and_acknowledged_nothing_alone(
    start_replicated: Callable[..., ReplicatedRedis], make_stack: Callable[..., Stack], db_f: sa.Engine
) -> None:
    setup = start_replicated(*FENCED)
    stack = sentinel_stack(make_stack, setup, 1)
    engine = Engine(connect(setup.url, sentinels=setup.config, socket_timeout=5))
    add_products(engine, db_f, PRODUCTS, stock=STOCK)
    api = stack.api()
    stack.scheduler()
    stack.worker()
    old = setup.primary_port()
    assert old is not None
    stopped = setup.server(old)
    # A client configured as the API is, whose one connection to the primary idles through the stall: continued,
    # the old primary believes itself the primary until the sentinels demote it (up to 10 s), and this client
    # writes to it, as any process with such a connection would.
    stale = Engine(
        connect(setup.url, sentinels=setup.config, socket_timeout=5, max_connections=1),
        ack=acknowledgement(1, load_settings({}).redis_ack_timeout_ms),
    )
    stale.snapshot(PRODUCTS[0])

    with Background(workload([api.url], PRODUCTS, record_answers=True)) as load:
        load.wait_for("paid", 50)
        watch = Watch(api)
        stopped_wall = datetime.now(UTC)
        stopped_at = time.monotonic()
        stopped.process.send_signal(signal.SIGSTOP)
        try:
            new = setup.wait_for_new_primary(old)
            promoted_at = time.monotonic()
            # Stopped for longer than the failover and its timeout: the sentinels have moved on.
            time.sleep(max(1.0, stopped_at + FAILOVER_TIMEOUT_MS / 1000 + 1.0 - time.monotonic()))
        finally:
            stopped.process.send_signal(signal.SIGCONT)
        continued_at = time.monotonic()
        alone = write_alone(stale, old)
        wait_until(lambda: role(old) == "slave", "the old primary is back as a replica", 30, 0.1)
        demoted_at = time.monotonic()
        ordered = load.steps("ordered")
        try:
            load.wait_for("ordered", ordered + 50, timeout=60)
            recovered_at = time.monotonic()
            watched = watch.end()
        finally:
            watch.close()
        time.sleep(SECONDS / 2)

    outcome = Outcome(
        "redis_failover_stalled",
        "Primary stopped (SIGSTOP) past the failover, then continued, with min-replicas-to-write and "
        "FLASHSALE_REDIS_ACK_REPLICAS=1: it comes back a replica, having acknowledged nothing alone; nothing is lost",
    )
    verify(stack, engine, db_f, PRODUCTS, [load.load], outcome, faults=1, allowed_5xx=[UNAVAILABLE, NOT_REPLICATED])
    check_answers(outcome, load, stopped_at, recovered_at, watched)
    check_periodic_jobs_ran_after(outcome, setup, stopped_wall)
    with redis.Redis(port=old, socket_timeout=5) as back:
        replication = back.info("replication")
        refused = back.info("errorstats").get("errorstat_NOREPLICAS", {}).get("count", 0)
    outcome.figures.update(
        {
            "failover_s": round(promoted_at - stopped_at, 1),
            "stopped_s": round(continued_at - stopped_at, 1),
            "back_as_replica_s": round(demoted_at - continued_at, 1),
            "load_recovered_s": round(recovered_at - stopped_at, 1),
            "old_primary_role": replication["role"],
            "old_primary_replicates": f"{replication.get('master_host')}:{replication.get('master_port')}",
            "old_primary_refused_writes": refused,
            "stale_client_write_to_old_primary": alone,
            "answers_not_replicated": load.load.tally.statuses.get(NOT_REPLICATED, 0),
            "holds_lost": load.steps("hold_lost"),
        }
    )
    if alone == "acknowledged":
        outcome.problems.append("the old primary, continued, acknowledged a write alone: a failover loses it")
    if replication["role"] != "slave" or int(replication.get("master_port", 0)) != new:
        outcome.problems.append(f"the old primary did not come back as a replica of {new}: {replication}")
    if load.steps("hold_lost"):
        outcome.problems.append(f"{load.steps('hold_lost')} acknowledged holds were lost")
    engine.redis.close()
    stale.redis.close()
    outcome.check()
