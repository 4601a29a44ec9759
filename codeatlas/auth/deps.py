"""Dependencies of authenticated routes: the current user (from the bearer access token),
the admin check, and the app-scoped objects the auth routers use."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from codeatlas.auth.errors import InactiveAccount, TokenInvalid
from codeatlas.auth.mail import Mailer
from codeatlas.auth.tokens import decode_access_token
from codeatlas.core.ratelimit import client_ip
from codeatlas.db.session import Database, SessionDep
from codeatlas.errors import Forbidden, Unauthorized
from codeatlas.models import User
from codeatlas.settings import Settings

# tokenUrl is the OAuth2 password-form login, so Swagger's Authorize button works.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_mailer(request: Request) -> Mailer:
    mailer: Mailer = request.app.state.mailer
    return mailer


AppSettings = Annotated[Settings, Depends(get_app_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
MailerDep = Annotated[Mailer, Depends(get_mailer)]
ClientIP = Annotated[str, Depends(client_ip)]


async def get_current_user(
    settings: AppSettings,
    session: SessionDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    if not token:
        raise Unauthorized("Authentication required", headers={"WWW-Authenticate": "Bearer"})
    claims = decode_access_token(token, settings)
    try:
        user_id = int(claims["sub"])
        version = int(claims.get("ver", 0))
    except (KeyError, TypeError, ValueError) as exc:
        raise TokenInvalid("Invalid access token") from exc
    user = await session.get(User, user_id)
    if user is None or user.token_version != version:
        # deleted user, or the password changed since the token was issued
        raise TokenInvalid("Invalid access token")
    if not user.is_active:
        raise InactiveAccount("Account is not active")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden("Administrator access required")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]
