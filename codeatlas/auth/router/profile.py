"""GET/PATCH /auth/me and POST /auth/me/password: the signed-in user's own account."""

from __future__ import annotations

from fastapi import APIRouter, Request

from codeatlas.auth import lockout, service
from codeatlas.auth.deps import AppSettings, CurrentUser
from codeatlas.auth.errors import WrongCurrentPassword
from codeatlas.auth.schemas import PasswordChangeIn, ProfileUpdate, TokenOut, UserOut
from codeatlas.core.ratelimit import RateLimitsDep, limiter, setting_limit
from codeatlas.db.session import SessionDep
from codeatlas.errors import responses

router = APIRouter(prefix="/me", responses=responses(401, 403))


@router.get("")
async def read_me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.patch("")
async def update_me(body: ProfileUpdate, user: CurrentUser, session: SessionDep) -> UserOut:
    await service.update_profile(session, user, full_name=body.full_name)
    return UserOut.model_validate(user)


@router.post("/password", responses=responses(400, 429))
@limiter.limit(setting_limit("rate_limit_password_change"))
async def change_password(
    request: Request,
    body: PasswordChangeIn,
    user: CurrentUser,
    session: SessionDep,
    settings: AppSettings,
    limits: RateLimitsDep,
) -> TokenOut:
    """Change the password (400 BAD_CREDENTIALS if the current one is wrong). Signs out every
    other session: all refresh tokens are revoked and issued access tokens stop working; the
    answer carries a fresh pair for this client."""
    # issue 11: wrong current passwords are counted per account, whatever the address
    failures = lockout.password_change_rule(settings, user.id)
    await lockout.guarded_failures(limits, failures, "password checks")
    try:
        return await service.change_password(
            session, settings, user, current=body.current_password, new=body.new_password
        )
    except WrongCurrentPassword:
        await limits.hit(failures)
        raise
