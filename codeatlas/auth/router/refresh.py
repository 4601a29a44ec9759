"""POST /auth/refresh and /auth/logout: refresh-token rotation, reuse detection, revocation."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from codeatlas.auth import service
from codeatlas.auth.deps import AppSettings, DatabaseDep
from codeatlas.auth.schemas import RefreshIn, TokenOut
from codeatlas.core.ratelimit import limiter, setting_limit
from codeatlas.db.session import SessionDep
from codeatlas.errors import responses

router = APIRouter()


@router.post("/refresh", responses=responses(401, 403, 429))
@limiter.limit(setting_limit("rate_limit_refresh"))
async def refresh(
    request: Request, body: RefreshIn, db: DatabaseDep, settings: AppSettings
) -> TokenOut:
    """A new token pair for a refresh token, which stops working. Presenting a token that was
    already exchanged revokes every token of that login (401 TOKEN_INVALID)."""
    return await service.rotate_refresh_token(db, settings, body.refresh_token)


@router.post("/logout", status_code=204, responses=responses(429))
@limiter.limit(setting_limit("rate_limit_refresh"))
async def logout(request: Request, body: RefreshIn, session: SessionDep) -> Response:
    """Revoke the refresh token's login; access tokens expire on their own (short-lived)."""
    await service.logout(session, body.refresh_token)
    return Response(status_code=204)
