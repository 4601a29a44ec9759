"""The web app's server side without a browser: the shell page and its CSP, static files,
the cookie session endpoints (flags, CSRF, rotation, logout, password change), the
highlighted file view and the admin users list."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from codeatlas.db.session import Database
from codeatlas.models import ProjectRole
from tests.code.helpers import make_project, multipart
from tests.factories import DEFAULT_PASSWORD, auth_headers, create_user

S = "/api/v1/auth/session"


async def _sign_in(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    r = await client.post(S, json={"email": email, "password": DEFAULT_PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", ["/", "/login", "/verify-email", "/projects/1/files/2", "/admin"])
async def test_app_paths_serve_the_shell_under_a_strict_csp(
    client: httpx.AsyncClient, path: str
) -> None:
    r = await client.get(path)
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    for directive in (
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ):
        assert directive in csp
    assert '<script type="module" src="/static/js/main.js' in r.text
    assert "<script>" not in r.text and " style=" not in r.text and " on" + "click" not in r.text


async def test_static_modules_are_served(client: httpx.AsyncClient) -> None:
    r = await client.get("/static/js/main.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    assert (await client.get("/static/app.css")).status_code == 200
    assert (await client.get("/static/nope.js")).status_code == 404


async def test_session_cookies_refresh_rotation_and_logout(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    body = await _sign_in(client, user.email)
    assert "refresh_token" not in body
    cookies = r_cookies = client.cookies
    refresh_cookie = cookies.get("ca_refresh")
    csrf = cookies.get("ca_csrf")
    assert refresh_cookie and csrf == body["csrf_token"]
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": "Bearer " + body["access_token"]}
    )
    assert me.status_code == 200

    # without the double-submit header: refused, cookie not consumed
    r = await client.post(f"{S}/refresh")
    assert r.status_code == 403 and r.json()["error_code"] == "CSRF_TOKEN_INVALID"
    r = await client.post(f"{S}/refresh", headers={"X-CSRF-Token": csrf, "Origin": "http://evil"})
    assert r.status_code == 403 and r.json()["error_code"] == "CSRF_ORIGIN_MISMATCH"

    r = await client.post(f"{S}/refresh", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    assert r_cookies.get("ca_refresh") != refresh_cookie  # rotated
    new_csrf = r.json()["csrf_token"]

    # the old refresh token replayed: reuse detected, the whole login revoked
    replay = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    replay.cookies.set("ca_refresh", refresh_cookie)
    replay.cookies.set("ca_csrf", "t")
    r = await replay.post(f"{S}/refresh", headers={"X-CSRF-Token": "t"})
    assert r.status_code == 401 and r.json()["error_code"] == "TOKEN_INVALID"
    await replay.aclose()
    r = await client.post(f"{S}/refresh", headers={"X-CSRF-Token": new_csrf})
    assert r.status_code == 401

    body = await _sign_in(client, user.email)
    r = await client.delete(S, headers={"X-CSRF-Token": body["csrf_token"]})
    assert r.status_code == 204
    assert "ca_refresh" not in client.cookies
    client.cookies.set("ca_csrf", "t")
    r = await client.post(f"{S}/refresh", headers={"X-CSRF-Token": "t"})
    assert r.status_code == 401 and r.json()["error_code"] == "SESSION_MISSING"


async def test_session_login_keeps_the_error_taxonomy(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    inactive = await create_user(db, is_active=False)
    r = await client.post(S, json={"email": user.email, "password": "wrong password!"})
    assert r.status_code == 401 and r.json()["error_code"] == "BAD_CREDENTIALS"
    r = await client.post(S, json={"email": inactive.email, "password": DEFAULT_PASSWORD})
    assert r.status_code == 403 and r.json()["error_code"] == "INACTIVE_ACCOUNT"
    assert "ca_refresh" not in client.cookies


async def test_password_change_keeps_this_session_only(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    other = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    other_body = await _sign_in(other, user.email)
    body = await _sign_in(client, user.email)
    r = await client.post(
        f"{S}/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "a brand new passphrase"},
        headers={
            "Authorization": "Bearer " + body["access_token"],
            "X-CSRF-Token": body["csrf_token"],
        },
    )
    assert r.status_code == 200, r.text
    mine = await client.post(f"{S}/refresh", headers={"X-CSRF-Token": r.json()["csrf_token"]})
    assert mine.status_code == 200
    theirs = await other.post(f"{S}/refresh", headers={"X-CSRF-Token": other_body["csrf_token"]})
    assert theirs.status_code == 401
    await other.aclose()


async def test_highlighted_file_and_admin_users(client: httpx.AsyncClient, db: Database) -> None:
    owner = await create_user(db)
    stranger = await create_user(db)
    admin = await create_user(db, is_admin=True)
    project_id = await make_project(db, {owner: ProjectRole.OWNER})
    settings = db.settings
    source = 'def f(x):\n    """Doc\n    string."""\n    return x < 1\n'
    body, ctype = multipart([("files", "pkg/mod.py", source.encode())])
    r = await client.post(
        f"/api/v1/projects/{project_id}/files",
        content=body,
        headers={**auth_headers(owner, settings), "Content-Type": ctype},
    )
    assert r.status_code == 201, r.text
    doc_id = r.json()["files"][0]["document_id"]
    url = f"/api/v1/projects/{project_id}/files/{doc_id}/highlighted"
    r = await client.get(url, headers=auth_headers(owner, settings))
    assert r.status_code == 200, r.text
    lines = r.json()["lines"]
    assert len(lines) == 4
    assert '<span class="k">def</span>' in lines[0]
    assert "&lt;" in lines[3]  # escaped
    assert all(line.count("<span") == line.count("</span>") for line in lines)
    assert (await client.get(url, headers=auth_headers(stranger, settings))).status_code == 404

    r = await client.get("/api/v1/admin/users", headers=auth_headers(owner, settings))
    assert r.status_code == 403
    r = await client.get("/api/v1/admin/users?limit=2", headers=auth_headers(admin, settings))
    assert r.status_code == 200
    page = r.json()
    assert len(page["items"]) == 2 and page["next_cursor"] is not None
    r = await client.get(
        f"/api/v1/admin/users?limit=2&cursor={page['next_cursor']}",
        headers=auth_headers(admin, settings),
    )
    assert [u["email"] for u in r.json()["items"]] == [admin.email]
