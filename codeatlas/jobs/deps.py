"""Who may use the jobs admin: an admin user's bearer token, or the configured basic login."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from codeatlas.auth import lockout
from codeatlas.auth.deps import get_current_user, oauth2_scheme
from codeatlas.core.ratelimit import client_ip
from codeatlas.db.session import SessionDep
from codeatlas.errors import Forbidden, Unauthorized
from codeatlas.settings import Settings

basic_scheme = HTTPBasic(auto_error=False, realm="CodeAtlas admin")


def _challenge(settings: Settings) -> dict[str, str]:
    # Offering Basic makes a browser prompt on the /admin/jobs page.
    schemes = ['Basic realm="CodeAtlas admin"'] if settings.admin_basic_enabled else []
    return {"WWW-Authenticate": ", ".join([*schemes, "Bearer"])}


async def require_admin(
    request: Request,
    session: SessionDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    credentials: Annotated[HTTPBasicCredentials | None, Depends(basic_scheme)],
) -> str:
    """The admin principal (``user:<id>`` or ``basic:<name>``); 401 unknown, 403 not admin."""
    settings: Settings = request.app.state.settings
    if credentials is not None:
        # issue 11: wrong basic logins are counted per client IP, like failed logins
        limits = request.app.state.rate_limits
        failures = lockout.admin_basic_rule(settings, client_ip(request))
        await lockout.guarded_failures(limits, failures, "administrator logins")
        if settings.admin_basic_enabled and _basic_matches(settings, credentials):
            return f"basic:{credentials.username}"
        await limits.hit(failures)
        raise Unauthorized("Invalid admin credentials", headers=_challenge(settings))
    if not token:
        raise Unauthorized("Administrator login required", headers=_challenge(settings))
    user = await get_current_user(settings=settings, session=session, token=token)
    if not user.is_admin:
        raise Forbidden("Administrator access required")
    return f"user:{user.id}"


def _basic_matches(settings: Settings, credentials: HTTPBasicCredentials) -> bool:
    # Both compared, in constant time, so neither part can be guessed separately.
    user_ok = secrets.compare_digest(
        credentials.username.encode(), settings.admin_basic_user.encode()
    )
    password_ok = secrets.compare_digest(
        credentials.password.encode(), settings.admin_basic_password.encode()
    )
    return user_ok and password_ok


def form_token(settings: Settings, principal: str) -> str:
    """The anti-CSRF token of the HTML page's forms (browsers resend basic credentials on
    cross-site posts; a forged form cannot know this HMAC of the secret key)."""
    message = f"admin-jobs:{principal}".encode()
    return hmac.new(settings.secret_key.encode(), message, hashlib.sha256).hexdigest()


AdminPrincipal = Annotated[str, Depends(require_admin)]
