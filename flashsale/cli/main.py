"""Entry point of the ``flashsale`` command."""

from __future__ import annotations

import click

from flashsale.cli.db import migrate
from flashsale.cli.serve import serve
from flashsale.cli.workers import scheduler, worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """flashsale: a flash-sale stock engine."""


cli.add_command(migrate)
cli.add_command(worker)
cli.add_command(scheduler)
cli.add_command(serve)


def main() -> None:
    cli()
