"""Two test runs (or two xdist workers) on one machine never share a Redis database or a PostgreSQL database."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis

from tests.support.isolation import (
    DATABASE_NUMBERS,
    LEASE_PREFIX,
    leased_database,
    redis_database,
    stale_database_names,
)
from tests.support.servers import reachable, redis_server


def test_two_runs_lease_different_database_numbers_and_give_them_back(redis_url: str) -> None:
    server = redis_url.rsplit("/", 1)[0] + "/0"
    with leased_database(server) as first, leased_database(server) as second:
        assert first != second
        assert redis_url not in (first, second)  # this run's own lease is held too
    control = redis.Redis.from_url(server)
    try:
        leased = {key.decode() for key in control.scan_iter(f"{LEASE_PREFIX}*")}
        assert f"{LEASE_PREFIX}{first.rsplit('/', 1)[1]}" not in leased
        assert f"{LEASE_PREFIX}{second.rsplit('/', 1)[1]}" not in leased
    finally:
        control.close()


def test_a_lease_left_by_a_dead_run_is_taken_over(redis_url: str) -> None:
    server = redis_url.rsplit("/", 1)[0] + "/0"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    dead_pid = dead.stdout.decode().strip()
    control = redis.Redis.from_url(server)
    taken: list[str] = []
    try:
        for number in range(1, 16):
            if control.set(f"{LEASE_PREFIX}{number}", dead_pid, nx=True, ex=60):
                taken.append(str(number))
        assert taken, "every database number is leased by a live run"
        with leased_database(server) as url:
            assert url.rsplit("/", 1)[1] in taken
    finally:
        for number in taken:
            if control.get(f"{LEASE_PREFIX}{number}") == dead_pid.encode():
                control.delete(f"{LEASE_PREFIX}{number}")
        control.close()


def test_a_free_database_number_is_leased_on_the_shared_server() -> None:
    with redis_server() as shared, redis_database(shared.url) as url:
        assert url == f"redis://127.0.0.1:{shared.port}/1"
        with redis.Redis.from_url(shared.url) as control:
            assert control.get(f"{LEASE_PREFIX}1") == str(os.getpid()).encode()


def test_a_process_finding_every_number_leased_gets_a_private_server_and_takes_no_lease() -> None:
    with redis_server() as shared, redis.Redis.from_url(shared.url) as control:
        alive = str(os.getpid())  # leases of a running process: none may be taken over
        for number in DATABASE_NUMBERS:
            control.set(f"{LEASE_PREFIX}{number}", alive)

        with redis_database(shared.url) as url:
            assert not url.startswith(f"redis://127.0.0.1:{shared.port}/")
            with redis.Redis.from_url(url) as private:
                assert private.set("mine", 1)
            assert control.dbsize() == len(DATABASE_NUMBERS)  # nothing written on the shared server

        assert not reachable(url), "the private server outlived the run"
        assert [control.get(f"{LEASE_PREFIX}{n}") for n in DATABASE_NUMBERS] == [alive.encode()] * 15


def test_only_databases_of_dead_runs_are_stale() -> None:
    names = ["flashsale_test_1", f"flashsale_test_{os.getpid()}", "flashsale_test_f_1_2", "postgres", "flashsale_test"]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    names.append(f"flashsale_test_{dead.stdout.decode().strip()}")
    assert stale_database_names(names) == [names[-1]]  # pid 1 and this run are alive; the others are not ours


@pytest.mark.server_wide
def test_a_server_wide_test_flushes_the_scripts_of_its_own_server_not_the_shared_one(
    real_redis: redis.Redis, redis_url: str
) -> None:
    shared = redis.Redis.from_url(redis_url)
    sha = shared.script_load("return 1")

    real_redis.script_flush()

    assert shared.script_exists(sha) == [True], "another process's test would meet NOSCRIPT"
    shared.close()
