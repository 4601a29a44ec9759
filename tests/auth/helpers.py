"""Small request helpers shared by the auth tests."""

from __future__ import annotations

import httpx

API = "/api/v1/auth"
PASSWORD = "correct horse battery staple"


async def register(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, full_name: str = "Ada"
) -> httpx.Response:
    return await client.post(
        f"{API}/register", json={"email": email, "password": password, "full_name": full_name}
    )


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **kwargs: object
) -> httpx.Response:
    return await client.post(
        f"{API}/login",
        json={"email": email, "password": password},
        **kwargs,  # type: ignore[arg-type]
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error_code"] == code, body
    assert r.headers["x-error-code"] == code
    return body  # type: ignore[no-any-return]
