"""``flashsale up``: the whole stack in one command, on embedded defaults unless the environment names services.

Without FLASHSALE_REDIS_URL it runs a private Redis (AOF in var/redis); without FLASHSALE_DATABASE_URL it uses
SQLite at var/flashsale.db. It creates the secrets on first use, migrates, loads the demo catalog into an empty
catalog, then supervises the API, one worker and the scheduler until SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import redis.exceptions
import sqlalchemy.exc

from engine.exceptions import EngineUnavailable
from engine.from_settings import sync_engine
from flashsale import demo_sale
from flashsale.stack import private_redis
from flashsale.stack.readiness import free_port, http_ready, port_free
from flashsale.stack.supervisor import ChildSpec, Printer, Supervisor
from persistence.catalog import list_products
from persistence.db import make_engine, normalize_url
from persistence.migrate import current, upgrade
from shared import buyer_tokens, logs, vardir
from shared.settings import (
    ADMIN_TOKEN_FILE,
    WEBHOOK_SECRET_FILE,
    ConfigError,
    Settings,
    default_database_url,
    load,
)

CHILDREN = ("api", "worker", "scheduler", "deliveries")
READY_TIMEOUT = 90.0
READY_POLL = 0.2


class UpError(Exception):
    """``up`` cannot start; the message says why in one line."""


@dataclass
class Stack:
    """What ``up`` prepared: the environment its children share, and the private Redis if it runs one."""

    var_dir: Path
    env: dict[str, str]
    settings: Settings
    url: str
    host: str
    port: int
    redis: private_redis.PrivateRedis | None = None
    notes: list[str] = field(default_factory=list)

    def stop_redis(self) -> None:
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


def flashsale_command() -> str:
    """How the person at the terminal runs ``flashsale``: on PATH, else the venv's script, relative."""
    script = Path(sys.executable).parent / "flashsale"
    found = shutil.which("flashsale")
    if found and script.exists() and Path(found).resolve() == script.resolve():
        return "flashsale"
    if script.exists():
        relative = os.path.relpath(script)
        if relative.startswith(".."):
            return str(script)
        return relative if relative.startswith(".") else "./" + relative
    return f"{sys.executable} -m flashsale"


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def prepare(environ: Mapping[str, str], host: str, port: int, say: Printer) -> Stack:
    """Secrets, Redis, the database schema and the port; raises UpError (after cleaning up) if any fails."""
    var_dir = Path(environ.get("FLASHSALE_VAR_DIR") or "var").resolve()
    env = dict(environ)
    env["FLASHSALE_VAR_DIR"] = str(var_dir)
    env.setdefault("FLASHSALE_LOG_FORMAT", "console")
    # The storefront's "Pay" needs a payment provider: the API's simulated one, unless told otherwise.
    env.setdefault("FLASHSALE_DEMO_PROVIDER", "1")
    # Buyers carry signed tokens, as in a real shop: the storefront logs in through the demo login.
    env.setdefault("FLASHSALE_BUYER_AUTH", "jwt")
    env["PYTHONUNBUFFERED"] = "1"

    for variable, filename, what in (
        ("FLASHSALE_WEBHOOK_SECRET", WEBHOOK_SECRET_FILE, "webhook secret"),
        ("FLASHSALE_ADMIN_TOKEN", ADMIN_TOKEN_FILE, "admin token"),
    ):
        if environ.get(variable):
            say("up", f"{what}: from {variable}")
            continue
        secret = vardir.ensure_secret(var_dir, filename)
        say("up", f"{what}: {secret.path}" + (" (created, mode 0600)" if secret.created else ""))
    buyer_keys = ("FLASHSALE_BUYER_JWT_SECRET", "FLASHSALE_BUYER_JWT_PUBLIC_KEY", "FLASHSALE_BUYER_JWKS_URL")
    named = [variable for variable in buyer_keys if environ.get(variable)]
    if named:
        say("up", f"buyer tokens: {env['FLASHSALE_BUYER_AUTH']}, verified with {named[0]}")
    else:
        secret = vardir.ensure_secret(var_dir, buyer_tokens.SECRET_FILE)
        created = " (created, mode 0600)" if secret.created else ""
        say("up", f"buyer tokens: {env['FLASHSALE_BUYER_AUTH']}, HS256 secret {secret.path}{created}")

    server = None
    if not environ.get("FLASHSALE_REDIS_URL"):
        try:
            server = private_redis.start(var_dir / "redis")
        except (private_redis.RedisStartError, OSError) as error:
            raise UpError(f"cannot start the private Redis: {error}") from error
        env["FLASHSALE_REDIS_URL"] = server.url
        say("up", f"Redis: private {os.path.basename(server.executable)} (pid {server.pid}) at {server.url}")
        say("up", f"       AOF (appendfsync everysec) in {server.directory}")
    else:
        say("up", "Redis: FLASHSALE_REDIS_URL (external; no private Redis)")
    if not environ.get("FLASHSALE_DATABASE_URL"):
        env["FLASHSALE_DATABASE_URL"] = default_database_url(var_dir)

    try:
        settings = load(env)
        # up reports in its own words; the engine and catalog calls it makes log only when something is wrong.
        logs.configure(settings.log_format, level=logging.WARNING)
        stack = Stack(var_dir, env, settings, "", host, port, server)
        _migrate(stack, say)
        _pick_port(stack, say)
    except BaseException:
        if server is not None:
            server.stop()
        raise
    return stack


def _migrate(stack: Stack, say: Printer) -> None:
    shown = normalize_url(stack.settings.database_url).render_as_string(hide_password=True)
    try:
        upgrade(stack.settings.database_url)
        revision = current(stack.settings.database_url)
    except sqlalchemy.exc.OperationalError as error:
        raise UpError(f"cannot reach the database {shown}: {' '.join(str(error.orig or error).split())}") from error
    say("up", f"database: {shown} (schema {revision})")


