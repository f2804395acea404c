"""Replicated acknowledgement: a write is answered only after ``WAIT`` says enough replicas have it.

Redis replicates asynchronously: a primary that dies may take writes it acknowledged with it, and the
replica Sentinel (or the cluster) promotes never had them (redis/redis#4819). With ``Acknowledgement(n)``
every script that changes state goes to Redis as one round trip on one connection::

    EVALSHA ... [EVALSHA ...]   SET <marker> 1 PX 1000   WAIT n timeout

and its caller hears its reply only if WAIT counted ``n`` replicas; else ``NotReplicated`` (503
``not_replicated``). One WAIT covers the whole trip: a coalesced batch, or every call of a pipelined round
trip. WAIT counts the replicas that acknowledged this connection's last write, so the trip ends with a write
of its own, the marker: a call that wrote nothing (a retry that replays what an earlier, unconfirmed call
wrote) is then covered too, since the marker comes after that write in the primary's replication stream.
The marker carries the hash tag of the trip's first key, so on Redis Cluster it, the scripts and WAIT all go
to the node that owns the slot: the node that took the write.

What the outbox drain reads goes the same way (``XRANGE``, marker, WAIT): an event reaches PostgreSQL only
once a replica has it, so a failover never leaves PostgreSQL ahead of the promoted replica.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from redis import exceptions as redis_errors
from redis.asyncio.cluster import PipelineCommand
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from engine.exceptions import EngineError, EngineUnavailable, NotReplicated, reply_error

MARKER_TTL_MS = 1000
"""The marker only needs to be written: it expires at once, so a sale-wide key per transaction id never piles up."""
MAX_REPLICAS = 100
MAX_TIMEOUT_MS = 60_000

READS = frozenset(
    {
        "hold_status",
        "order_status",
        "snapshot",
        "outbox_mark",
        "order_states",
        "queue_info",
        "queue_poll",
        "queue_poll_batch",
    }
)
"""Scripts whose answer reports state rather than changes it: not waited for. (A read may reap what has
expired; a reap lost with a primary is done again by the next read. A waiting room's poll also admits: an
admission a failover loses is made again by the next poll, to the same ticket, which is still first.)"""

Command = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Answer a write only once ``replicas`` replicas have it, waiting at most ``timeout_ms`` for them."""

    replicas: int
    timeout_ms: int = 200

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= MAX_REPLICAS:
            raise ValueError(f"replicas must be from 1 to {MAX_REPLICAS}")
        if not 1 <= self.timeout_ms <= MAX_TIMEOUT_MS:
            raise ValueError(f"timeout_ms must be from 1 to {MAX_TIMEOUT_MS}")


def acknowledgement(replicas: int, timeout_ms: int) -> Acknowledgement | None:
    """The setting as the engines take it: None (answer at once) for 0 replicas."""
    return Acknowledgement(replicas, timeout_ms) if replicas else None


def waits(script: str) -> bool:
    return script not in READS


def hash_tag(key: str | bytes) -> str | None:
    """The part of ``key`` Redis Cluster hashes: from the first ``{`` to the next ``}``, if not empty."""
    if isinstance(key, bytes):  # a call the pipeliner packed already
        key = key.decode("utf-8", "surrogateescape")
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    if end <= start + 1:
        return None
    return key[start + 1 : end]


def marker_key(key: str | bytes) -> str:
    """A key in ``key``'s hash slot (so on its node) for the marker write: its hash tag, or (a key without one,
    such as ``fs:products``) the whole key as the tag."""
    tag = hash_tag(key)
    if tag is None:
        tag = key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else key
        if "}" in tag:
            raise ValueError(f"no marker key hashes like {tag!r}")
    return f"fs:{{{tag}}}:acked"


def tail(key: str | bytes, ack: Acknowledgement) -> list[Command]:
    """What ends an acknowledged trip: the marker write, then WAIT."""
    return [("SET", marker_key(key), "1", "PX", MARKER_TTL_MS), ("WAIT", ack.replicas, ack.timeout_ms)]


def confirmed(replies: Sequence[Any], ack: Acknowledgement) -> EngineError | None:
    """None if the trip's WAIT counted enough replicas; else the error every write of the trip answers."""
    marker, count = replies[-2], replies[-1]
    if isinstance(marker, redis_errors.ResponseError):  # the primary refused the marker: it refused the writes too
        return reply_error(marker) or NotReplicated(ack.replicas, 0, ack.timeout_ms, reason=str(marker))
    if isinstance(count, Exception) or not isinstance(count, int):  # a replica now, or a broken reply
        return NotReplicated(ack.replicas, 0, ack.timeout_ms, reason=str(count))
    return None if count >= ack.replicas else NotReplicated(ack.replicas, count, ack.timeout_ms)


