"""POST /auth/register, /auth/verify and /auth/verify/resend: new accounts start inactive
and are activated by the signed, expiring link e-mailed to them. Register and resend answer
the same whether or not the address has an account."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request

from codeatlas.auth import lockout, service
from codeatlas.auth.deps import AppSettings, MailerDep
from codeatlas.auth.schemas import (
    AcceptedOut,
    RegisteredOut,
    RegisterIn,
    ResendVerificationIn,
    UserOut,
    VerifyIn,
)
from codeatlas.core.ratelimit import RateLimitsDep, limiter, setting_limit
from codeatlas.db.session import SessionDep
from codeatlas.errors import responses

router = APIRouter()


@router.post("/register", status_code=202, responses=responses(429))
@limiter.limit(setting_limit("rate_limit_register"))
async def register(
    request: Request,
    body: RegisterIn,
    session: SessionDep,
    settings: AppSettings,
    mailer: MailerDep,
    background: BackgroundTasks,
    limits: RateLimitsDep,
) -> RegisteredOut:
    """Register an address: the answer is the same whether or not it has an account, so it
    does not tell who has one (issue 11, finding 8). A new address gets an inactive account
    and its verification link; an address that has an account gets nothing created, and its
    owner a notice by e-mail instead."""
    email = service.normalize_email(body.email)
    # counted for every registration, so both cases make the same calls
    allowed = await lockout.may_send_verification(limits, settings, email)
    user = await service.register(session, email, body.password, full_name=body.full_name)
    # sent after the response, i.e. after the transaction committed
    if user is not None:
        background.add_task(service.send_verification_email, mailer, settings, user.id, user.email)
    elif allowed:  # at most VERIFICATION_EMAILS_PER_ADDRESS notices an hour: no mail bombing
        background.add_task(service.send_account_exists_email, mailer, email)
    return RegisteredOut(email=email)


@router.post("/verify", responses=responses(400, 429))
@limiter.limit(setting_limit("rate_limit_verify"))
async def verify(
    request: Request, body: VerifyIn, session: SessionDep, settings: AppSettings
) -> UserOut:
    """Activate the account of a verification link (400 VERIFICATION_INVALID)."""
    user = await service.verify_email(session, settings, body.token)
    return UserOut.model_validate(user)


@router.post("/verify/resend", status_code=202, responses=responses(429))
@limiter.limit(setting_limit("rate_limit_verify"))
async def resend_verification(
    request: Request,
    body: ResendVerificationIn,
    session: SessionDep,
    settings: AppSettings,
    mailer: MailerDep,
    background: BackgroundTasks,
    limits: RateLimitsDep,
) -> AcceptedOut:
    """Send a new link if the address has an unverified account; the answer is the same
    either way, so it does not tell who has an account."""
    user = await service.find_user_by_email(session, body.email)
    # issue 11: at most VERIFICATION_EMAILS_PER_ADDRESS per hour to one address (counted for
    # every address, so the limit does not tell who has an account); same answer past it
    allowed = await lockout.may_send_verification(limits, settings, body.email)
    if allowed and user is not None and user.email_verified_at is None:
        background.add_task(service.send_verification_email, mailer, settings, user.id, user.email)
    return AcceptedOut()
