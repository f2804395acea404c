"""Buyer tokens for tests: the HS256 secret the test settings use, tokens for it, and keys of other kinds."""

from __future__ import annotations

import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared import buyer_tokens

BUYER_SECRET = "test-buyer-secret-0123456789-abcdefghij"
JWT_ENV = {"FLASHSALE_BUYER_AUTH": "jwt", "FLASHSALE_BUYER_JWT_SECRET": BUYER_SECRET}


def token(sub: str, /, *, secret: str = BUYER_SECRET, ttl: int = 3600, **claims: Any) -> str:
    """An HS256 token for ``sub``; ``claims`` add to or replace the usual ones (None removes one)."""
    now = int(time.time())
    body: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ttl, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm=buyer_tokens.HS256)


def bearer(sub: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, **claims)}"}


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def signed(
    key: Any, algorithm: str, sub: str = "alice", /, headers: dict[str, Any] | None = None, **claims: Any
) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + 3600, **claims}, key, algorithm=algorithm, headers=headers)