def outcomes(replies: Sequence[Any], writes: Sequence[bool], ack: Acknowledgement) -> list[Any]:
    """Each call's reply (or the error it answered), with every write failed when the trip was not confirmed."""
    refused = confirmed(replies, ack)
    own = list(replies[: len(writes)])
    if refused is None:
        return own
    return [
        refused if write and not isinstance(reply, redis_errors.NoScriptError) else reply
        for reply, write in zip(own, writes, strict=True)
    ]


def _script_commands(calls: Sequence[tuple[Any, Sequence[Any], Sequence[Any]]]) -> list[Command]:
    return [("EVALSHA", script.sha, len(keys), *keys, *args) for script, keys, args in calls]


def _routing_failure(error: BaseException) -> bool:
    return isinstance(
        error,
        redis_errors.ConnectionError
        | redis_errors.TimeoutError
        | redis_errors.AskError
        | redis_errors.ClusterDownError,
    )


def _raise_lost_connection(replies: Sequence[Any]) -> None:
    """A connection lost while the replies were read: the trip failed as a whole (engine_unavailable), it was
    not merely unconfirmed."""
    for reply in replies:
        if isinstance(reply, redis_errors.ConnectionError | redis_errors.TimeoutError):
            raise reply


def _trip_outcomes(
    key: str, replies: Sequence[Any], writes: Sequence[bool], ack: Acknowledgement, refresh: Callable[[str], None]
) -> list[Any]:
    """A trip's replies read: a routing failure among them refreshes the slot's node (``refresh``), a lost
    connection is raised, and the rest is ``outcomes``."""
    if any(_routing_failure(reply) for reply in replies):
        refresh(key)
    _raise_lost_connection(replies)
    return outcomes(replies, writes, ack)


@dataclass(frozen=True, slots=True)
class _Trip:
    """Send ``commands`` on ``key``'s node as one acknowledged trip; the plan gets ``Acknowledger.trip``'s list."""

    key: str
    commands: list[Command]
    writes: list[bool]


@dataclass(frozen=True, slots=True)
class _Load:
    """Load ``script`` (a redis-py ``Script``) again, after a SCRIPT FLUSH or on a new primary."""

    script: Any


ScriptsPlan: TypeAlias = Generator[_Trip | _Load, Any, list[Any]]
"""The I/O of ``scripts``, written once (as engine/operations.py writes the engine's operations for both engines):
each client sends what the plan yields and gives it the answer."""


def _scripts_plan(calls: Sequence[tuple[Any, Sequence[Any], Sequence[Any], bool]]) -> ScriptsPlan:
    """Script calls (script, keys, args, waits) on one node, in one trip; a flushed script is loaded and its call
    sent again, in a trip of its own. Returns each call's outcome, in order."""
    key = calls[0][1][0]
    plain = [(script, keys, args) for script, keys, args, _ in calls]
    results: list[Any] = yield _Trip(key, _script_commands(plain), [write for *_, write in calls])
    missing = [i for i, result in enumerate(results) if isinstance(result, redis_errors.NoScriptError)]
    if missing:
        for script in {id(calls[i][0]): calls[i][0] for i in missing}.values():
            yield _Load(script)  # a cluster client loads it on every primary
        again = yield _Trip(key, _script_commands([plain[i] for i in missing]), [calls[i][3] for i in missing])
        for i, result in zip(missing, again, strict=True):
            results[i] = result
    return results


