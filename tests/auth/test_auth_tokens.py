"""Access tokens (alg none, wrong signature, expiry), refresh rotation and reuse, logout,
password change."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import timedelta

import httpx
import jwt
from sqlalchemy import select, update

from codeatlas.db.base import utcnow
from codeatlas.db.session import Database, atomic
from codeatlas.models import RefreshToken, User
from codeatlas.settings import Settings
from tests.auth.helpers import API, PASSWORD, assert_error, bearer, login
from tests.factories import auth_headers, create_user


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(f"{API}/me", headers=bearer(token))


async def test_forged_and_expired_access_tokens(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    user = await create_user(db, "jwt@example.com")
    now = int(time.time())
    claims = {"sub": str(user.id), "iat": now, "exp": now + 600, "typ": "access", "ver": 0}
    alg_none = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    wrong_key = jwt.encode(claims, "not-the-server-secret-but-long-enough!", algorithm="HS256")
    other_alg = jwt.encode(claims, settings.secret_key, algorithm="HS512")
    expired = jwt.encode({**claims, "iat": now - 700, "exp": now - 100}, settings.secret_key)
    not_access = jwt.encode({**claims, "typ": "verify-email"}, settings.secret_key)
    no_sub = jwt.encode({k: v for k, v in claims.items() if k != "sub"}, settings.secret_key)
    unknown_user = jwt.encode({**claims, "sub": "987654"}, settings.secret_key)

    for token in [alg_none, wrong_key, other_alg, not_access, no_sub, unknown_user, "x.y.z"]:
        r = await _me(client, token)
        assert_error(r, 401, "TOKEN_INVALID")
        assert r.headers["www-authenticate"] == "Bearer"
    assert_error(await _me(client, expired), 401, "TOKEN_EXPIRED")
    assert_error(await client.get(f"{API}/me"), 401, "UNAUTHORIZED")
    valid = jwt.encode(claims, settings.secret_key, algorithm="HS256")
    assert (await _me(client, valid)).status_code == 200


async def _pair(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    r = await login(client, email, password)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(f"{API}/refresh", json={"refresh_token": token})


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: httpx.AsyncClient, db: Database
) -> None:
    await create_user(db, "rotate@example.com")
    first = await _pair(client, "rotate@example.com")
    other_device = await _pair(client, "rotate@example.com")

    r = await _refresh(client, first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await _me(client, second["access_token"])).status_code == 200

    # the old token again: reuse. It is refused and its family (incl. `second`) revoked.
    assert_error(await _refresh(client, first["refresh_token"]), 401, "TOKEN_INVALID")
    assert_error(await _refresh(client, second["refresh_token"]), 401, "TOKEN_INVALID")
    # another login's family is untouched
    assert (await _refresh(client, other_device["refresh_token"])).status_code == 200

    async with db.session() as s:
        rows = (await s.execute(select(RefreshToken))).scalars().all()
    assert all(len(r.token_hash) == 64 for r in rows)
    tokens = {first["refresh_token"], second["refresh_token"], other_device["refresh_token"]}
    assert not {r.token_hash for r in rows} & tokens  # only hashes are stored


async def test_concurrent_refreshes_of_one_token_let_exactly_one_win(
    client: httpx.AsyncClient, db: Database
) -> None:
    await create_user(db, "race@example.com")
    pair = await _pair(client, "race@example.com")
    answers = await asyncio.gather(*(_refresh(client, pair["refresh_token"]) for _ in range(2)))
    assert sorted(r.status_code for r in answers) == [200, 401]
    winner = next(r for r in answers if r.status_code == 200).json()
    # the loser counted as reuse, so the winner's successor is revoked as well
    assert_error(await _refresh(client, winner["refresh_token"]), 401, "TOKEN_INVALID")


async def test_expired_and_unknown_refresh_tokens(client: httpx.AsyncClient, db: Database) -> None:
    await create_user(db, "expiry@example.com")
    pair = await _pair(client, "expiry@example.com")
    async with db.session() as s, atomic(s):
        await s.execute(update(RefreshToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert_error(await _refresh(client, pair["refresh_token"]), 401, "TOKEN_EXPIRED")
    assert_error(await _refresh(client, "no-such-token"), 401, "TOKEN_INVALID")


async def test_logout_revokes_the_refresh_token(client: httpx.AsyncClient, db: Database) -> None:
    await create_user(db, "bye@example.com")
    pair = await _pair(client, "bye@example.com")
    r = await client.post(f"{API}/logout", json={"refresh_token": pair["refresh_token"]})
    assert r.status_code == 204
    assert_error(await _refresh(client, pair["refresh_token"]), 401, "TOKEN_INVALID")
    again = await client.post(f"{API}/logout", json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 204


async def test_password_change_revokes_sessions(client: httpx.AsyncClient, db: Database) -> None:
    await create_user(db, "change@example.com")
    a = await _pair(client, "change@example.com")
    b = await _pair(client, "change@example.com")

    wrong = await client.post(
        f"{API}/me/password",
        json={"current_password": "not my password", "new_password": "a brand new password"},
        headers=bearer(a["access_token"]),
    )
    assert_error(wrong, 400, "BAD_CREDENTIALS")

    r = await client.post(
        f"{API}/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new password"},
        headers=bearer(a["access_token"]),
    )
    assert r.status_code == 200, r.text
    fresh = r.json()
    for old in (a, b):
        assert_error(await _refresh(client, old["refresh_token"]), 401, "TOKEN_INVALID")
        assert_error(await _me(client, old["access_token"]), 401, "TOKEN_INVALID")
    assert (await _me(client, fresh["access_token"])).status_code == 200
    assert (await _refresh(client, fresh["refresh_token"])).status_code == 200
    assert_error(await login(client, "change@example.com"), 401, "BAD_CREDENTIALS")
    assert (await login(client, "change@example.com", "a brand new password")).status_code == 200


async def test_profile_read_and_update(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db, "profile@example.com", full_name="Old Name")
    headers = auth_headers(user, db.settings)
    me = await client.get(f"{API}/me", headers=headers)
    assert me.json()["full_name"] == "Old Name" and me.json()["is_admin"] is False
    r = await client.patch(f"{API}/me", json={"full_name": "  New Name "}, headers=headers)
    assert r.status_code == 200 and r.json()["full_name"] == "New Name"
    async with db.session() as s:
        assert (await s.get(User, user.id)).full_name == "New Name"  # type: ignore[union-attr]
    assert_error(
        await client.patch(f"{API}/me", json={"full_name": "x" * 201}, headers=headers),
        422,
        "VALIDATION_ERROR",
    )


async def test_deactivated_user_token_is_refused(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db, "gone@example.com")
    pair = await _pair(client, "gone@example.com")
    async with db.session() as s, atomic(s):
        await s.execute(update(User).where(User.id == user.id).values(is_active=False))
    assert_error(await _me(client, pair["access_token"]), 403, "INACTIVE_ACCOUNT")
    assert_error(await _refresh(client, pair["refresh_token"]), 403, "INACTIVE_ACCOUNT")
