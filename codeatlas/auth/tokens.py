"""Access tokens: short-lived JWTs signed with SECRET_KEY."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from codeatlas.errors import Unauthorized
from codeatlas.settings import Settings


def create_access_token(user_id: int, settings: Settings, *, ttl: int | None = None) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + (ttl if ttl is not None else settings.access_token_ttl_seconds),
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    return jwt.encode(claims, settings.secret_key, algorithm=settings.jwt_algorithm)


def decode_access_token(token: str, settings: Settings) -> dict[str, Any]:
    """Claims of a valid token; TOKEN_EXPIRED or TOKEN_INVALID otherwise.

    The algorithm list is fixed server-side, so `alg: none` or a swapped algorithm in the
    token header is rejected.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.secret_key,
            algorithms=[settings.jwt_algorithm],
            options={"require": ["exp", "iat", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("Access token expired", error_code="TOKEN_EXPIRED") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("Invalid access token", error_code="TOKEN_INVALID") from exc
    if claims.get("typ") != "access":
        raise Unauthorized("Invalid access token", error_code="TOKEN_INVALID")
    return claims
