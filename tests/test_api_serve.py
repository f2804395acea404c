"""``flashsale serve``: configuration errors in one line, and a real uvicorn serving the API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa
from click.testing import CliRunner

from engine import Engine
from flashsale.cli.main import cli
from tests.support.api import ADMIN_TOKEN, WEBHOOK_SECRET
from tests.support.servers import free_port


def test_serve_stops_on_a_bad_setting_with_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHSALE_ORDER_TTL_SECONDS", "-5")
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "FLASHSALE_ORDER_TTL_SECONDS" in result.stderr


@pytest.fixture
def server(redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine) -> Iterator[str]:
    """``flashsale serve --workers 2`` on a free port; its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_DATABASE_URL": database_url,
        "FLASHSALE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN,
        "FLASHSALE_LOG_FORMAT": "json",
        "FLASHSALE_VAR_DIR": str(tmp_path),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    flashsale = str(Path(sys.executable).with_name("flashsale"))
    process = subprocess.Popen(
        [flashsale, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/livez", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "flashsale serve exited"
            assert time.monotonic() < deadline, "flashsale serve did not answer in 20 s"
            time.sleep(0.1)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.slow
def test_serve_runs_the_api_in_two_workers_sharing_one_engine(server: str, real_redis: redis.Redis) -> None:
    engine = Engine(real_redis)
    engine.set_stock(1, 30)
    with httpx.Client(base_url=server) as http:
        statuses = [http.post("/api/holds", json={"product_id": 1, "quantity": 1}).status_code for _ in range(40)]
        metrics = http.get("/metrics")
        ready = http.get("/readyz")
    assert statuses.count(201) == 30
    assert statuses.count(409) == 10
    assert engine.snapshot(1).held == 30
    assert ready.status_code == 200
    assert metrics.status_code == 200
    assert 'flashsale_holds_created_total{product_id="1"} 30.0' in metrics.text
    # Request counts from both workers, added up through prometheus-client's multiprocess files.
    assert 'flashsale_http_requests_total{method="POST",route="/api/holds",status="201"} 30.0' in metrics.text


def test_the_served_app_freezes_what_it_loaded_and_collects_young_objects_less_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    from api import app as app_module

    done: list[object] = []
    served = object()
    monkeypatch.setattr(app_module, "create_app", lambda: served)
    monkeypatch.setattr(app_module.gc, "freeze", lambda: done.append("freeze"))
    monkeypatch.setattr(app_module.gc, "set_threshold", lambda *threshold: done.append(threshold))

    assert app_module.create_served_app() is served
    _, older, oldest = gc.get_threshold()
    assert done == ["freeze", (app_module.YOUNG_GC_THRESHOLD, older, oldest)]
    assert app_module.YOUNG_GC_THRESHOLD > 700  # Python's default, which scanned the requests in flight again and again
