"""Tokens: short-lived JWT access tokens, signed verification tokens, opaque refresh tokens.

Every JWT carries a `typ` claim and is decoded with a fixed algorithm list, so a token of one
kind is never accepted as another and `alg: none` or a swapped algorithm is rejected.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from typing import Any

import jwt

from codeatlas.auth.errors import TokenExpired, TokenInvalid, VerificationInvalid
from codeatlas.settings import Settings

ACCESS = "access"
VERIFY_EMAIL = "verify-email"


def create_access_token(
    user_id: int, settings: Settings, *, version: int = 0, ttl: int | None = None
) -> str:
    """`version` is the user's token_version; bumping it invalidates issued tokens."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + (ttl if ttl is not None else settings.access_token_ttl_seconds),
        "jti": uuid.uuid4().hex,
        "typ": ACCESS,
        "ver": version,
    }
    return jwt.encode(claims, settings.secret_key, algorithm=settings.jwt_algorithm)


def _decode(token: str, settings: Settings, typ: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        token,
        settings.secret_key,
        algorithms=[settings.jwt_algorithm],
        options={"require": ["exp", "iat", "sub", "typ"]},
    )
    if claims.get("typ") != typ:
        raise jwt.InvalidTokenError(f"not a {typ} token")
    return claims


def decode_access_token(token: str, settings: Settings) -> dict[str, Any]:
    """Claims of a valid access token; TOKEN_EXPIRED or TOKEN_INVALID otherwise."""
    try:
        return _decode(token, settings, ACCESS)
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired() from exc
    except jwt.InvalidTokenError as exc:
        raise TokenInvalid() from exc


def create_verification_token(user_id: int, email: str, settings: Settings) -> str:
    """The signed, expiring token of the verification link; bound to the address it went to."""
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "email": email,
        "iat": now,
        "exp": now + settings.verification_token_ttl_seconds,
        "typ": VERIFY_EMAIL,
    }
    return jwt.encode(claims, settings.secret_key, algorithm=settings.jwt_algorithm)


def decode_verification_token(token: str, settings: Settings) -> tuple[int, str]:
    """(user_id, email) of a valid verification token; VERIFICATION_INVALID otherwise."""
    try:
        claims = _decode(token, settings, VERIFY_EMAIL)
        return int(claims["sub"]), str(claims["email"])
    except jwt.ExpiredSignatureError as exc:
        raise VerificationInvalid("Verification link expired; request a new one") from exc
    except (jwt.InvalidTokenError, KeyError, ValueError) as exc:
        raise VerificationInvalid() from exc


def new_refresh_token() -> tuple[str, str]:
    """(token for the client, hash for the database)."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    # A plain SHA-256 is enough here (unlike passwords): the token has 256 random bits, so
    # there is nothing to brute-force, and the lookup must be an indexed equality.
    return hashlib.sha256(token.encode()).hexdigest()
