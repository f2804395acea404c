"""What every reporting command shares: ``--json``, exit codes, tables and progress bars from rich."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

OK = 0
FAILED = 1
"""The check failed or the request was refused: drift remains, the race lost units, the engine said no."""
ERROR = 2
"""The command could not do its work: bad input, a service down."""

F = TypeVar("F", bound=Callable[..., Any])


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")(function)


def print_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


PIPE_WIDTH = 200
"""Tables written to a pipe or a file are not squeezed into 80 columns."""


def console() -> Console:
    return Console(highlight=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)


def fail(message: str, code: int = ERROR) -> NoReturn:
    """One line on stderr, then exit with ``code``."""
    click.echo(f"flashsale: {message}", err=True)
    raise SystemExit(code)


def progress(*, quiet: bool = False) -> Progress:
    """A transient progress bar on stderr, shown only to a person at a terminal."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=quiet or not sys.stderr.isatty(),
    )