def _pick_port(stack: Stack, say: Printer) -> None:
    if stack.port == 0:
        stack.port = free_port(stack.host)
    elif not port_free(stack.host, stack.port):
        wanted, stack.port = stack.port, free_port(stack.host)
        say("up", f"port {wanted} is taken on {stack.host}: serving on {stack.port} instead", True)
    stack.url = f"http://{_url_host(stack.host)}:{stack.port}"


def load_demo_if_empty(stack: Stack, say: Printer) -> bool:
    """Load the demo catalog into an empty catalog; True if it did. Warns when Redis lost a known catalog."""

    engine = sync_engine(stack.settings, max_connections=2)
    db = make_engine(stack.settings.database_url)
    try:
        products = list_products(db)
        if not products:
            saved, refused = demo_sale.seed(engine, db)
            names = ", ".join(f"{p['id']} {p['name']!r} ({p['available']} units)" for p in saved)
            say("up", f"first run: loaded the demo catalog: {names}")
            for line in refused:
                say("up", f"demo product refused: {line}", True)
            return True
        missing = set(p.id for p in products) - set(engine.product_ids())
        if missing:
            say(
                "up",
                f"Redis does not know {len(missing)} catalog product(s) (Redis lost its data?): "
                "run `flashsale reconcile --rebuild-all` to restore them from the database",
                True,
            )
        return False
    except (EngineUnavailable, redis.exceptions.ConnectionError) as error:
        raise UpError(f"Redis does not answer: {error}") from error
    finally:
        engine.redis.close()
        db.dispose()


def children(stack: Stack, api_workers: int) -> list[ChildSpec]:
    python = [sys.executable, "-m", "flashsale"]
    serve = [*python, "serve", "--host", stack.host, "--port", str(stack.port), "--workers", str(api_workers)]
    specs = [
        ChildSpec("api", serve, stack.env),
        ChildSpec("worker", [*python, "worker"], stack.env),
        ChildSpec("scheduler", [*python, "scheduler"], stack.env),
    ]
    if stack.settings.merchant_events:  # the merchant's events go out from a process of their own
        specs.append(ChildSpec("deliveries", [*python, "worker", "--deliveries"], stack.env))
    return specs


def banner(stack: Stack) -> list[str]:
    settings = stack.settings
    lines = [
        f"flashsale is up: {stack.url}",
        f"  storefront        {stack.url}/" + ("  (Pay: simulated provider)" if settings.demo_provider else ""),
        f"  dashboard         {stack.url}/dashboard  (paste the admin token)",
        f"  products          {stack.url}/api/products",
        f"  API description   {stack.url}/openapi.json",
        f"  health, metrics   {stack.url}/readyz  {stack.url}/metrics",
    ]
    if settings.admin_token is not None:
        token = (
            "FLASHSALE_ADMIN_TOKEN"
            if os.environ.get("FLASHSALE_ADMIN_TOKEN")
            else os.path.relpath(stack.var_dir / ADMIN_TOKEN_FILE)
        )
        lines.append(f"  admin token       {token}")
    lines += ["", "One purchase, step by step (paste into another terminal, in this directory):"]
    tokens = settings.buyer_auth == "jwt"
    for title, command in demo_sale.walkthrough(stack.url, flashsale_command(), buyer_tokens=tokens):
        lines += [f"  # {title}", f"  {command}"]
    lines += ["", "Ctrl-C stops everything."]
    return lines


async def supervise(stack: Stack, api_workers: int, say: Printer) -> None:
    """Run the children until SIGINT or SIGTERM; a second signal kills them at once."""
    supervisor = Supervisor(children(stack, api_workers), say)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(sig: signal.Signals) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            say("up", f"{sig.name}: stopping (again to force)")
            stop.set()
        else:
            supervisor.kill()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    supervisor.start()

    async def announce() -> None:
        if await http_ready(stack.url + "/readyz", within=READY_TIMEOUT, poll=READY_POLL):
            for line in banner(stack):
                say("up", line)
        else:
            say("up", f"the API is not ready after {READY_TIMEOUT:.0f}s; see its output above", True)

    announcing = asyncio.create_task(announce())
    await stop.wait()
    announcing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await announcing
    await supervisor.stop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Until the supervisor takes over, SIGTERM interrupts like Ctrl-C, so cleanup still runs."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(host: str, port: int, api_workers: int, load_demo: bool) -> None:
    """``flashsale up``; returns when stopped by a signal. Raises UpError or vardir.AlreadyRunning."""
    say = Printer(CHILDREN)
    var_dir = Path(os.environ.get("FLASHSALE_VAR_DIR") or "var").resolve()
    lock = vardir.lock(var_dir)
    stack = None
    try:
        with interrupt_on_sigterm():
            try:
                stack = prepare(os.environ, host, port, say)
                if load_demo:
                    load_demo_if_empty(stack, say)
            except ConfigError as error:
                raise UpError(str(error)) from error
            vardir.write_state(
                var_dir,
                url=stack.url,
                pid=os.getpid(),
                redis_url=stack.env["FLASHSALE_REDIS_URL"],
                private_redis=stack.redis is not None,
            )
        asyncio.run(supervise(stack, api_workers, say))
    except KeyboardInterrupt:
        say("up", "interrupted")
    finally:
        if stack is not None and stack.redis is not None:
            say("up", "stopping the private Redis (SHUTDOWN: AOF flushed)")
            stack.stop_redis()
        lock.close()
    say("up", "stopped")
