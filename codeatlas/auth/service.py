"""Account rules shared by the auth routers and the CLI (5-A): registration, verification,
login with failure counting, refresh-token rotation, profile and password changes.

Services run inside the caller's transaction and only flush, except
:func:`rotate_refresh_token`, which owns its transaction because a detected reuse must be
committed (the family revoked) even though the answer is an error.
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from codeatlas.auth import lockout
from codeatlas.auth.activation import activated
from codeatlas.auth.errors import (
    BadCredentials,
    EmailTaken,
    InactiveAccount,
    TokenExpired,
    TokenInvalid,
    VerificationInvalid,
    WrongCurrentPassword,
)
from codeatlas.auth.mail import Mailer
from codeatlas.auth.passwords import DUMMY_HASH, hash_password_async, verify_password_async
from codeatlas.auth.schemas import TokenOut
from codeatlas.auth.tokens import (
    create_access_token,
    create_verification_token,
    decode_verification_token,
    hash_refresh_token,
    new_refresh_token,
)
from codeatlas.core.ratelimit import RateLimits
from codeatlas.db.base import utcnow
from codeatlas.db.session import Database, atomic
from codeatlas.models import RefreshToken, User
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)


def normalize_email(raw: str) -> str:
    """The stored form: trimmed and lower-cased, so uniqueness is case-insensitive."""
    return raw.strip().lower()


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for DateTime(timezone=True); they were written as UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def find_user_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(User.email == normalize_email(email)))
    return result.scalar_one_or_none()


# -- registration and verification ------------------------------------------------------------


async def _insert_user(session: AsyncSession, user: User) -> bool:
    """False when the address is taken (found first, or a concurrent registration won)."""
    if await find_user_by_email(session, user.email) is not None:
        return False
    try:
        async with atomic(session):  # a SAVEPOINT: a lost race leaves the request usable
            session.add(user)
            await session.flush()
    except IntegrityError:
        return False
    return True


async def create_user(
    session: AsyncSession,
    email: str,
    password: str,
    *,
    full_name: str = "",
    is_active: bool = False,
    is_admin: bool = False,
) -> User:
    """An account as the CLI creates it; 409 EMAIL_TAKEN for an address that has one. An
    account created active counts as verified and takes its address's project invitations."""
    email = normalize_email(email)
    if await find_user_by_email(session, email) is not None:
        raise EmailTaken()
    user = User(
        email=email,
        password_hash=await hash_password_async(password),
        full_name=full_name,
        is_active=is_active,
        is_admin=is_admin,
        email_verified_at=utcnow() if is_active else None,
    )
    if not await _insert_user(session, user):
        raise EmailTaken()
    if is_active:
        await activated(session, user)
    return user


async def register(
    session: AsyncSession, email: str, password: str, *, full_name: str = ""
) -> User | None:
    """The new inactive account, or None when the address already has one (then nothing is
    created or changed). The password is hashed in both cases, so the answer, which is the
    same for both, also takes about the same time (issue 11, finding 8)."""
    user = User(
        email=normalize_email(email),
        password_hash=await hash_password_async(password),
        full_name=full_name,
        is_active=False,
        is_admin=False,
        email_verified_at=None,
    )
    return user if await _insert_user(session, user) else None


def verification_link(settings: Settings, user_id: int, email: str) -> str:
    token = create_verification_token(user_id, email, settings)
    return settings.verification_link_template.replace("{token}", token)


async def send_verification_email(
    mailer: Mailer, settings: Settings, user_id: int, email: str
) -> None:
    """Runs as a background task after the commit; a failure is logged, and the user can ask
    for a new link (POST /auth/verify/resend)."""
    body = (
        "Welcome to CodeAtlas.\n\n"
        f"Confirm your e-mail address to activate your account:\n\n"
        f"{verification_link(settings, user_id, email)}\n\n"
        f"The link is valid for {settings.verification_token_ttl_seconds // 3600} hours. "
        "If you did not create an account, ignore this message."
    )
    try:
        await mailer.send(email, "Confirm your CodeAtlas account", body)
    except (smtplib.SMTPException, OSError):
        logger.exception("verification e-mail to user %s could not be sent", user_id)


async def send_account_exists_email(mailer: Mailer, email: str) -> None:
    """The answer to registering an address that already has an account: the same 202 as for
    a new one, and this notice to the address's owner instead of a verification link."""
    body = (
        "Someone, perhaps you, tried to create a CodeAtlas account with this e-mail address. "
        "It already has an account, so no new account was created and your account is "
        "unchanged.\n\n"
        "If it was you, sign in with your existing password. If you never activated the "
        "account, ask for a new activation link when you sign in. If you no longer know "
        "your password, contact your CodeAtlas administrator.\n\n"
        "If it was not you, you can ignore this message."
    )
    try:
        await mailer.send(email, "Your CodeAtlas account already exists", body)
    except (smtplib.SMTPException, OSError):
        logger.exception("account-exists notice could not be sent")


async def verify_email(session: AsyncSession, settings: Settings, token: str) -> User:
    """Activate the account; the first verification also turns the project invitations of
    its address into memberships."""
    user_id, email = decode_verification_token(token, settings)
    user = await session.get(User, user_id)
    if user is None or user.email != email:
        raise VerificationInvalid()
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
        user.is_active = True
        await session.flush()
        await activated(session, user)
    return user


