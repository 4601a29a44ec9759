"""Registration → inactive → verification through a real SMTP server → login (1-C taxonomy)."""

from __future__ import annotations

import logging
import time

import httpx
import jwt
import pytest
from sqlalchemy import select

from codeatlas.db.session import Database
from codeatlas.models import User
from codeatlas.settings import Settings
from tests.auth.conftest import Inbox, verification_token
from tests.auth.helpers import API, PASSWORD, assert_error, login, register


async def _user(db: Database, email: str) -> User:
    async with db.session() as s:
        return (await s.execute(select(User).where(User.email == email))).scalar_one()


async def test_register_verify_login(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: Database
) -> None:
    r = await register(mail_client, "  Ada.Lovelace@Example.COM ")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["email"] == "ada.lovelace@example.com" and body["status"] == "accepted"
    assert "password" not in r.text and "hash" not in r.text

    stored = await _user(db, "ada.lovelace@example.com")
    assert stored.is_active is False
    assert stored.password_hash.startswith("$argon2id$")

    # wrong password: BAD_CREDENTIALS, nothing about the account's state
    assert_error(
        await login(mail_client, "ada.lovelace@example.com", "wrong password!"),
        401,
        "BAD_CREDENTIALS",
    )
    # correct password on an unverified account: INACTIVE_ACCOUNT
    assert_error(await login(mail_client, "ADA.lovelace@example.com"), 403, "INACTIVE_ACCOUNT")

    msg = await inbox.wait_for("ada.lovelace@example.com")
    assert msg["Subject"] == "Confirm your CodeAtlas account"
    token = verification_token(msg)
    r = await mail_client.post(f"{API}/verify", json={"token": token})
    assert r.status_code == 200, r.text
    assert r.json()["is_active"] is True and r.json()["email_verified_at"]
    verified_at = r.json()["email_verified_at"]

    r = await login(mail_client, "Ada.Lovelace@example.com")
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["token_type"] == "bearer" and tokens["refresh_token"]
    me = await mail_client.get(
        f"{API}/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200 and me.json()["email"] == "ada.lovelace@example.com"

    # verifying again is harmless and does not change the verification time
    again = await mail_client.post(f"{API}/verify", json={"token": token})
    assert again.status_code == 200
    assert again.json()["email_verified_at"] == verified_at


async def test_email_is_unique_case_insensitively(client: httpx.AsyncClient, db: Database) -> None:
    assert (await register(client, "grace@example.com")).status_code == 202
    assert (await register(client, " GRACE@Example.com", "another password")).status_code == 202
    async with db.session() as s:
        rows = (await s.execute(select(User).where(User.email.ilike("%grace%")))).scalars().all()
    assert [u.email for u in rows] == ["grace@example.com"]


async def test_register_validates_input(client: httpx.AsyncClient) -> None:
    assert_error(await register(client, "not-an-address"), 422, "VALIDATION_ERROR")
    assert_error(await register(client, "short@example.com", "1234567"), 422, "VALIDATION_ERROR")


async def test_tampered_expired_or_foreign_verification_tokens_are_refused(
    client: httpx.AsyncClient, settings: Settings, db: Database
) -> None:
    assert (await register(client, "linus@example.com")).status_code == 202
    user_id = (await _user(db, "linus@example.com")).id
    now = int(time.time())
    claims = {"sub": str(user_id), "email": "linus@example.com", "typ": "verify-email"}
    expired = jwt.encode({**claims, "iat": now - 100, "exp": now - 10}, settings.secret_key)
    wrong_key = jwt.encode({**claims, "iat": now, "exp": now + 60}, "another-secret-key-000000000")
    other_email = jwt.encode(
        {**claims, "email": "someone@example.com", "iat": now, "exp": now + 60},
        settings.secret_key,
    )
    access_kind = jwt.encode(
        {**claims, "typ": "access", "iat": now, "exp": now + 60}, settings.secret_key
    )
    for bad in [expired, wrong_key, other_email, access_kind, "garbage"]:
        assert_error(
            await client.post(f"{API}/verify", json={"token": bad}), 400, "VERIFICATION_INVALID"
        )
    assert (await _user(db, "linus@example.com")).is_active is False


async def test_verification_does_not_reactivate_a_deactivated_account(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: Database
) -> None:
    from codeatlas.db.session import atomic

    await register(mail_client, "mallory@example.com")
    token = verification_token(await inbox.wait_for("mallory@example.com"))
    assert (await mail_client.post(f"{API}/verify", json={"token": token})).status_code == 200
    async with db.session() as s, atomic(s):
        user = (
            await s.execute(select(User).where(User.email == "mallory@example.com"))
        ).scalar_one()
        user.is_active = False  # an administrator locks the account
    await mail_client.post(f"{API}/verify", json={"token": token})
    assert (await _user(db, "mallory@example.com")).is_active is False
    assert_error(await login(mail_client, "mallory@example.com", PASSWORD), 403, "INACTIVE_ACCOUNT")


async def test_resend_answers_the_same_for_unknown_addresses(
    mail_client: httpx.AsyncClient, inbox: Inbox
) -> None:
    await register(mail_client, "barbara@example.com")
    await inbox.wait_for("barbara@example.com")
    known = await mail_client.post(f"{API}/verify/resend", json={"email": "Barbara@example.com"})
    unknown = await mail_client.post(f"{API}/verify/resend", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert len([m for m in inbox.messages if m["To"] == "barbara@example.com"]) == 2
    assert not [m for m in inbox.messages if m["To"] == "nobody@example.com"]


async def test_without_smtp_the_link_goes_to_the_log(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="codeatlas.auth.mail"):
        assert (await register(client, "log@example.com")).status_code == 202
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "log@example.com" in logged and "verify-email?token=" in logged
