"""``flashsale worker`` and ``flashsale scheduler``: the processes that keep PostgreSQL up with Redis."""

from __future__ import annotations

from collections.abc import Callable

import click
import redis.exceptions
import sqlalchemy.exc

from engine.exceptions import EngineUnavailable
from flashsale.cli.db import settings_or_exit
from workers.drain import DEFAULT_BATCH_SIZE, DrainFailed

FAILURES = (redis.exceptions.ConnectionError, EngineUnavailable, sqlalchemy.exc.OperationalError, DrainFailed)


def _run(command: str, run: Callable[[], None]) -> None:
    """Run a worker process; an outage is one line on stderr and exit status 1, not a traceback."""
    try:
        run()
    except FAILURES as error:
        click.echo(f"flashsale {command}: {error}", err=True)
        raise SystemExit(1) from None


@click.command()
@click.option("--burst", is_flag=True, help="Run the queued jobs, drain every outbox, then exit.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 5000),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Outbox events applied per transaction.",
)
@click.option(
    "--deliveries",
    is_flag=True,
    help="Work the merchant events' queue instead (sends them; run one or more besides the drain's workers).",
)
def worker(burst: bool, batch_size: int, deliveries: bool) -> None:
    """Run an RQ worker on flashsale's queue (outbox drains and the reaper), or on the merchant events' queue."""
    from workers.run import run_worker

    settings = settings_or_exit()
    _run("worker", lambda: run_worker(settings, burst, batch_size=batch_size, deliveries=deliveries))


@click.command()
def scheduler() -> None:
    """Register the periodic reaper and drain (never twice) and enqueue them on time."""
    from workers.run import run_scheduler

    settings = settings_or_exit()
    _run("scheduler", lambda: run_scheduler(settings))
