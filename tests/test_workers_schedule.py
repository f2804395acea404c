"""The scheduler registers its periodic jobs once, across restarts, and never piles them up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from rq import Queue

from shared import settings
from workers.queues import DRAIN_JOB, QUEUE_NAME, REAP_JOB
from workers.schedule import PERIODIC_PREFIX, make_scheduler, register

REAP_ID, DRAIN_ID = PERIODIC_PREFIX + "reap", PERIODIC_PREFIX + "drain"
STARTED_WITHIN_SECONDS = 120


def config(**env: str) -> settings.Settings:
    return settings.load({"FLASHSALE_VAR_DIR": "/nonexistent", **env})


def scheduled(client: redis.Redis) -> dict[str, tuple[str, int]]:
    return {job.id: (job.func_name, job.meta["interval"]) for job in make_scheduler(client).get_jobs()}


def test_registering_on_every_restart_keeps_one_of_each_job(real_redis: redis.Redis) -> None:
    for _ in range(3):
        register(make_scheduler(real_redis), config())  # a new scheduler process each time

    assert scheduled(real_redis) == {REAP_ID: (REAP_JOB, 5), DRAIN_ID: (DRAIN_JOB, 10)}


def test_a_restart_with_new_intervals_applies_them(real_redis: redis.Redis) -> None:
    register(make_scheduler(real_redis), config())
    register(
        make_scheduler(real_redis),
        config(FLASHSALE_REAPER_INTERVAL_SECONDS="2", FLASHSALE_DRAIN_INTERVAL_SECONDS="30"),
    )

    assert scheduled(real_redis) == {REAP_ID: (REAP_JOB, 2), DRAIN_ID: (DRAIN_JOB, 30)}


def test_a_periodic_job_this_version_no_longer_has_is_removed(real_redis: redis.Redis) -> None:
    scheduler = make_scheduler(real_redis)
    now = datetime.now(UTC)
    scheduler.schedule(now, DRAIN_JOB, interval=60, id=PERIODIC_PREFIX + "retired")
    other = scheduler.schedule(now, DRAIN_JOB, interval=60, id="someone-elses-job")

    register(scheduler, config())

    assert set(scheduled(real_redis)) == {REAP_ID, DRAIN_ID, other.id}


def test_a_tick_is_skipped_while_the_previous_run_still_waits(real_redis: redis.Redis) -> None:
    scheduler = make_scheduler(real_redis)
    register(scheduler, config())
    scheduler.enqueue_jobs()
    queue = Queue(QUEUE_NAME, connection=real_redis)
    assert sorted(queue.job_ids) == sorted([REAP_ID, DRAIN_ID])

    # Given no worker ran them, when their next tick is due
    for job_id in (REAP_ID, DRAIN_ID):
        real_redis.zadd(scheduler.scheduled_jobs_key, {job_id: 0})
    scheduler.enqueue_jobs()

    # Then the queue still holds one of each, and both stay scheduled
    assert sorted(queue.job_ids) == sorted([REAP_ID, DRAIN_ID])
    assert scheduler.count() == 2
    assert all(when.timestamp() > time.time() for _, when in scheduler.get_jobs(with_times=True))


@pytest.mark.slow
def test_restarting_the_scheduler_process_never_doubles_its_jobs(redis_url: str, real_redis: redis.Redis) -> None:
    env = {**os.environ, "FLASHSALE_QUEUE_REDIS_URL": redis_url, "FLASHSALE_LOG_FORMAT": "json"}
    command = [str(Path(sys.executable).with_name("flashsale")), "scheduler"]
    queue = Queue(QUEUE_NAME, connection=real_redis)
    for _ in range(2):
        queue.empty()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # This process registered and ran its first tick (so it handles SIGTERM): liveness, not speed, as a
            # busy machine can take many seconds to start it; a SIGTERM before that would end it with -15.
            deadline = time.monotonic() + STARTED_WITHIN_SECONDS
            while len(queue) < 2:
                assert process.poll() is None, f"the scheduler exited {process.returncode} before its first tick"
                assert time.monotonic() < deadline, "the scheduler never ran its first tick"
                time.sleep(0.05)
            os.kill(process.pid, signal.SIGTERM)
            assert process.wait(STARTED_WITHIN_SECONDS) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    assert set(scheduled(real_redis)) == {REAP_ID, DRAIN_ID}
    assert sorted(queue.job_ids) == sorted([REAP_ID, DRAIN_ID])
