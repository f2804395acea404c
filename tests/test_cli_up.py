"""`flashsale up` as a person runs it: a subprocess in an empty directory, with no FLASHSALE_* variables."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa

from engine import Engine
from flashsale.stack.readiness import free_port
from flashsale.stack.supervisor import alive, descendants
from persistence.catalog import get_product

START_TIMEOUT = 120.0


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_") and k != "PROMETHEUS_MULTIPROC_DIR"}


class Up:
    """One `flashsale up` process; its output is collected line by line."""

    def __init__(self, directory: Path, port: int, **env: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flashsale", "up", "--port", str(port)],
            cwd=directory,
            env={**clean_env(), **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = START_TIMEOUT, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if text in line:
                    return line
            assert self.process.poll() is None, f"up exited ({self.process.returncode}):\n{self.output()}"
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} from up in {timeout:.0f}s:\n{self.output()}")

    def url(self) -> str:
        return self.wait_for("flashsale is up: ").split("flashsale is up: ", 1)[1].strip()

    def stop(self, sig: signal.Signals = signal.SIGINT) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(60)
        self._reader.join(10)
        return code

    def close(self) -> None:
        """Kill what is left (a failed test) and release the pipe."""
        if self.process.poll() is None:
            for pid in descendants(self.process.pid):
                os.kill(pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait()
        self._reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def ups() -> Iterator[list[Up]]:
    started: list[Up] = []
    yield started
    for up in started:
        up.close()


def flashsale(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flashsale", *args],
        cwd=directory,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def order_row(directory: Path, order_id: str) -> tuple[str, str | None] | None:
    with sqlite3.connect(directory / "var" / "flashsale.db") as connection:
        row = connection.execute("SELECT status, transaction_id FROM orders WHERE id = ?", (order_id,)).fetchone()
    return None if row is None else (row[0], row[1])


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


@pytest.mark.slow
def test_up_serves_a_purchase_persists_it_stops_cleanly_and_keeps_it(tmp_path: Path, ups: list[Up]) -> None:
    up = Up(tmp_path, free_port())
    ups.append(up)
    url = up.url()
    var = tmp_path / "var"
    for secret in ("webhook_secret", "admin_token", "buyer_jwt_secret"):
        assert stat.S_IMODE((var / secret).stat().st_mode) == 0o600
        assert f"{var / secret} (created, mode 0600)" in up.output()
    assert "first run: loaded the demo catalog" in up.output()
    assert "pay $ORDER --status success" in up.output()
    assert "token alice" in up.output()

    # Buyer tokens are on: a hold without one is refused. One purchase: a token from `flashsale token`, a hold, an
    # order, then a signed webhook from `flashsale pay` with no flags.
    token = flashsale(tmp_path, "token", "alice")
    assert token.returncode == 0, token.stderr
    alice = {"Authorization": f"Bearer {token.stdout.strip()}"}
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.get("/api/products/1").json()["available"] == 100
        assert http.post("/api/holds", json={"product_id": 1, "quantity": 1}).status_code == 401
        hold = http.post("/api/holds", json={"product_id": 1, "quantity": 1}, headers=alice)
        assert hold.status_code == 201, hold.text
        assert hold.json()["customer_id"] == "alice"
        order = http.post("/api/orders", json={"hold_id": hold.json()["hold_id"]}, headers=alice)
        assert order.status_code == 201, order.text
    order_id = order.json()["order_id"]
    paid = flashsale(tmp_path, "pay", order_id, "--status", "success", "--transaction-id", "txn-alice")
    assert paid.returncode == 0, paid.stderr
    assert f"order {order_id} is now paid" in paid.stdout

    # Up's own worker writes it to SQLite.
    deadline = time.monotonic() + 30
    while order_row(tmp_path, order_id) != ("paid", "txn-alice"):
        assert time.monotonic() < deadline, f"not persisted: {order_row(tmp_path, order_id)}\n{up.output()}"
        time.sleep(0.1)

    # A child that dies is restarted, and up says so.
    worker = int(up.wait_for("started worker (pid").split("(pid ")[1].rstrip(")"))
    seen = len(up.lines)
    os.kill(worker, signal.SIGKILL)
    up.wait_for("worker was killed by SIGKILL; restarting in 1s", timeout=10, after=seen)
    up.wait_for("started worker (pid", timeout=15, after=seen)

    # Ctrl-C stops every process up started, and up exits 0.
    tree = descendants(up.process.pid)
    assert len(tree) >= 4  # redis-server, api, worker, scheduler
    assert up.stop(signal.SIGINT) == 0, up.output()
    assert wait_gone(tree) == []
    assert "stopped" in up.lines[-1]
    assert not (var / "redis" / "redis.sock").exists()

    # Again on the same directory: the sale is still there, in Redis (AOF) and in SQLite.
    again = Up(tmp_path, free_port())
    ups.append(again)
    url = again.url()
    assert "first run" not in again.output()
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.get(f"/api/orders/{order_id}", headers=alice).json()["status"] == "paid"
        assert http.get("/api/products/1").json()["available"] == 99
    checked = flashsale(tmp_path, "reconcile", "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert {p["verdict"] for p in json.loads(checked.stdout)["products"]} == {"ok"}
    tree = descendants(again.process.pid)
    assert again.stop(signal.SIGTERM) == 0, again.output()
    assert wait_gone(tree) == []


@pytest.mark.slow
def test_up_refuses_a_second_up_races_correctly_and_leaves_nothing_when_killed(tmp_path: Path, ups: list[Up]) -> None:
    up = Up(tmp_path, free_port())
    ups.append(up)
    up.url()

    second = flashsale(tmp_path, "up")
    raced = flashsale(tmp_path, "race", "--stock", "10", "--concurrency", "30")

    assert second.returncode == 2
    assert "another flashsale up is already running" in second.stderr
    assert raced.returncode == 0, raced.stdout + raced.stderr
    assert "verdict: PASS" in raced.stdout

    # Even kill -9, which up cannot catch, takes its children with it (they get SIGTERM from the kernel).
    tree = descendants(up.process.pid)
    up.process.kill()
    up.process.wait()
    assert wait_gone(tree) == []


@pytest.mark.slow
def test_up_with_the_variables_set_uses_those_services_and_starts_no_redis(
    tmp_path: Path, ups: list[Up], redis_url: str, database_url: str, real_redis: redis.Redis, db: sa.Engine
) -> None:
    up = Up(
        tmp_path,
        free_port(),
        FLASHSALE_REDIS_URL=redis_url,
        FLASHSALE_DATABASE_URL=database_url,
        FLASHSALE_BUYER_AUTH="off",  # the operator's word wins over up's default: buyers name themselves
    )
    ups.append(up)
    url = up.url()

    assert "Redis: FLASHSALE_REDIS_URL (external; no private Redis)" in up.output()
    assert "buyer tokens: off" in up.output()
    assert not (tmp_path / "var" / "redis").exists()
    tree = descendants(up.process.pid)
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in tree]
    assert not [c for c in commands if b"redis-server" in c]
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.post("/api/holds", json={"product_id": 3, "quantity": 1}).status_code == 201
    assert Engine(real_redis).snapshot(3).held == 1
    assert get_product(db, 3) is not None
    assert up.stop(signal.SIGTERM) == 0
    assert wait_gone(tree) == []
