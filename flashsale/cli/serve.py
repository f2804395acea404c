"""``flashsale serve``: the HTTP API under uvicorn."""

from __future__ import annotations

import os
import shutil
import tempfile

import click

from api.serving import UVICORN_OPTIONS
from flashsale.cli.db import settings_or_exit

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="API processes.")
@click.option("--access-log/--no-access-log", default=False, show_default=True, help="Log every request (slower).")
def serve(host: str, port: int, workers: int, access_log: bool) -> None:
    """Run the HTTP API."""
    settings_or_exit()  # a bad variable stops here, in one line, before any worker starts
    metrics_dir = None
    if workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # Request metrics live in each worker; prometheus-client adds them up through files here.
        metrics_dir = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="flashsale-metrics-")
    try:
        _run(host, port, workers, access_log)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run(host: str, port: int, workers: int, access_log: bool) -> None:
    import uvicorn

    uvicorn.run(
        "api.app:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        **UVICORN_OPTIONS,
    )
