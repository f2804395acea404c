"""DrainTrigger: a burst of writes enqueues about one drain, and the last write is never left undrained."""

from __future__ import annotations

import threading

import pytest
import redis
from rq import Queue

from workers import trigger as trigger_module
from workers.queues import DRAIN_JOB, DRAIN_REQUESTED_KEY, QUEUE_NAME
from workers.trigger import DrainTrigger, clear_request

DEBOUNCE = 0.05


def queued(client: redis.Redis) -> list[str]:
    return [job.func_name for job in Queue(QUEUE_NAME, connection=client).get_jobs()]


def trailing_request_fired(trigger: DrainTrigger) -> None:
    """Wait for a request held back for its window to have fired (its timer thread to end), however busy the
    machine: waiting a few windows would be a guess."""
    with trigger._lock:
        timer = trigger._timer
    if timer is not None:
        timer.join(30)
        assert not timer.is_alive(), "the held-back request never fired"


def test_a_burst_from_many_threads_enqueues_one_drain(real_redis: redis.Redis) -> None:
    trigger = DrainTrigger(real_redis, debounce=DEBOUNCE)

    def burst() -> None:
        for _ in range(250):
            trigger.request()

    threads = [threading.Thread(target=burst) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trailing_request_fired(trigger)  # and it found the first drain still waiting

    assert queued(real_redis) == [DRAIN_JOB]


def test_other_processes_requests_are_absorbed_by_the_waiting_drain(real_redis: redis.Redis) -> None:
    api_one, api_two = DrainTrigger(real_redis), DrainTrigger(real_redis)

    assert api_one.request()
    assert not api_two.request()
    assert queued(real_redis) == [DRAIN_JOB]


def test_a_request_after_the_drain_started_enqueues_another(real_redis: redis.Redis) -> None:
    trigger = DrainTrigger(real_redis, debounce=0)
    trigger.request()
    clear_request(real_redis)  # what the drain job does first

    assert trigger.request()
    assert queued(real_redis) == [DRAIN_JOB, DRAIN_JOB]


def test_a_request_inside_the_window_fires_when_the_window_ends(real_redis: redis.Redis) -> None:
    trigger = DrainTrigger(real_redis, debounce=DEBOUNCE)
    trigger.request()
    clear_request(real_redis)

    assert not trigger.request()  # debounced, not dropped
    assert len(queued(real_redis)) == 1
    trailing_request_fired(trigger)
    assert len(queued(real_redis)) == 2


def test_close_fires_a_request_still_waiting_for_its_window(real_redis: redis.Redis) -> None:
    trigger = DrainTrigger(real_redis, debounce=60)
    trigger.request()
    clear_request(real_redis)
    trigger.request()

    trigger.close()

    assert len(queued(real_redis)) == 2


def test_a_failed_enqueue_releases_the_flag(real_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_: object) -> object:
        raise redis.ConnectionError("queue is down")

    monkeypatch.setattr(trigger_module, "queue", broken)
    with pytest.raises(redis.ConnectionError):
        DrainTrigger(real_redis).request()

    assert not real_redis.exists(DRAIN_REQUESTED_KEY)


def test_the_flag_expires_if_its_job_is_lost(real_redis: redis.Redis) -> None:
    DrainTrigger(real_redis).request()

    assert 0 < real_redis.pttl(DRAIN_REQUESTED_KEY) <= trigger_module.FLAG_TTL_MS
