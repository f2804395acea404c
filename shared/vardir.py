"""The ``./var`` directory that ``flashsale up`` keeps: generated secrets, where the stack serves, a run lock.

Settings read the secret files as fallbacks; ``flashsale pay`` and ``flashsale race`` read where ``up`` serves.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO

STATE_FILE = "up.json"
LOCK_FILE = "up.lock"
DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True, slots=True)
class Secret:
    path: Path
    value: str
    created: bool


def ensure_secret(var_dir: Path, filename: str) -> Secret:
    """Read the secret in ``var_dir/filename``, creating it (mode 0600) on first use."""
    var_dir.mkdir(parents=True, exist_ok=True)
    path = var_dir / filename
    try:
        # O_EXCL: two processes starting at once cannot both write a different secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return Secret(path, value, created=False)
        path.unlink()
        return ensure_secret(var_dir, filename)
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(value + "\n")
    return Secret(path, value, created=True)


def write_state(var_dir: Path, **state: object) -> None:
    """Record where the running stack serves, atomically."""
    path = var_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_state(var_dir: Path) -> dict[str, object]:
    try:
        state = json.loads((var_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def served_url(var_dir: Path) -> str:
    """The URL ``flashsale up`` serves from this directory, else the default local one."""
    url = read_state(var_dir).get("url")
    return url if isinstance(url, str) and url else DEFAULT_URL


class AlreadyRunning(RuntimeError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"another flashsale up is already running on {path.parent}")
        self.path = path


def lock(var_dir: Path) -> IO[str]:
    """Hold the run lock of ``var_dir`` for as long as the returned file stays open (the OS drops it on death)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    path = var_dir / LOCK_FILE
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise AlreadyRunning(path) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
