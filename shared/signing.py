"""Webhook signatures: ``v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`` keyed with the webhook secret.

``flashsale pay`` signs with ``sign``; the API checks with ``verify``. One scheme, one place.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Flashsale-Timestamp"
SIGNATURE_HEADER = "X-Flashsale-Signature"
SCHEME = "v1"
TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    message = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def verify(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """True when the headers sign ``body`` with ``secret`` and the timestamp is within ``tolerance`` of now."""
    if not timestamp or not signature or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    # Constant time, so a forger cannot learn the digest byte by byte.
    return hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace"))


def headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The two headers a payment provider sends with ``body``."""
    timestamp = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)}
