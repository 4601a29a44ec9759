"""Cookie sessions for the browser app: POST/DELETE /auth/session, POST /auth/session/refresh
and POST /auth/session/password.

The access token stays in the page's memory only; the refresh token lives in an HttpOnly,
SameSite=Strict cookie scoped to these endpoints, so page scripts never see it. CSRF: every
state-changing call must come from our own origin (the Origin header, when the browser sends
one, must match the host) and refresh, logout and password change also carry the
double-submit token (cookie ``ca_csrf`` echoed in the ``X-CSRF-Token`` header), which a
cross-site page can neither read nor set. The account rules are :mod:`codeatlas.auth.service`.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from codeatlas.auth import service
from codeatlas.auth.deps import AppSettings, ClientIP, CurrentUser, DatabaseDep
from codeatlas.auth.schemas import LoginIn, PasswordChangeIn, TokenOut
from codeatlas.core.ratelimit import RateLimitsDep, limiter, setting_limit
from codeatlas.db.session import SessionDep
from codeatlas.errors import Forbidden, Unauthorized, responses
from codeatlas.settings import Settings
from codeatlas.versioning import API_PREFIX

REFRESH_COOKIE = "ca_refresh"
CSRF_COOKIE = "ca_csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_PATH = f"{API_PREFIX}/auth/session"

router = APIRouter(prefix="/auth/session", tags=["auth"])


class SessionOut(BaseModel):
    """The access token for the page's memory; the refresh token went into a cookie."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    csrf_token: str = Field(description="Echo in X-CSRF-Token on refresh, logout, password.")


def _secure(request: Request, settings: Settings) -> bool:
    mode = settings.session_cookie_secure
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def _check_origin(request: Request) -> None:
    """Browsers send Origin on cross-origin requests and on every POST/DELETE fetch; a
    mismatch means another site is driving the user's browser."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    if origin not in {f"http://{host}", f"https://{host}"}:
        raise Forbidden("Cross-origin request refused", error_code="CSRF_ORIGIN_MISMATCH")


def check_csrf(request: Request) -> None:
    _check_origin(request)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not hmac.compare_digest(cookie, header):
        raise Forbidden("Missing or wrong CSRF token", error_code="CSRF_TOKEN_INVALID")


OriginChecked = Annotated[None, Depends(_check_origin)]
CsrfChecked = Annotated[None, Depends(check_csrf)]


def _start(request: Request, response: Response, settings: Settings, pair: TokenOut) -> SessionOut:
    csrf = secrets.token_urlsafe(24)
    secure = _secure(request, settings)
    response.set_cookie(
        REFRESH_COOKIE,
        pair.refresh_token,
        max_age=settings.refresh_token_ttl_seconds,
        path=SESSION_PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
    )
    # Readable by our scripts on purpose (double submit); worthless without the HttpOnly one.
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        max_age=settings.refresh_token_ttl_seconds,
        path="/",
        httponly=False,
        samesite="strict",
        secure=secure,
    )
    response.headers["Cache-Control"] = "no-store"
    return SessionOut(access_token=pair.access_token, expires_in=pair.expires_in, csrf_token=csrf)


def _end(response: Response) -> None:
    response.delete_cookie(REFRESH_COOKIE, path=SESSION_PATH)
    response.delete_cookie(CSRF_COOKIE, path="/")


@router.post("", responses=responses(401, 403, 429))
@limiter.limit(setting_limit("rate_limit_login"))
async def session_login(
    request: Request,
    response: Response,
    body: LoginIn,
    _: OriginChecked,
    session: SessionDep,
    settings: AppSettings,
    limits: RateLimitsDep,
    ip: ClientIP,
) -> SessionOut:
    """Sign in; the refresh token is set as an HttpOnly cookie (same errors as /auth/login)."""
    pair = await service.login(
        session, limits, settings, email=body.email, password=body.password, ip=ip
    )
    return _start(request, response, settings, pair)


@router.post("/refresh", responses=responses(401, 403, 429))
@limiter.limit(setting_limit("rate_limit_refresh"))
async def session_refresh(
    request: Request, response: Response, _: CsrfChecked, db: DatabaseDep, settings: AppSettings
) -> SessionOut:
    """A new access token (and rotated cookies) for the session cookie; 401 without one."""
    token = request.cookies.get(REFRESH_COOKIE)
    if not token:
        raise Unauthorized("No session; sign in", error_code="SESSION_MISSING")
    pair = await service.rotate_refresh_token(db, settings, token)
    return _start(request, response, settings, pair)


@router.delete("", status_code=204, responses=responses(403, 429))
@limiter.limit(setting_limit("rate_limit_refresh"))
async def session_logout(request: Request, _: CsrfChecked, session: SessionDep) -> Response:
    """Sign out: the session's refresh tokens are revoked and the cookies cleared."""
    token = request.cookies.get(REFRESH_COOKIE)
    if token:
        await service.logout(session, token)
    response = Response(status_code=204)
    _end(response)
    return response


@router.post("/password", responses=responses(400, 401, 403, 429))
@limiter.limit(setting_limit("rate_limit_password_change"))
async def session_change_password(
    request: Request,
    response: Response,
    body: PasswordChangeIn,
    _: CsrfChecked,
    user: CurrentUser,
    session: SessionDep,
    settings: AppSettings,
) -> SessionOut:
    """Change the password; every other session ends, this one continues with new cookies."""
    pair = await service.change_password(
        session, settings, user, current=body.current_password, new=body.new_password
    )
    return _start(request, response, settings, pair)
