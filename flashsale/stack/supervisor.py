"""Run child processes side by side: output prefixed and coloured per child, restarts with backoff, clean stop.

Each child gets its own session, so a terminal's Ctrl-C reaches only the supervisor, which then stops the
children in order: SIGTERM to each process group, then SIGKILL to whatever of the tree is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0
"""A child that ran this long before dying is restarted after the shortest delay again."""
STOP_TIMEOUT = 15.0
LINE_LIMIT = 1 << 20
COLORS = ("cyan", "magenta", "yellow", "blue", "green", "red")

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a forked child: get SIGTERM if the parent dies, even by kill -9 (Linux; a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``, from /proc (empty where there is no /proc)."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may contain spaces; the fields after it do not.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


@dataclass(frozen=True, slots=True)
class ChildSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None


Echo = Callable[[str, str, bool], None]
"""Receives (source, line, alert): a child's name or "up", one line of text, and whether it is bad news."""


class Printer:
    """Prints each line behind a coloured, aligned name; colours vanish when stdout is not a terminal."""

    def __init__(self, names: Sequence[str]) -> None:
        width = max([len(n) for n in names] + [2])
        self._prefix = {
            n: click.style(f"{n:<{width}} |", fg=COLORS[i % len(COLORS)], bold=True) for i, n in enumerate(names)
        }
        self._prefix["up"] = click.style(f"{'up':<{width}} |", fg="green", bold=True)

    def __call__(self, source: str, line: str, alert: bool = False) -> None:
        text = click.style(line, fg="red", bold=True) if alert else line
        click.echo(f"{self._prefix.get(source, source)} {text}".rstrip())


class Supervisor:
    def __init__(
        self,
        specs: Sequence[ChildSpec],
        echo: Echo | None = None,
        *,
        backoff_start: float = BACKOFF_START,
        backoff_max: float = BACKOFF_MAX,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self.specs = specs
        self.echo = echo if echo is not None else Printer([s.name for s in specs])
        self.backoff_start = backoff_start
        self.backoff_max = backoff_max
        self.stop_timeout = stop_timeout
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.restarts: dict[str, int] = {}
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def say(self, message: str, alert: bool = False) -> None:
        self.echo("up", message, alert)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._keep(spec), name=spec.name) for spec in self.specs]

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items() if p.returncode is None}

    async def _keep(self, spec: ChildSpec) -> None:
        delay = self.backoff_start
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                process = await asyncio.create_subprocess_exec(
                    *spec.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    env=dict(spec.env) if spec.env is not None else None,
                    cwd=spec.cwd,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                    limit=LINE_LIMIT,
                )
            except OSError as error:
                code: int | None = None
                self.say(f"could not start {spec.name}: {error}")
            else:
                self.processes[spec.name] = process
                self.say(f"started {spec.name} (pid {process.pid})")
                assert process.stdout is not None
                pump = asyncio.create_task(self._pump(spec.name, process.stdout))
                code = await _exited(process)
                # A grandchild that outlived its parent may hold the pipe open: stop reading after a moment.
                await asyncio.wait({pump}, timeout=1.0)
                pump.cancel()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= STABLE_AFTER:
                delay = self.backoff_start
            self.restarts[spec.name] = self.restarts.get(spec.name, 0) + 1
            self.say(f"{spec.name} {_describe_exit(code)}; restarting in {delay:g}s", alert=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, self.backoff_max)

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than LINE_LIMIT: print it in pieces
                raw = await stream.read(LINE_LIMIT)
            if not raw:
                return
            self.echo(name, raw.decode("utf-8", "replace").rstrip(), False)

    async def stop(self) -> None:
        """Stop every child and its whole process tree; returns when none is left."""
        self._stopping.set()
        running = [p for p in self.processes.values() if p.returncode is None]
        tree = {pid for p in running for pid in [p.pid, *descendants(p.pid)]}
        for process in running:
            self.say(f"stopping {self._name_of(process)} (pid {process.pid})")
            _signal_group(process.pid, signal.SIGTERM)
        if running:
            await asyncio.wait([asyncio.create_task(_exited(p)) for p in running], timeout=self.stop_timeout)
        late = [p for p in running if p.returncode is None]
        if late:
            self.say(f"{len(late)} child(ren) ignored SIGTERM for {self.stop_timeout:g}s: killing", alert=True)
            for process in late:
                _signal_group(process.pid, signal.SIGKILL)
            for process in late:
                await _exited(process)
        # Grandchildren that left their parent's process group (RQ's work horse calls setpgrp).
        for pid in tree:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def kill(self) -> None:
        """Force: SIGKILL every child's process group at once."""
        self._stopping.set()
        for process in self.processes.values():
            if process.returncode is None:
                _signal_group(process.pid, signal.SIGKILL)

    def _name_of(self, process: asyncio.subprocess.Process) -> str:
        return next(name for name, p in self.processes.items() if p is process)


async def _exited(process: asyncio.subprocess.Process) -> int:
    """The exit code, as soon as the process is gone (``wait()`` also waits for its pipes to close)."""
    # No event fires between the exit and the pipes closing, so poll the code the child watcher sets.
    while process.returncode is None:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return process.returncode


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "could not start"
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"
