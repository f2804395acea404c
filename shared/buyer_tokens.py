"""A buyer token: a JWT the shop's identity provider signs for a logged-in buyer. Its claims are written here once.

``sub`` is the buyer (it becomes the customer id), ``exp`` is required, ``nbf`` and ``iat`` are honoured, all with
``LEEWAY_SECONDS``. The API verifies tokens (``api/buyer_auth.py``); ``flashsale token``, the demo login and the
bench issue HS256 ones with ``issue``. Every signature goes through PyJWT, never by hand.
"""

from __future__ import annotations

import time
from typing import Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

PublicAlgorithm = Literal["RS256", "ES256"]

SECRET_FILE = "buyer_jwt_secret"
"""Where ``flashsale up`` keeps the HS256 secret it generates, in the var directory."""
MIN_SECRET_BYTES = 32
LEEWAY_SECONDS = 30
REQUIRED_CLAIMS = ("sub", "exp")
DEFAULT_TTL_SECONDS = 3600
MAX_TTL_SECONDS = 30 * 86_400
HS256 = "HS256"
PUBLIC_ALGORITHMS: tuple[PublicAlgorithm, ...] = ("RS256", "ES256")


def issue(
    secret: str,
    subject: str,
    *,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    issuer: str | None = None,
    audience: str | None = None,
    now: float | None = None,
) -> str:
    """An HS256 token for ``subject``, valid from now for ``ttl_seconds``."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, object] = {"sub": subject, "iat": issued, "exp": issued + ttl_seconds}
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm=HS256)


def public_key_algorithm(pem: bytes) -> PublicAlgorithm:
    """The one algorithm a PEM public key verifies: RS256 for RSA (2048 bits at least), ES256 for EC P-256.

    ValueError says why any other key is refused."""
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError) as error:
        raise ValueError(f"not a PEM public key ({error})") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError(f"an RSA key of {key.key_size} bits is too weak: 2048 at least")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"an EC key must be on P-256 (ES256), not {key.curve.name}")
        return "ES256"
    raise ValueError(f"a {type(key).__name__} cannot verify RS256 or ES256")
