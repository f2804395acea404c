"""The periodic jobs and their registration with rq-scheduler.

Each periodic job has a fixed id; registering cancels and recreates it, so restarting the scheduler
(or running two) never doubles a job, and a changed interval takes effect.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from rq.job import Job, JobStatus
from rq_scheduler import Scheduler as RQScheduler  # type: ignore[import-untyped]

from shared.settings import Settings
from workers.queues import DELIVER_JOB, DELIVERY_QUEUE_NAME, DRAIN_JOB, JOB_TIMEOUT_SECONDS, QUEUE_NAME, REAP_JOB

PERIODIC_PREFIX = "flashsale-periodic-"
POLL_SECONDS = 1


@dataclass(frozen=True)
class PeriodicJob:
    id: str
    func: str
    interval: int
    description: str
    queue: str = QUEUE_NAME


def periodic_jobs(settings: Settings) -> tuple[PeriodicJob, ...]:
    deliveries = (
        PeriodicJob(
            PERIODIC_PREFIX + "deliver",
            DELIVER_JOB,
            settings.delivery_interval_seconds,
            "deliver the merchant's events that are due (retries)",
            DELIVERY_QUEUE_NAME,
        ),
    )
    return (*(deliveries if settings.merchant_events else ()), *_core_jobs(settings))


def _core_jobs(settings: Settings) -> tuple[PeriodicJob, ...]:
    return (
        PeriodicJob(
            PERIODIC_PREFIX + "reap",
            REAP_JOB,
            settings.reaper_interval_seconds,
            "expire overdue holds and orders, then drain",
        ),
        PeriodicJob(
            PERIODIC_PREFIX + "drain",
            DRAIN_JOB,
            settings.drain_interval_seconds,
            "drain the outbox (safety net)",
        ),
    )


class Scheduler(RQScheduler):  # type: ignore[misc]
    """rq-scheduler that skips a tick while the job's previous run still waits in the queue.

    Without this, a stopped worker would come back to thousands of copies of the same job.
    """

    def enqueue_job(self, job: Job) -> None:
        interval = job.meta.get("interval")
        waiting = job.get_status(refresh=True) == JobStatus.QUEUED
        if interval and waiting and self.get_queue_for_job(job).get_job_position(job.id) is not None:
            self.connection.zadd(self.scheduled_jobs_key, {job.id: time.time() + int(interval)})
            return
        super().enqueue_job(job)


def make_scheduler(connection: object) -> Scheduler:
    return Scheduler(queue_name=QUEUE_NAME, connection=connection, interval=POLL_SECONDS)


def register(scheduler: RQScheduler, settings: Settings) -> list[str]:
    """(Re)create flashsale's periodic jobs, first run now; returns their ids."""
    wanted = {job.id: job for job in periodic_jobs(settings)}
    for job in list(scheduler.get_jobs()):
        if job.id.startswith(PERIODIC_PREFIX) and job.id not in wanted:
            scheduler.cancel(job)
            job.delete()
    for spec in wanted.values():
        scheduler.cancel(spec.id)
        scheduler.schedule(
            datetime.now(UTC),
            spec.func,
            interval=spec.interval,
            id=spec.id,
            queue_name=spec.queue,
            timeout=JOB_TIMEOUT_SECONDS,
            description=spec.description,
        )
    return list(wanted)
