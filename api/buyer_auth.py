"""Buyer tokens verified: who a request's buyer is, from ``Authorization: Bearer <JWT>`` (FLASHSALE_BUYER_AUTH=jwt).

A route learns its verified buyer with ``buyer = await of(request).buyer_auth.authenticate(request)``: a ``Buyer``
(``buyer.sub`` is the customer id), or None when buyer auth is off. A missing or bad token raises
``InvalidBuyerToken`` (401) before the route does anything else. Verified tokens are cached until their ``exp``
(bounded), so a token seen before costs a dictionary lookup. Keys: an HS256 secret, a PEM public key (RS256 or
ES256), or a JWKS document fetched again when a token names a ``kid`` it lacks, at most once every 30 s; a fetch
that withdraws or replaces a key forgets every cached token, so each is verified again with the keys now published.
The claims themselves are ``shared/buyer_tokens.py``'s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import jwt
from starlette.requests import Request

from api.errors import ApiError
from api.metrics import BUYER_TOKENS_REFUSED
from engine.calls import MAX_CUSTOMER_ID
from engine.text import CONTROL_CHARACTERS, encodable
from shared import buyer_tokens, logs
from shared.settings import Settings

log = logs.get_logger("api.buyer_auth")

MAX_CACHED = 100_000
"""Verified tokens kept at most (about 300 bytes each)."""
JWKS_REFRESH_SECONDS = 30.0
JWKS_TIMEOUT_SECONDS = 5.0
MAX_TOKEN_LENGTH = 8192

Fetch = Callable[[str], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Buyer:
    sub: str
    """The verified buyer: the customer id of what it holds and orders."""
    expires_at: float
    """The token's ``exp`` (epoch seconds)."""


