"""POST /auth/login (JSON) and /auth/token (the OAuth2 password form Swagger's Authorize uses).

Failed attempts are counted per account and per client IP in Redis (1-A); the answers follow
the taxonomy of 1-C: BAD_CREDENTIALS (401) until the password is proven, then
INACTIVE_ACCOUNT (403) if the account is not verified yet.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request

from codeatlas.auth import service
from codeatlas.auth.deps import AppSettings, ClientIP
from codeatlas.auth.passwords import MAX_PASSWORD_LENGTH
from codeatlas.auth.schemas import LoginIn, TokenOut
from codeatlas.core.ratelimit import RateLimitsDep, limiter, setting_limit
from codeatlas.db.session import SessionDep
from codeatlas.errors import responses

router = APIRouter()


@router.post("/login", responses=responses(401, 403, 429))
@limiter.limit(setting_limit("rate_limit_login"))
async def login(
    request: Request,
    body: LoginIn,
    session: SessionDep,
    settings: AppSettings,
    limits: RateLimitsDep,
    ip: ClientIP,
) -> TokenOut:
    """An access token and a refresh token for a correct e-mail and password."""
    return await service.login(
        session, limits, settings, email=body.email, password=body.password, ip=ip
    )


@router.post("/token", responses=responses(401, 403, 429))
@limiter.limit(setting_limit("rate_limit_login"))
async def token(
    request: Request,
    username: Annotated[str, Form(max_length=320, description="The account's e-mail.")],
    password: Annotated[str, Form(min_length=1, max_length=MAX_PASSWORD_LENGTH)],
    session: SessionDep,
    settings: AppSettings,
    limits: RateLimitsDep,
    ip: ClientIP,
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
) -> TokenOut:
    """OAuth2 password grant (form-encoded): the same login, for Swagger's Authorize."""
    return await service.login(session, limits, settings, email=username, password=password, ip=ip)
