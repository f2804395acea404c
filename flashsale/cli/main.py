"""Entry point of the ``flashsale`` command."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """flashsale: a flash-sale stock engine."""


def main() -> None:
    cli()
