"""Configuration from ``FLASHSALE_*`` environment variables, checked once at start-up.

A wrong value raises ``ConfigError`` naming the variable; commands print it as one line and exit.
Secrets may also come from the files ``flashsale up`` keeps in the var directory (mode 0600).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from shared import buyer_tokens

LogFormat = Literal["json", "console"]
BuyerAuth = Literal["off", "jwt"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_SENTINEL_SERVICE = "flashsale"
Addresses = tuple[tuple[str, int], ...]
SENTINEL_URL = "with sentinels, use redis:// or rediss:// (only its database and credentials count)"
WEBHOOK_SECRET_FILE = "webhook_secret"
ADMIN_TOKEN_FILE = "admin_token"
DEFAULT_HOLD_TTL_SECONDS = 120
"""How long a hold keeps its units (FLASHSALE_HOLD_TTL_SECONDS); also the engine's default."""
DEFAULT_ORDER_TTL_SECONDS = 900
"""How long an order may wait for its payment (FLASHSALE_ORDER_TTL_SECONDS); also the engine's default."""
DEFAULT_PAYMENT_GRACE_SECONDS = 600
"""How long a ``processing`` payment keeps its order, from that webhook (FLASHSALE_PAYMENT_GRACE_SECONDS)."""


class ConfigError(ValueError):
    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str
    redis_cluster: bool
    queue_redis_url: str
    database_url: str
    webhook_secret: str | None
    admin_token: str | None
    hold_ttl_seconds: int
    order_ttl_seconds: int
    log_format: LogFormat
    var_dir: Path
    reaper_interval_seconds: int
    drain_interval_seconds: int
    rate_limit_per_second: int
    """Holds per second allowed from one client address; 0 turns the limit off."""
    demo_provider: bool = False
    """The API's simulated payment provider (POST /api/demo/payments); ``flashsale up`` turns it on."""
    redis_timeout_seconds: float = 2.0
    """The deadline of a request's engine work: past it, the answer is 503 ``engine_unavailable``."""
    redis_sentinels: Addresses = ()
    """Sentinels to ask for the engine's primary; empty: ``redis_url`` is the server (or a cluster node)."""
    redis_sentinel_service: str = DEFAULT_SENTINEL_SERVICE
    queue_redis_sentinels: Addresses = ()
    """The same for the queue's Redis."""
    queue_redis_sentinel_service: str = DEFAULT_SENTINEL_SERVICE
    redis_ack_replicas: int = 0
    """Answer a write only once this many replicas have it (WAIT); 0 answers at once."""
    redis_ack_timeout_ms: int = 200
    """How long a write waits for those replicas before the answer is 503 ``not_replicated``."""
    payment_grace_seconds: int = DEFAULT_PAYMENT_GRACE_SECONDS
    """A pending order's expiry, moved once to this long after its first ``processing`` webhook."""
    merchant_webhook_url: str | None = None
    """Where the merchant's signed events go; None sends none (and records none)."""
    merchant_webhook_secret: str | None = None
    """The key their signatures use (required with the URL)."""
    merchant_timeout_seconds: float = 5.0
    """How long one delivery waits for the merchant's answer."""
    merchant_retry_base_seconds: float = 1.0
    """The first retry's delay; each next one doubles (with jitter), up to ``merchant_retry_max_seconds``."""
    merchant_retry_max_seconds: float = 3600.0
    merchant_give_up_seconds: int = 86_400
    """How long an event is tried before it is dead-lettered (``flashsale deliveries --failed``)."""
    delivery_interval_seconds: int = 2
    """How often the scheduler asks for a delivery round (the drain also asks after writing events)."""
    buyer_auth: BuyerAuth = "off"
    """``jwt``: buyer endpoints require a signed buyer token (api/buyer_auth.py); ``off``: buyers name themselves."""
    buyer_jwt_secret: str | None = None
    """The HS256 secret buyer tokens are signed with (FLASHSALE_BUYER_JWT_SECRET, else var/buyer_jwt_secret)."""
    buyer_jwt_public_key: bytes | None = None
    """The PEM public key (read from FLASHSALE_BUYER_JWT_PUBLIC_KEY's path) that verifies RS256 or ES256 tokens."""
    buyer_jwks_url: str | None = None
    """A JWKS document (file://, http://, https://) whose keys verify RS256 or ES256 tokens, chosen by ``kid``."""
    buyer_jwt_issuer: str | None = None
    buyer_jwt_audience: str | None = None
    rate_limit_per_buyer_per_second: int = 0
    """Holds per second allowed to one verified buyer (jwt only); 0 turns that limit off."""

    @property
    def merchant_events(self) -> bool:
        return self.merchant_webhook_url is not None

    @property
    def payment_grace_ms(self) -> int:
        return self.payment_grace_seconds * 1000

    @property
    def hold_ttl_ms(self) -> int:
        return self.hold_ttl_seconds * 1000

    @property
    def order_ttl_ms(self) -> int:
        return self.order_ttl_seconds * 1000


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(name, f"must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"expected a number, got {raw!r}") from None
    if not low <= value <= high:  # NaN fails this too
        raise ConfigError(name, f"must be between {low:g} and {high:g}, got {raw}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(name, f"expected 1 or 0, got {raw!r}")


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    raw = env.get(name) or default
    scheme = urlsplit(raw).scheme
    if scheme not in schemes:
        raise ConfigError(name, f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}, got {raw!r}")
    return raw


def _sentinels(env: Mapping[str, str], name: str) -> Addresses:
    """``host:port,host:port`` (an IPv6 host in brackets, ``[::1]:26379``); empty when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return ()
    addresses = []
    for item in (part.strip() for part in raw.split(",")):
        try:
            parts = urlsplit(f"//{item}")
            port = parts.port
        except ValueError:
            port = None
            parts = urlsplit("//")
        if not item or not parts.hostname or port is None or parts.path or "@" in item:
            raise ConfigError(name, f"expected host:port[,host:port...], got {item!r}")
        addresses.append((parts.hostname, port))
    return tuple(addresses)


def _service(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip() or DEFAULT_SENTINEL_SERVICE
    if any(c.isspace() for c in raw):
        raise ConfigError(name, f"a sentinel service name has no spaces, got {raw!r}")
    return raw


def _secret(env: Mapping[str, str], name: str, var_dir: Path, filename: str) -> str | None:
    raw = env.get(name)
    if raw is not None and raw != "":
        if len(raw) < 16:
            raise ConfigError(name, "must be at least 16 characters")
        return raw
    path = var_dir / filename
    if path.is_file():
        value = path.read_text(encoding="utf-8").strip()
        return value or None
    return None


def _merchant(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    url = env.get("FLASHSALE_MERCHANT_WEBHOOK_URL") or None
    secret = env.get("FLASHSALE_MERCHANT_WEBHOOK_SECRET") or None
    if url is None:
        return None, None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("FLASHSALE_MERCHANT_WEBHOOK_URL", f"expected an http:// or https:// URL, got {url!r}")
    if secret is None or len(secret) < 16:
        raise ConfigError("FLASHSALE_MERCHANT_WEBHOOK_SECRET", "must be set, at least 16 characters, with the URL")
    return url, secret


def _buyer_auth(env: Mapping[str, str]) -> BuyerAuth:
    raw = env.get("FLASHSALE_BUYER_AUTH", "").strip().lower() or "off"
    if raw not in ("off", "jwt"):
        raise ConfigError("FLASHSALE_BUYER_AUTH", f"expected off or jwt, got {raw!r}")
    return "jwt" if raw == "jwt" else "off"


def _buyer_secret(env: Mapping[str, str], var_dir: Path, explicit: bool) -> str | None:
    """The HS256 secret: the variable, else (when no other key is named) the file ``flashsale up`` keeps."""
    name = "FLASHSALE_BUYER_JWT_SECRET"
    raw = env.get(name)
    source = name
    if not raw:
        path = var_dir / buyer_tokens.SECRET_FILE
        if explicit or not path.is_file():
            return None
        raw, source = path.read_text(encoding="utf-8").strip(), str(path)
        if not raw:
            return None
    if len(raw.encode("utf-8")) < buyer_tokens.MIN_SECRET_BYTES:
        raise ConfigError(name, f"an HS256 secret must be at least {buyer_tokens.MIN_SECRET_BYTES} bytes ({source})")
    return raw


def _public_key(env: Mapping[str, str]) -> bytes | None:
    name = "FLASHSALE_BUYER_JWT_PUBLIC_KEY"
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        pem = Path(raw).read_bytes()
    except OSError as error:
        raise ConfigError(name, f"expected the path of a PEM public key file: {error.strerror or error}") from None
    try:
        buyer_tokens.public_key_algorithm(pem)
    except ValueError as error:
        raise ConfigError(name, f"{raw}: {error}") from None
    return pem


def _jwks_url(env: Mapping[str, str]) -> str | None:
    name = "FLASHSALE_BUYER_JWKS_URL"
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme == "file":
        if not Path(unquote(parts.path)).is_file():
            raise ConfigError(name, f"no such file: {unquote(parts.path)!r}")
    elif parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(name, f"expected a file://, http:// or https:// URL of a JWKS document, got {raw!r}")
    return raw


def _optional_text(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if len(raw) > 1024:
        raise ConfigError(name, "must be at most 1024 characters")
    return raw or None


def _buyer_keys(env: Mapping[str, str], var_dir: Path, auth: BuyerAuth) -> tuple[str | None, bytes | None, str | None]:
    """The buyer token keys: with jwt exactly one of a secret, a public key or a JWKS URL."""
    public_key, jwks_url = _public_key(env), _jwks_url(env)
    secret = _buyer_secret(env, var_dir, explicit=public_key is not None or jwks_url is not None)
    named = [
        variable
        for variable, value in (
            ("FLASHSALE_BUYER_JWT_SECRET", secret),
            ("FLASHSALE_BUYER_JWT_PUBLIC_KEY", public_key),
            ("FLASHSALE_BUYER_JWKS_URL", jwks_url),
        )
        if value is not None
    ]
    if len(named) > 1:
        raise ConfigError(named[1], f"choose one way to verify buyer tokens, not {' and '.join(named)}")
    if auth == "jwt" and not named:
        raise ConfigError(
            "FLASHSALE_BUYER_AUTH",
            "jwt needs a key: FLASHSALE_BUYER_JWT_SECRET (HS256), FLASHSALE_BUYER_JWT_PUBLIC_KEY (a PEM file, "
            "RS256 or ES256) or FLASHSALE_BUYER_JWKS_URL",
        )
    return secret, public_key, jwks_url


def default_database_url(var_dir: Path) -> str:
    return f"sqlite:///{(var_dir / 'flashsale.db').as_posix()}"


def load(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    var_dir = Path(env.get("FLASHSALE_VAR_DIR") or "var")
    redis_url = _url(env, "FLASHSALE_REDIS_URL", DEFAULT_REDIS_URL, ("redis", "rediss", "unix"))
    cluster = _bool(env, "FLASHSALE_REDIS_CLUSTER")
    sentinels = _sentinels(env, "FLASHSALE_REDIS_SENTINELS")
    service = _service(env, "FLASHSALE_REDIS_SENTINEL_SERVICE")
    if sentinels and cluster:
        raise ConfigError("FLASHSALE_REDIS_SENTINELS", "Redis Cluster fails over by itself: leave it unset with it")
    if sentinels and redis_url.startswith("unix:"):
        raise ConfigError("FLASHSALE_REDIS_URL", SENTINEL_URL)
    queue_sentinels = _sentinels(env, "FLASHSALE_QUEUE_REDIS_SENTINELS")
    queue_service = _service(env, "FLASHSALE_QUEUE_REDIS_SENTINEL_SERVICE")
    own_queue = bool(env.get("FLASHSALE_QUEUE_REDIS_URL")) or bool(queue_sentinels)
    if cluster and not own_queue:
        raise ConfigError("FLASHSALE_QUEUE_REDIS_URL", "RQ cannot use Redis Cluster: set a plain Redis for the queue")
    # The queue lives with the engine unless told otherwise: on the same server, or the same sentinels' primary.
    queue_default = DEFAULT_REDIS_URL if cluster else redis_url
    if not own_queue:
        queue_sentinels, queue_service = sentinels, service
    queue_url = _url(env, "FLASHSALE_QUEUE_REDIS_URL", queue_default, ("redis", "rediss", "unix"))
    if queue_sentinels and queue_url.startswith("unix:"):
        raise ConfigError("FLASHSALE_QUEUE_REDIS_URL", SENTINEL_URL)
    merchant_url, merchant_secret = _merchant(env)
    buyer_auth = _buyer_auth(env)
    buyer_secret, buyer_public_key, buyer_jwks_url = _buyer_keys(env, var_dir, buyer_auth)
    log_format = env.get("FLASHSALE_LOG_FORMAT") or ("console" if sys.stderr.isatty() else "json")
    if log_format not in ("json", "console"):
        raise ConfigError("FLASHSALE_LOG_FORMAT", f"expected json or console, got {log_format!r}")
    return Settings(
        redis_url=redis_url,
        redis_cluster=cluster,
        queue_redis_url=queue_url,
        database_url=_url(
            env,
            "FLASHSALE_DATABASE_URL",
            default_database_url(var_dir),
            ("sqlite", "postgresql", "postgresql+psycopg", "postgres"),
        ),
        webhook_secret=_secret(env, "FLASHSALE_WEBHOOK_SECRET", var_dir, WEBHOOK_SECRET_FILE),
        admin_token=_secret(env, "FLASHSALE_ADMIN_TOKEN", var_dir, ADMIN_TOKEN_FILE),
        hold_ttl_seconds=_int(env, "FLASHSALE_HOLD_TTL_SECONDS", DEFAULT_HOLD_TTL_SECONDS, 1, 86_400),
        order_ttl_seconds=_int(env, "FLASHSALE_ORDER_TTL_SECONDS", DEFAULT_ORDER_TTL_SECONDS, 1, 7 * 86_400),
        log_format=log_format,  # type: ignore[arg-type]
        var_dir=var_dir,
        reaper_interval_seconds=_int(env, "FLASHSALE_REAPER_INTERVAL_SECONDS", 5, 1, 3600),
        drain_interval_seconds=_int(env, "FLASHSALE_DRAIN_INTERVAL_SECONDS", 10, 1, 3600),
        rate_limit_per_second=_int(env, "FLASHSALE_RATE_LIMIT_PER_SECOND", 0, 0, 1_000_000),
        demo_provider=_bool(env, "FLASHSALE_DEMO_PROVIDER"),
        redis_timeout_seconds=_float(env, "FLASHSALE_REDIS_TIMEOUT_SECONDS", 2.0, 0.05, 300.0),
        redis_sentinels=sentinels,
        redis_sentinel_service=service,
        queue_redis_sentinels=queue_sentinels,
        queue_redis_sentinel_service=queue_service,
        redis_ack_replicas=_int(env, "FLASHSALE_REDIS_ACK_REPLICAS", 0, 0, 100),
        redis_ack_timeout_ms=_int(env, "FLASHSALE_REDIS_ACK_TIMEOUT_MS", 200, 1, 60_000),
        payment_grace_seconds=_int(
            env, "FLASHSALE_PAYMENT_GRACE_SECONDS", DEFAULT_PAYMENT_GRACE_SECONDS, 1, 7 * 86_400
        ),
        merchant_webhook_url=merchant_url,
        merchant_webhook_secret=merchant_secret,
        merchant_timeout_seconds=_float(env, "FLASHSALE_MERCHANT_TIMEOUT_SECONDS", 5.0, 0.05, 60.0),
        merchant_retry_base_seconds=_float(env, "FLASHSALE_MERCHANT_RETRY_BASE_SECONDS", 1.0, 0.01, 3600.0),
        merchant_retry_max_seconds=_float(env, "FLASHSALE_MERCHANT_RETRY_MAX_SECONDS", 3600.0, 0.01, 86_400.0),
        merchant_give_up_seconds=_int(env, "FLASHSALE_MERCHANT_GIVE_UP_SECONDS", 86_400, 1, 30 * 86_400),
        delivery_interval_seconds=_int(env, "FLASHSALE_DELIVERY_INTERVAL_SECONDS", 2, 1, 3600),
        buyer_auth=buyer_auth,
        buyer_jwt_secret=buyer_secret,
        buyer_jwt_public_key=buyer_public_key,
        buyer_jwks_url=buyer_jwks_url,
        buyer_jwt_issuer=_optional_text(env, "FLASHSALE_BUYER_JWT_ISSUER"),
        buyer_jwt_audience=_optional_text(env, "FLASHSALE_BUYER_JWT_AUDIENCE"),
        rate_limit_per_buyer_per_second=_int(env, "FLASHSALE_RATE_LIMIT_PER_BUYER_PER_SECOND", 0, 0, 1_000_000),
    )
