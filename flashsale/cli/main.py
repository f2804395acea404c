"""Entry point of the ``flashsale`` command."""

from __future__ import annotations

import click

from flashsale.cli.bench import bench
from flashsale.cli.db import migrate
from flashsale.cli.deliveries import deliveries
from flashsale.cli.pay import pay
from flashsale.cli.product import product, seed
from flashsale.cli.queue import queue
from flashsale.cli.race import race
from flashsale.cli.reconcile import reconcile
from flashsale.cli.refunds import refunds
from flashsale.cli.serve import serve
from flashsale.cli.soak import soak
from flashsale.cli.token import token
from flashsale.cli.up import up
from flashsale.cli.workers import scheduler, worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """flashsale: a flash-sale stock engine."""


cli.add_command(migrate)
cli.add_command(worker)
cli.add_command(scheduler)
cli.add_command(serve)
cli.add_command(up)
cli.add_command(product)
cli.add_command(seed)
cli.add_command(reconcile)
cli.add_command(refunds)
cli.add_command(queue)
cli.add_command(deliveries)
cli.add_command(race)
cli.add_command(pay)
cli.add_command(bench)
cli.add_command(soak)
cli.add_command(token)


def main() -> None:
    cli()
