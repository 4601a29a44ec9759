"""Who is calling: `CurrentUser` and `AdminUser` dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from codeatlas.auth.tokens import decode_access_token
from codeatlas.db.session import SessionDep
from codeatlas.errors import Forbidden, Unauthorized
from codeatlas.models import User

# tokenUrl is the OAuth2 password-form login, so Swagger's Authorize button works.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def get_current_user(
    request: Request, session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> User:
    if not token:
        raise Unauthorized("Authentication required", headers={"WWW-Authenticate": "Bearer"})
    claims = decode_access_token(token, request.app.state.settings)
    try:
        user_id = int(claims["sub"])
    except (KeyError, ValueError) as exc:
        raise Unauthorized("Invalid access token", error_code="TOKEN_INVALID") from exc
    user = await session.get(User, user_id)
    if user is None:
        raise Unauthorized("Invalid access token", error_code="TOKEN_INVALID")
    if not user.is_active:
        raise Forbidden("Account is not active", error_code="INACTIVE_ACCOUNT")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden("Administrator access required")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]
