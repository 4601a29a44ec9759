"""Login: the error taxonomy (1-C), the OAuth2 form, length limits and hash upgrades."""

from __future__ import annotations

import time

import httpx
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select

from codeatlas.auth.passwords import (
    MAX_PASSWORD_LENGTH,
    PasswordTooLong,
    hash_password,
    verify_password,
)
from codeatlas.db.session import Database, atomic
from codeatlas.models import User
from tests.auth.helpers import API, PASSWORD, assert_error, bearer, login, register
from tests.factories import create_user

ONE_MB = "x" * (1024 * 1024)


def _comparable(r: httpx.Response) -> tuple[int, dict[str, object], dict[str, str]]:
    body = r.json()
    body.pop("request_id")  # differs per request by design
    headers = {k: r.headers[k] for k in ("x-error-code", "www-authenticate", "content-type")}
    return r.status_code, body, headers


async def test_unknown_email_and_wrong_password_answer_identically(
    client: httpx.AsyncClient, db: Database
) -> None:
    await create_user(db, "known@example.com")
    unknown = await login(client, "nobody-here@example.com", "wrong password")
    wrong = await login(client, "known@example.com", "wrong password")
    assert_error(unknown, 401, "BAD_CREDENTIALS")
    assert _comparable(unknown) == _comparable(wrong)
    assert unknown.headers["www-authenticate"] == "Bearer"
    assert unknown.json()["message"] == "Incorrect e-mail or password"


async def test_inactive_account_is_only_revealed_to_the_right_password(
    client: httpx.AsyncClient, db: Database
) -> None:
    await create_user(db, "sleeping@example.com", is_active=False)
    assert_error(
        await login(client, "sleeping@example.com", "not it at all"), 401, "BAD_CREDENTIALS"
    )
    body = assert_error(await login(client, "sleeping@example.com"), 403, "INACTIVE_ACCOUNT")
    assert "verif" in str(body["message"])


async def test_login_returns_tokens_that_work(client: httpx.AsyncClient, db: Database) -> None:
    await create_user(db, "Alan@Example.com")
    r = await login(client, "  ALAN@example.com ")
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900
    me = await client.get(f"{API}/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200 and me.json()["email"] == "alan@example.com"


async def test_oauth2_password_form(client: httpx.AsyncClient, db: Database) -> None:
    await create_user(db, "form@example.com")
    r = await client.post(
        f"{API}/token",
        data={"username": "form@example.com", "password": PASSWORD, "grant_type": "password"},
    )
    assert r.status_code == 200, r.text
    assert (
        await client.get(f"{API}/me", headers=bearer(r.json()["access_token"]))
    ).status_code == 200
    bad = await client.post(f"{API}/token", data={"username": "form@example.com", "password": "no"})
    assert_error(bad, 401, "BAD_CREDENTIALS")
    other_grant = await client.post(
        f"{API}/token",
        data={"username": "form@example.com", "password": PASSWORD, "grant_type": "client"},
    )
    assert_error(other_grant, 422, "VALIDATION_ERROR")
    # Swagger's Authorize button posts here
    flows = (await client.get("/api/v1/openapi.json")).json()["components"]["securitySchemes"]
    assert flows["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"


async def test_one_megabyte_password_is_refused_before_hashing(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db, "big@example.com")
    started = time.perf_counter()
    answers = [
        await login(client, "big@example.com", ONE_MB),
        await register(client, "big2@example.com", ONE_MB),
    ]
    for r in answers:
        body = assert_error(r, 422, "VALIDATION_ERROR")
        assert any(d["loc"][-1] == "password" for d in body["details"])  # type: ignore[union-attr]
    # the form parser itself refuses a field over 1 MB (400); just under it, validation (422)
    form = await client.post(
        f"{API}/token", data={"username": "big@example.com", "password": ONE_MB}
    )
    assert_error(form, 400, "BAD_REQUEST")
    almost = ONE_MB[:-100]
    form = await client.post(
        f"{API}/token", data={"username": "big@example.com", "password": almost}
    )
    assert_error(form, 422, "VALIDATION_ERROR")
    from tests.factories import auth_headers

    change = await client.post(
        f"{API}/me/password",
        json={"current_password": ONE_MB, "new_password": ONE_MB},
        headers=auth_headers(user, db.settings),
    )
    assert_error(change, 422, "VALIDATION_ERROR")
    # validation runs before the endpoint, so no Argon2 ran; the bound is only generous
    assert time.perf_counter() - started < 10
    # and the helpers refuse it too, without hashing
    try:
        hash_password(ONE_MB)
        raise AssertionError("hash_password accepted a 1 MB password")
    except PasswordTooLong:
        pass
    assert verify_password(ONE_MB, user.password_hash) == (False, None)
    assert verify_password("x" * MAX_PASSWORD_LENGTH, user.password_hash)[0] is False


async def test_outdated_hash_is_upgraded_on_login(client: httpx.AsyncClient, db: Database) -> None:
    weak = Argon2Hasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    user = await create_user(db, "old@example.com")
    async with db.session() as s, atomic(s):
        stored = await s.get(User, user.id)
        assert stored is not None
        stored.password_hash = weak
    assert (await login(client, "old@example.com")).status_code == 200
    async with db.session() as s:
        upgraded = (
            await s.execute(select(User.password_hash).where(User.id == user.id))
        ).scalar_one()
    assert upgraded != weak and "m=65536,t=3,p=4" in upgraded
    assert (await login(client, "old@example.com")).status_code == 200
    assert_error(await login(client, "old@example.com", "wrong password"), 401, "BAD_CREDENTIALS")
