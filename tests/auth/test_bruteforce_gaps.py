"""Finding 4 of issue 11: the other guessable secrets are limited too — admin basic auth per
client address, the current password of /auth/me/password per account (whatever the
address), verification e-mails per target address (whatever the sender)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI

from codeatlas.db.session import Database
from tests.auth.conftest import Inbox
from tests.auth.helpers import API, PASSWORD, assert_error, register
from tests.factories import auth_headers, create_user

BASIC = {"admin_basic_user": "ops", "admin_basic_password": "a-long-admin-password"}


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def _from(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


async def test_admin_basic_auth_is_limited_per_address(app_factory: Any) -> None:
    app: FastAPI = app_factory(trusted_proxies=["127.0.0.1"], **BASIC)
    right = ("ops", BASIC["admin_basic_password"])
    async with app.router.lifespan_context(app), _client(app) as c:
        for n in range(5):
            r = await c.get(
                "/api/v1/admin/jobs", auth=("ops", f"guess{n}"), headers=_from("1.2.3.4")
            )
            assert r.status_code == 401
        r = await c.get("/api/v1/admin/jobs", auth=right, headers=_from("1.2.3.4"))
        assert_error(r, 429, "RATE_LIMITED")
        assert int(r.headers["retry-after"]) > 0
        r = await c.get("/api/v1/admin/jobs", auth=right, headers=_from("5.6.7.8"))
        assert r.status_code == 200, r.text


async def test_current_password_guesses_are_limited_per_account(
    app_factory: Any, db: Database
) -> None:
    app: FastAPI = app_factory(trusted_proxies=["127.0.0.1"])
    user = await create_user(db, "me@example.com")
    headers = auth_headers(user, app.state.settings)
    url = f"{API}/me/password"
    async with app.router.lifespan_context(app), _client(app) as c:
        for n in range(5):  # every guess from another address
            r = await c.post(
                url,
                json={"current_password": f"guess-{n}-xxxxxx", "new_password": "n" * 16},
                headers={**headers, **_from(f"10.0.0.{n}")},
            )
            assert_error(r, 400, "BAD_CREDENTIALS")
        r = await c.post(
            url,
            json={"current_password": PASSWORD, "new_password": "n" * 16},
            headers={**headers, **_from("10.9.9.9")},
        )
        assert_error(r, 429, "RATE_LIMITED")


async def test_verification_mails_to_one_address_are_limited(
    mail_app: FastAPI, inbox: Inbox
) -> None:
    mail_app.state.settings.trusted_proxies = ["127.0.0.1"]
    async with _client(mail_app) as c:
        r = await register(c, "slow@example.com")
        assert r.status_code == 202, r.text
        for n in range(9):  # three senders, three resends each
            r = await c.post(
                f"{API}/verify/resend",
                json={"email": "slow@example.com"},
                headers=_from(f"192.0.2.{n % 3}"),
            )
            assert r.status_code == 202  # the same answer, sent or not
        await asyncio.sleep(1.0)
    sent = [m for m in inbox.messages if m["To"] == "slow@example.com"]
    # the registration mail plus resends, never more than the hourly limit of the address
    assert 1 <= len(sent) <= mail_app.state.settings.verification_emails_per_address + 1