# -- login ---------------------------------------------------------------------------------


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    """The user behind a correct e-mail and password.

    Unknown e-mail and wrong password fail identically (BAD_CREDENTIALS) and take the same
    time: an unknown e-mail is checked against DUMMY_HASH. Only a correct password learns
    that the account is inactive. An outdated hash is upgraded on success.
    """
    user = await find_user_by_email(session, email)
    valid, new_hash = await verify_password_async(
        password, user.password_hash if user is not None else DUMMY_HASH
    )
    if user is None or not valid:
        raise BadCredentials()
    if new_hash is not None:
        user.password_hash = new_hash
        await session.flush()
    if not user.is_active:
        raise InactiveAccount()
    return user


async def login(
    session: AsyncSession,
    limits: RateLimits,
    settings: Settings,
    *,
    email: str,
    password: str,
    ip: str,
) -> TokenOut:
    """Tokens for a correct e-mail and password, within the failed-login limits of
    :mod:`codeatlas.auth.lockout`: only a wrong password counts (never an outage), and the
    hard limit is per (account, address), so no one can lock the owner out from elsewhere."""
    rules = lockout.login_rules(settings, email, ip)
    async with lockout.one_at_a_time(limits, rules.pair.key + ":lock"):
        await lockout.check(limits, settings, rules)
        try:
            user = await authenticate(session, email, password)
        except BadCredentials:
            await lockout.record_failure(limits, rules)
            raise
        except InactiveAccount:
            await lockout.record_success(limits, rules)  # the password was right
            raise
        await lockout.record_success(limits, rules)
    return await issue_tokens(session, settings, user)


# -- tokens ----------------------------------------------------------------------------------


async def issue_tokens(
    session: AsyncSession, settings: Settings, user: User, *, family_id: str | None = None
) -> TokenOut:
    token, digest = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id or uuid.uuid4().hex,
            token_hash=digest,
            expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    await session.flush()
    return TokenOut(
        access_token=create_access_token(user.id, settings, version=user.token_version),
        expires_in=settings.access_token_ttl_seconds,
        refresh_token=token,
    )


async def _revoke(session: AsyncSession, *criteria: object) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.revoked_at.is_(None), *criteria)  # type: ignore[arg-type]
        .values(revoked_at=utcnow())
    )


async def rotate_refresh_token(db: Database, settings: Settings, token: str) -> TokenOut:
    """Exchange a refresh token for a new pair; a reused (already rotated) token revokes its
    family.

    The token is claimed with a conditional UPDATE before anything is read, so of two
    concurrent refreshes exactly one wins and the other counts as reuse (and on SQLite the
    transaction takes the write lock first instead of upgrading a stale read).
    """
    reused = False
    digest = hash_refresh_token(token)
    async with db.session() as session, atomic(session):
        now = utcnow()
        claimed = await session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == digest,
                RefreshToken.rotated_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(rotated_at=now)
        )
        won = claimed.rowcount == 1  # type: ignore[attr-defined]
        found = await session.execute(select(RefreshToken).where(RefreshToken.token_hash == digest))
        row = found.scalar_one_or_none()
        if row is None or (not won and row.revoked_at is not None):
            raise TokenInvalid("Invalid refresh token")
        if _aware(row.expires_at) <= now:
            raise TokenExpired("Refresh token expired; sign in again")  # rolls the claim back
        if won:
            user = await session.get(User, row.user_id)
            if user is None:
                raise TokenInvalid("Invalid refresh token")
            if not user.is_active:
                raise InactiveAccount()
            return await issue_tokens(session, settings, user, family_id=row.family_id)
        logger.warning(
            "refresh token reuse (user %s): revoking family %s", row.user_id, row.family_id
        )
        await _revoke(session, RefreshToken.family_id == row.family_id)
        reused = True
    # outside the block: the revocation is committed before the client hears about it
    assert reused
    raise TokenInvalid("Refresh token was already used; all sessions of this login are revoked")


async def logout(session: AsyncSession, token: str) -> None:
    """Revoke the session (the token's whole family); unknown tokens are ignored."""
    found = await session.execute(
        select(RefreshToken.family_id).where(RefreshToken.token_hash == hash_refresh_token(token))
    )
    family_id = found.scalar_one_or_none()
    if family_id is not None:
        await _revoke(session, RefreshToken.family_id == family_id)


# -- profile ---------------------------------------------------------------------------------


async def update_profile(session: AsyncSession, user: User, *, full_name: str | None) -> User:
    if full_name is not None:
        user.full_name = full_name
    await session.flush()
    return user


async def change_password(
    session: AsyncSession, settings: Settings, user: User, *, current: str, new: str
) -> TokenOut:
    """Sign out everywhere else: every refresh token is revoked and token_version bumped (so
    issued access tokens stop working too); the caller gets a fresh pair."""
    valid, _ = await verify_password_async(current, user.password_hash)
    if not valid:
        raise WrongCurrentPassword()
    user.password_hash = await hash_password_async(new)
    user.token_version += 1
    await _revoke(session, RefreshToken.user_id == user.id)
    return await issue_tokens(session, settings, user)
