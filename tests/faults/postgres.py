"""A private PostgreSQL cluster for the test that stops the database: never the machine's shared server.

``initdb`` and ``pg_ctl`` come from /usr/lib/postgresql/<version>/bin (or PATH). PostgreSQL refuses to run
as root, so as root the cluster is created and run as the ``postgres`` OS user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import free_port


def pg_binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version, reverse=True)
    return found[0] if found else shutil.which(name)


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


@dataclass
class PrivatePostgres:
    directory: Path
    port: int
    user: str | None
    """The OS user the server runs as (``postgres`` when the tests run as root)."""

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        command = [*argv] if self.user is None else ["runuser", "-u", self.user, "--", *argv]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stdout[-500:]} {result.stderr[-500:]}")

    def start(self) -> None:
        # fsync off only risks an operating-system crash; synchronous_commit stays on, since a commit must be
        # in the WAL before the worker deletes its events (a server killed mid-drain must not lose them).
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        self._run(_pg_ctl(), "start", "-w", "-t", "30", "-D", str(self.data), "-o", options, "-l", str(self.log))

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends the sessions and stops cleanly; ``immediate`` is a crash (recovery at the next start)."""
        self._run(_pg_ctl(), "stop", "-w", "-t", "30", "-D", str(self.data), "-m", mode)

    @property
    def log(self) -> Path:
        return self.directory / "server.log"


def _pg_ctl() -> str:
    found = pg_binary("pg_ctl")
    if found is None:
        raise RuntimeError("pg_ctl not found in /usr/lib/postgresql/*/bin or on PATH")
    return found


def available() -> str | None:
    """Why a private cluster cannot be made here, or None when it can."""
    if pg_binary("initdb") is None or pg_binary("pg_ctl") is None:
        return "initdb and pg_ctl are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres OS user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root without runuser"
    return None


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A new cluster (trust authentication, loopback only, a free port) in a temporary directory."""
    user = "postgres" if os.geteuid() == 0 else None
    with tempfile.TemporaryDirectory(prefix="fs-pg-") as tmp:
        server = PrivatePostgres(Path(tmp), free_port(), user)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(tmp, entry.pw_uid, entry.pw_gid)
        initdb = pg_binary("initdb")
        assert initdb is not None
        server._run(initdb, "-D", str(server.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        server.start()
        try:
            yield server
        finally:
            with contextlib.suppress(RuntimeError):  # already stopped
                server.stop("immediate")