class Acknowledger:
    """Acknowledged trips over a sync ``Redis`` or ``RedisCluster`` (to the node of the trip's first key)."""

    def __init__(self, redis: Any, ack: Acknowledgement) -> None:
        self.redis = redis
        self.ack = ack

    def _client(self, key: str) -> Any:
        if isinstance(self.redis, RedisCluster):
            return self.redis.get_redis_connection(self.redis.get_node_from_key(key))  # type: ignore[no-untyped-call]
        return self.redis

    def _refresh(self, key: str) -> None:
        """Let redis-py's cluster client learn where the slot lives now: one ordinary command for it."""
        if isinstance(self.redis, RedisCluster):
            with contextlib.suppress(redis_errors.RedisError, OSError):
                self.redis.exists(marker_key(key))

    def trip(self, key: str, commands: Sequence[Command], writes: Sequence[bool]) -> list[Any]:
        """Run ``commands`` (all on ``key``'s node), the marker and WAIT as one pipeline; see ``outcomes``."""
        client = self._client(key)
        try:
            pipe = client.pipeline(transaction=False)
            for command in [*commands, *tail(key, self.ack)]:
                pipe.execute_command(*command)
            replies = pipe.execute(raise_on_error=False)
        except Exception as error:
            if _routing_failure(error):
                self._refresh(key)
            raise
        return _trip_outcomes(key, replies, writes, self.ack, self._refresh)

    def scripts(self, calls: Sequence[tuple[Any, Sequence[Any], Sequence[Any], bool]]) -> list[Any]:
        """redis-py ``Script`` calls (script, keys, args, waits) on one node (``_scripts_plan``)."""
        plan = _scripts_plan(calls)
        step = next(plan)
        while True:
            if isinstance(step, _Trip):
                answer: Any = self.trip(step.key, step.commands, step.writes)
            else:
                answer = self.redis.script_load(step.script.script)
            try:
                step = plan.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def command(self, key: str, *command: Any) -> Any:
        """One command on ``key``'s node, answered once replicated; raises what it or the trip failed with."""
        (result,) = self.trip(key, [command], [True])
        return _answer(result)

    def script(self, script: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """One script call, answered once replicated; raises what it or the trip failed with."""
        (result,) = self.scripts([(script, keys, args, True)])
        return _answer(result)


class AsyncAcknowledger:
    """Acknowledged trips over an asyncio ``Redis`` or ``RedisCluster`` (to the node of the trip's first key)."""

    def __init__(self, redis: Any, ack: Acknowledgement) -> None:
        self.redis = redis
        self.ack = ack
        self._refreshing: asyncio.Task[None] | None = None

    def _refresh(self, key: str) -> None:
        """Let redis-py's cluster client learn where the slot lives now, in the background: the caller answers
        503 at once, and one refresh at a time runs however many callers failed."""
        if not isinstance(self.redis, AsyncRedisCluster) or (self._refreshing and not self._refreshing.done()):
            return

        async def refresh() -> None:
            with contextlib.suppress(redis_errors.RedisError, OSError):
                await self.redis.exists(marker_key(key))

        self._refreshing = asyncio.get_running_loop().create_task(refresh())

    async def _send(self, key: str, commands: list[Command]) -> list[Any]:
        if isinstance(self.redis, AsyncRedisCluster):
            await self.redis.initialize()  # a no-op once the client has met the cluster
            node = self.redis.get_node_from_key(key)
            if node is None:
                raise EngineUnavailable(f"no Redis Cluster node serves {key!r}")
            # One connection of the slot's primary for the whole trip: WAIT counts that connection's writes.
            # (redis-py's ClusterPipeline would send WAIT, a keyless command, to every node.)
            pending = [PipelineCommand(i, *command) for i, command in enumerate(commands)]
            async with getattr(self.redis, "slots", contextlib.nullcontext()):
                await node.execute_pipeline(pending)
            return [command.result for command in pending]
        pipe = self.redis.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))

    async def trip(self, key: str, commands: Sequence[Command], writes: Sequence[bool]) -> list[Any]:
        try:
            replies = await self._send(key, [*commands, *tail(key, self.ack)])
        except Exception as error:
            if _routing_failure(error):
                self._refresh(key)
            raise
        return _trip_outcomes(key, replies, writes, self.ack, self._refresh)

    async def scripts(self, calls: Sequence[tuple[Any, Sequence[Any], Sequence[Any], bool]]) -> list[Any]:
        plan = _scripts_plan(calls)
        step = next(plan)
        while True:
            if isinstance(step, _Trip):
                answer: Any = await self.trip(step.key, step.commands, step.writes)
            else:
                answer = await self.redis.script_load(step.script.script)
            try:
                step = plan.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def command(self, key: str, *command: Any) -> Any:
        (result,) = await self.trip(key, [command], [True])
        return _answer(result)

    async def script(self, script: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        (result,) = await self.scripts([(script, keys, args, True)])
        return _answer(result)


def _answer(result: Any) -> Any:
    """A call's result, or the error it answered with raised."""
    if isinstance(result, Exception):
        raise result
    return result
