"""``flashsale bench``: the benchmark harness in bench/, when it is there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from flashsale.cli.output import ERROR

PROJECT = Path(__file__).resolve().parents[2]
HARNESS = PROJECT / "bench" / "__main__.py"


# No help option of its own: `flashsale bench --help` is the harness's help, listing its options.
@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args: tuple[str, ...]) -> None:
    """Benchmark the API and engine against their ceilings and a PostgreSQL row-lock design.

    Runs the harness in bench/ (`python -m bench`) with the options given; see `flashsale bench --help`.
    """
    if not HARNESS.is_file():
        click.echo(
            f"flashsale bench: the benchmark harness is not installed ({HARNESS} does not exist); "
            "no benchmark was run.",
            err=True,
        )
        raise SystemExit(ERROR)
    raise SystemExit(subprocess.call([sys.executable, "-m", "bench", *args], cwd=PROJECT))
