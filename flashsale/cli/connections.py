"""Connections for operator commands: the engine's Redis and the database, and one line when either is down.

Run in the directory of ``flashsale up``, they use the Redis that ``up`` uses (its private one included)
unless FLASHSALE_REDIS_URL says otherwise; the database default (var/flashsale.db) is already the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import redis.exceptions
import sqlalchemy as sa
import sqlalchemy.exc

from engine import Engine
from engine.exceptions import EngineUnavailable, NotReplicated
from engine.from_settings import sync_engine
from flashsale.cli.output import ERROR, fail
from persistence.db import make_engine, normalize_url
from shared import logs, vardir
from shared.settings import ConfigError, Settings, load

OPERATOR_POOL = 4


def _up_redis_url(var_dir: Path) -> str | None:
    url = vardir.read_state(var_dir).get("redis_url")
    return url if isinstance(url, str) and url else None


def operator_settings() -> Settings:
    """The settings, with the Redis of ``flashsale up`` when FLASHSALE_REDIS_URL is unset; exit 2 if invalid."""
    env = dict(os.environ)
    if not env.get("FLASHSALE_REDIS_URL"):
        url = _up_redis_url(Path(env.get("FLASHSALE_VAR_DIR") or "var"))
        if url is not None:
            env["FLASHSALE_REDIS_URL"] = url
    try:
        settings = load(env)
    except ConfigError as error:
        fail(str(error), ERROR)
    logs.configure(settings.log_format)
    return settings


@contextmanager
def backends(settings: Settings) -> Iterator[tuple[Engine, sa.Engine]]:
    """The engine and the database; an outage inside the block ends the command with exit status 2."""
    engine = sync_engine(settings, max_connections=OPERATOR_POOL)
    db = make_engine(settings.database_url)
    try:
        yield engine, db
    except NotReplicated as error:
        fail(
            f"not_replicated: {error.message}; the change may not survive a failover: run the same command again",
            ERROR,
        )
    except (EngineUnavailable, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        hint = ""
        if settings.redis_url == _up_redis_url(settings.var_dir):
            hint = " (the Redis `flashsale up` uses from this directory: is `flashsale up` running?)"
        fail(f"Redis at {_redis_shown(settings)} is unavailable{hint}: {_one_line(error)}", ERROR)
    except sqlalchemy.exc.OperationalError as error:
        shown = normalize_url(settings.database_url).render_as_string(hide_password=True)
        fail(f"the database at {shown} is unavailable: {_one_line(error.orig or error)}", ERROR)
    finally:
        engine.redis.close()
        db.dispose()


def _redis_shown(settings: Settings) -> str:
    """Where Redis is, without any password the URL carries."""
    if settings.redis_sentinels:
        where = ",".join(f"{host}:{port}" for host, port in settings.redis_sentinels)
        return f"the primary of {settings.redis_sentinel_service!r} (sentinels {where})"
    url = urlsplit(settings.redis_url)
    if url.scheme == "unix":
        return url.path
    return f"{url.hostname}:{url.port or 6379}"


def _one_line(error: object) -> str:
    return " ".join(str(error).split())
