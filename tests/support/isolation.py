"""Test isolation between concurrent pytest runs: a leased Redis database number and a database per run.

Two runs on one machine (a developer's and CI's, or two worktrees) must never flush each other's data; nor
may two pytest-xdist workers of one run, each its own process. A process takes the first free Redis database
number from 1 to 15 by writing a lease in database 0 (``SET NX``), and names its PostgreSQL database after its
process id. When all 15 numbers are leased (many runs, each with several workers), it starts a private
``redis-server`` on a free port instead. A lease or database left by a run that died is taken over or dropped
once its process is gone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import redis
from redis.connection import parse_url

from tests.support.servers import redis_server

LEASE_PREFIX = "flashsale:test-lease:"
LEASE_SECONDS = 6 * 3600
DATABASE_NUMBERS = range(1, 16)


class NoFreeDatabase(RuntimeError):
    """Every Redis test database number (1 to 15) is leased by a running test process."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lease(client: redis.Redis, number: int) -> bool:
    key = f"{LEASE_PREFIX}{number}"
    me = str(os.getpid())
    if client.set(key, me, nx=True, ex=LEASE_SECONDS):
        return True
    owner = client.get(key)
    if owner is not None and not _alive(int(owner)):
        # The run that held it died without cleaning up: take it over, unless another run just did.
        with client.pipeline() as pipe:
            try:
                pipe.watch(key)
                if pipe.get(key) != owner:
                    return False
                pipe.multi()
                pipe.set(key, me, ex=LEASE_SECONDS)
                pipe.execute()
                return True
            except redis.WatchError:
                return False
    return False


@contextmanager
def leased_database(server_url: str) -> Iterator[str]:
    """The URL of a Redis database number on ``server_url`` that no other running test session uses."""
    params = parse_url(server_url)
    host, port = params.get("host", "127.0.0.1"), params.get("port", 6379)
    control = redis.Redis(host=host, port=port, db=0, socket_timeout=2)
    try:
        for number in DATABASE_NUMBERS:
            if _lease(control, number):
                break
        else:
            raise NoFreeDatabase("every Redis test database (1 to 15) is leased by a running test process")
        try:
            yield f"redis://{host}:{port}/{number}"
        finally:
            key = f"{LEASE_PREFIX}{number}"
            if control.get(key) == str(os.getpid()).encode():
                control.delete(key)
    finally:
        control.close()


@contextmanager
def redis_database(server_url: str) -> Iterator[str]:
    """A Redis database this process alone uses: a leased number on ``server_url``, or, when none is free, a
    private ``redis-server`` (stopped at the end)."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(leased_database(server_url))
        except NoFreeDatabase:
            url = stack.enter_context(redis_server()).url
        yield url


def session_database_name(prefix: str = "flashsale_test") -> str:
    return f"{prefix}_{os.getpid()}"


def stale_database_names(names: list[str], prefix: str = "flashsale_test") -> list[str]:
    """Databases ``<prefix>_<pid>`` whose run is gone."""
    stale = []
    for name in names:
        rest = name.removeprefix(f"{prefix}_")
        if rest != name and rest.isdigit() and not _alive(int(rest)):
            stale.append(name)
    return stale
