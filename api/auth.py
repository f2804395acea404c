"""Admin authentication: ``Authorization: Bearer <FLASHSALE_ADMIN_TOKEN>``, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from api.errors import ApiError


def require_admin(request: Request, token: str | None) -> None:
    if token is None:
        raise ApiError(403, "admin_disabled", "no admin token is configured on this server (FLASHSALE_ADMIN_TOKEN)")
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(_digest(presented.strip()), _digest(token)):
        raise ApiError(
            401,
            "unauthorized",
            "a valid admin token is required: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": 'Bearer realm="flashsale-admin"'},
        )


def _digest(value: str) -> bytes:
    # Digests have one length, so the comparison's timing reveals neither the token's content nor its length.
    return hashlib.sha256(value.encode("utf-8", "replace")).digest()