class InvalidBuyerToken(ApiError):
    def __init__(self, reason: str) -> None:
        super().__init__(
            401,
            "invalid_buyer_token",
            "a valid buyer token is required: Authorization: Bearer <JWT>",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
        self.reason = reason
        """Why, for the log and the metric (never told the caller): ``REASONS``."""


REASONS = (
    "missing",
    "malformed",
    "bad_signature",
    "wrong_algorithm",
    "unknown_key",
    "expired",
    "not_yet_valid",
    "wrong_audience",
    "wrong_issuer",
    "missing_claim",
    "bad_subject",
)


class CustomerMismatch(ApiError):
    def __init__(self) -> None:
        super().__init__(
            422,
            "customer_mismatch",
            "customer_id differs from the buyer the token names: leave it out or send the same",
        )


def _reason(error: jwt.PyJWTError) -> str:
    match error:
        case jwt.ExpiredSignatureError():
            return "expired"
        case jwt.ImmatureSignatureError():
            return "not_yet_valid"
        case jwt.InvalidAudienceError():
            return "wrong_audience"
        case jwt.InvalidIssuerError():
            return "wrong_issuer"
        case jwt.MissingRequiredClaimError(claim="aud"):
            return "wrong_audience"
        case jwt.MissingRequiredClaimError(claim="iss"):
            return "wrong_issuer"
        case jwt.MissingRequiredClaimError():
            return "missing_claim"
        case jwt.InvalidSignatureError():
            return "bad_signature"
        case jwt.InvalidAlgorithmError():
            return "wrong_algorithm"
        case jwt.PyJWKError() | jwt.InvalidKeyError():
            return "unknown_key"
    return "malformed"


class StaticKey:
    """One key and the one algorithm it verifies: an HS256 secret, or a PEM public key."""

    def __init__(self, key: Any, algorithm: str) -> None:
        self.key = key
        self.algorithm = algorithm

    async def key_for(self, header: dict[str, Any]) -> tuple[Any, str]:
        return self.key, self.algorithm

    async def start(self) -> None:
        return None


async def fetch_url(url: str) -> bytes:
    """A JWKS document from a file:// or http(s):// URL."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return await asyncio.to_thread(Path(unquote(parts.path)).read_bytes)
    async with httpx.AsyncClient(timeout=JWKS_TIMEOUT_SECONDS, trust_env=False) as client:
        response = await client.get(url)
        response.raise_for_status()
        return response.content


class JwksKeys:
    """The keys of a JWKS document by ``kid``, fetched again for a ``kid`` it lacks, at most every 30 s."""

    def __init__(
        self,
        url: str,
        fetch: Fetch = fetch_url,
        clock: Callable[[], float] = time.monotonic,
        on_withdrawn: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self.fetch = fetch
        self.clock = clock
        self.on_withdrawn = on_withdrawn
        """Called when a fetch withdraws or replaces a key: what it verified may no longer be trusted."""
        self.keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self.refresh()

    async def refresh(self) -> None:
        """Fetch the document again, unless it was fetched less than 30 s ago (then keep what we have)."""
        async with self._lock:
            now = self.clock()
            if self._fetched_at is not None and now - self._fetched_at < JWKS_REFRESH_SECONDS:
                return
            self._fetched_at = now
            try:
                document = await self.fetch(self.url)
                keys = jwt.PyJWKSet.from_json(document.decode("utf-8")).keys
            except (OSError, ValueError, httpx.HTTPError, jwt.PyJWTError) as error:
                log.warning("buyer_jwks_unavailable", url=self.url, error=str(error) or type(error).__name__)
                return
            usable = {key.key_id: key for key in keys if key.algorithm_name in buyer_tokens.PUBLIC_ALGORITHMS}
            log.info("buyer_jwks_loaded", url=self.url, kids=sorted(str(kid) for kid in usable))
            withdrawn = _withdrawn(self.keys, usable)
            self.keys = usable
            if withdrawn:
                log.info("buyer_jwks_keys_withdrawn", url=self.url, kids=withdrawn)
                if self.on_withdrawn is not None:
                    self.on_withdrawn()

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self.keys) == 1:
            return next(iter(self.keys.values()))
        return self.keys.get(kid)

    async def key_for(self, header: dict[str, Any]) -> tuple[Any, str]:
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidBuyerToken("malformed")
        found = self._find(kid)
        if found is None:
            await self.refresh()
            found = self._find(kid)
        if found is None:
            raise InvalidBuyerToken("unknown_key")
        return found.key, found.algorithm_name


def _withdrawn(before: dict[str | None, jwt.PyJWK], after: dict[str | None, jwt.PyJWK]) -> list[str]:
    """The kids of ``before`` that ``after`` lacks or names with another key (a key added withdraws nothing)."""
    gone = []
    for kid, key in before.items():
        now = after.get(kid)
        if now is None or now.algorithm_name != key.algorithm_name or _public(now) != _public(key):
            gone.append(str(kid))
    return sorted(gone)


def _public(key: jwt.PyJWK) -> object:
    numbers: Callable[[], object] | None = getattr(key.key, "public_numbers", None)
    return numbers() if numbers is not None else key.key


Keys = StaticKey | JwksKeys


def keys_from_settings(
    settings: Settings, fetch: Fetch = fetch_url, on_withdrawn: Callable[[], None] | None = None
) -> Keys:
    if settings.buyer_jwt_secret is not None:
        return StaticKey(settings.buyer_jwt_secret, buyer_tokens.HS256)
    if settings.buyer_jwt_public_key is not None:
        pem = settings.buyer_jwt_public_key
        return StaticKey(pem, buyer_tokens.public_key_algorithm(pem))
    if settings.buyer_jwks_url is not None:
        return JwksKeys(settings.buyer_jwks_url, fetch, on_withdrawn=on_withdrawn)
    raise ValueError("buyer tokens need a key (shared.settings refuses jwt without one)")


class BuyerAuth:
    """Verifies buyer tokens with the configured key, issuer and audience, and remembers the verified ones."""

    def __init__(
        self,
        settings: Settings,
        *,
        fetch: Fetch = fetch_url,
        clock: Callable[[], float] = time.time,
        max_cached: int = MAX_CACHED,
    ) -> None:
        self.enabled = settings.buyer_auth == "jwt"
        self._cache: dict[bytes, Buyer] = {}
        """Verified buyers by the raw ``Authorization`` value that carried their token: a hit needs no decoding."""
        self.keys: Keys | None = keys_from_settings(settings, fetch, self._cache.clear) if self.enabled else None
        self.issuer = settings.buyer_jwt_issuer
        self.audience = settings.buyer_jwt_audience
        self.clock = clock
        self.max_cached = max_cached
        self._options: Any = {
            "require": list(buyer_tokens.REQUIRED_CLAIMS),
            # Without a configured audience, a token's aud is not checked (PyJWT would refuse any aud).
            "verify_aud": self.audience is not None,
        }

    async def start(self) -> None:
        if self.keys is not None:
            await self.keys.start()

    async def authenticate(self, request: Request) -> Buyer | None:
        """The request's verified buyer; None when buyer auth is off. InvalidBuyerToken (401) otherwise."""
        if not self.enabled:
            return None
        # The hot path: the header's raw bytes, looked up as they came.
        value = _authorization(request)
        if value is not None:
            cached = self._cache.get(value)
            if cached is not None and cached.expires_at > self.clock():
                return cached
        try:
            return await self._checked(value)
        except InvalidBuyerToken as error:
            BUYER_TOKENS_REFUSED.labels(error.reason).inc()
            client = request.client.host if request.client else None
            log.warning(logs.BUYER_TOKEN_REFUSED, reason=error.reason, client=client, path=request.url.path)
            raise

    async def verify(self, token: str) -> Buyer:
        """The buyer a token names, as ``authenticate`` finds it in ``Authorization: Bearer <token>``."""
        return await self._checked(b"Bearer " + token.encode("utf-8", "replace"))

    async def _checked(self, value: bytes | None) -> Buyer:
        now = self.clock()
        if value is not None:
            cached = self._cache.get(value)
            if cached is not None and cached.expires_at > now:
                return cached
        buyer = await self._verify(_bearer(value))
        assert value is not None
        self._remember(value, buyer, now)
        return buyer

    async def _verify(self, token: str) -> Buyer:
        assert self.keys is not None
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidBuyerToken("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidBuyerToken("malformed") from None
        key, algorithm = await self.keys.key_for(header)
        # Only the key's own algorithm: `none`, and HS256 signed with a public key, never reach a verifier.
        if header.get("alg") != algorithm:
            raise InvalidBuyerToken("wrong_algorithm")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                options=self._options,
                leeway=buyer_tokens.LEEWAY_SECONDS,
                issuer=self.issuer,
                audience=self.audience,
            )
        except jwt.PyJWTError as error:
            raise InvalidBuyerToken(_reason(error)) from None
        sub = claims["sub"]
        if (
            not isinstance(sub, str)
            or not sub
            or len(sub) > MAX_CUSTOMER_ID
            or CONTROL_CHARACTERS.search(sub)
            or not encodable(sub)
        ):
            raise InvalidBuyerToken("bad_subject")
        return Buyer(sub, float(claims["exp"]))

    def _remember(self, token: bytes, buyer: Buyer, now: float) -> None:
        cache = self._cache
        if len(cache) >= self.max_cached:
            for stale in [t for t, b in cache.items() if b.expires_at <= now]:
                del cache[stale]
            # Still full of live tokens: forget the oldest tenth (a dict keeps insertion order).
            excess = len(cache) - self.max_cached * 9 // 10
            for oldest in list(cache)[: max(excess, 0)]:
                del cache[oldest]
        cache[token] = buyer


def _authorization(request: Request) -> bytes | None:
    headers: list[tuple[bytes, bytes]] = request.scope["headers"]
    for name, value in headers:
        if name == b"authorization":
            return value
    return None


def _bearer(value: bytes | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` value; any other scheme, or none, counts as missing."""
    if value is not None:
        scheme, _, token = value.decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            return token
    raise InvalidBuyerToken("missing")


def owner(buyer: Buyer | None) -> str | None:
    """Whose records a request may touch: the verified buyer, or anyone's (None) with buyer auth off."""
    return None if buyer is None else buyer.sub


def customer(buyer: Buyer | None, claimed: str | None) -> str | None:
    """The customer id of a new hold: the body's with buyer auth off; else the token's, which the body may repeat."""
    if buyer is None:
        return claimed
    if claimed is not None and claimed != buyer.sub:
        raise CustomerMismatch()
    return buyer.sub
