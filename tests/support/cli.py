"""The operator commands under test: an environment on the test Redis and database, a live API, a runner.

The CLI and the app are imported where used, so that a broken api/ or CLI cannot stop other suites from collecting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
import uvicorn
from click.testing import CliRunner, Result

from engine import Engine
from flashsale.stack.readiness import free_port
from shared.settings import load
from tests.support.api import ADMIN_TOKEN, WEBHOOK_SECRET


@dataclass
class Operator:
    """What the commands see (their environment) and handles on the same Redis and database."""

    engine: Engine
    db: sa.Engine
    redis: redis.Redis
    var_dir: Path
    redis_url: str
    database_url: str

    def run(self, *args: str) -> Result:
        from flashsale.cli.main import cli

        return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def operator(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    redis_url: str,
    database_url: str,
    real_redis: redis.Redis,
    db: sa.Engine,
) -> Operator:
    """FLASHSALE_* set for a command on the flushed test Redis and the emptied test database."""
    var_dir = tmp_path / "var"
    for name, value in {
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_DATABASE_URL": database_url,
        "FLASHSALE_VAR_DIR": str(var_dir),
        "FLASHSALE_LOG_FORMAT": "json",
        "FLASHSALE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN,
    }.items():
        monkeypatch.setenv(name, value)
    return Operator(Engine(real_redis), db, real_redis, var_dir, redis_url, database_url)


@pytest.fixture
def live_api(operator: Operator) -> Iterator[str]:
    """The API served by uvicorn in a thread on a free port, on the operator's Redis and database."""
    from api.app import create_app

    app = create_app(load())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the test API stopped while starting"
        assert time.monotonic() < deadline, "the test API did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(20)
