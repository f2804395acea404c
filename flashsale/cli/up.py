"""``flashsale up``: the whole stack in one command (see flashsale.stack)."""

from __future__ import annotations

import click

from flashsale.cli.output import ERROR, fail
from flashsale.stack import up as stack
from shared import vardir


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API listens on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="API port; a free one is chosen (and said) if it is taken; 0 picks one.",
)
@click.option("--api-workers", type=click.IntRange(1, 64), default=1, show_default=True, help="API processes.")
@click.option("--demo/--no-demo", default=True, show_default=True, help="Load the demo catalog into an empty one.")
def up(host: str, port: int, api_workers: int, demo: bool) -> None:
    """Run the whole stack: API, one worker and the scheduler, until Ctrl-C.

    Without FLASHSALE_REDIS_URL it runs a private Redis (AOF in ./var/redis); without FLASHSALE_DATABASE_URL
    it uses SQLite at ./var/flashsale.db. Secrets are created in ./var on first run. A child that dies is
    restarted with backoff. Ctrl-C or SIGTERM stops everything and exits 0.
    """
    try:
        stack.run(host, port, api_workers, demo)
    except (stack.UpError, vardir.AlreadyRunning) as error:
        fail(f"up: {error}", ERROR)
