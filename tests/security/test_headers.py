"""Finding 7 of issue 11: security headers on every answer, a strict CSP on HTML pages, HSTS
only when configured, CORS closed unless an allow-list is set, no `server` header."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from codeatlas.db.session import Database
from tests.auth.serving import serve_env, serving
from tests.factories import auth_headers, create_user

STRICT = {
    "default-src": "'self'",
    "script-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
}


def _csp(r: httpx.Response) -> dict[str, str]:
    policy = r.headers["content-security-policy"]
    return {
        part.split()[0]: " ".join(part.split()[1:])
        for part in (p.strip() for p in policy.split(";"))
        if part
    }


def _common(r: httpx.Response) -> None:
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    assert _csp(r)["frame-ancestors"] == "'none'"
    assert "server" not in r.headers
    assert "strict-transport-security" not in r.headers
    assert not any(h.startswith("access-control-") for h in r.headers)


def _strict_html(r: httpx.Response) -> None:
    assert r.headers["content-type"].startswith("text/html")
    csp = _csp(r)
    for directive, value in STRICT.items():
        assert csp[directive] == value, (directive, csp)
    assert "unsafe-inline" not in csp["script-src"]
    # no inline script in the page itself: every <script> has a same-origin src
    for tag in re.findall(r"<script[^>]*>", r.text):
        assert re.search(r'src="/', tag), tag


async def test_every_kind_of_answer_carries_the_headers(
    client: httpx.AsyncClient, db: Database, settings
) -> None:  # type: ignore[no-untyped-def]
    admin = await create_user(db, "admin@example.com", is_admin=True)
    origin = {"Origin": "https://evil.example"}
    answers = [
        await client.get("/health/live", headers=origin),
        await client.get("/api/v1/openapi.json"),
        await client.get("/api/v1/no/such/route"),  # error envelope
        await client.get("/api/v1/auth/me"),  # 401
        await client.get("/api/system/version"),  # legacy redirect
        await client.post("/api/v1/auth/login", content=b"{", headers=origin),
        await client.options(
            "/api/v1/auth/login",
            headers={**origin, "Access-Control-Request-Method": "POST"},
        ),
    ]
    for r in answers:
        _common(r)
    assert _csp(answers[1])["default-src"] == "'none'"  # JSON is never a document

    page = await client.get("/admin/jobs", headers=auth_headers(admin, settings))
    assert page.status_code == 200
    _common(page)
    _strict_html(page)

    docs = await client.get("/api/v1/docs")
    assert docs.status_code == 200
    _common(docs)
    _strict_html(docs)
    assert "cdn" not in docs.text.lower()
    for src in re.findall(r'(?:src|href)="(/[^"]+)"', docs.text):
        asset = await client.get(src)
        assert asset.status_code == 200, src
        _common(asset)
    assert (await client.get("/api/v1/docs/assets/..%2f..%2fsettings.py")).status_code == 404


async def test_hsts_only_when_configured(app_factory) -> None:  # type: ignore[no-untyped-def]
    app = app_factory(hsts_max_age=31536000)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://t") as c,
    ):
        r = await c.get("/health/live")
    assert r.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_cors_answers_only_listed_origins(app_factory) -> None:  # type: ignore[no-untyped-def]
    app = app_factory(cors_allow_origins=["https://app.example"])
    preflight = {"Access-Control-Request-Method": "POST"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        ok = await c.options(
            "/api/v1/auth/login", headers={"Origin": "https://app.example", **preflight}
        )
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-credentials" not in ok.headers
        other = await c.get("/health/live", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        simple = await c.get("/health/live", headers={"Origin": "https://app.example"})
        assert simple.headers["access-control-allow-origin"] == "https://app.example"


def test_cors_setting_refuses_a_wildcard() -> None:
    from codeatlas.settings import Settings

    with pytest.raises(ValueError, match="CORS_ALLOW_ORIGINS"):
        Settings(env="test", cors_allow_origins="*")
    assert Settings(
        env="test", cors_allow_origins="https://a.example/, https://b.example"
    ).cors_allow_origins == ["https://a.example", "https://b.example"]


@pytest.mark.slow
def test_codeatlas_serve_sends_no_server_header(tmp_path: Path) -> None:
    env = serve_env(DATA_DIR=str(tmp_path))
    with serving(env, tmp_path / "serve.log") as (port, _):
        r = httpx.get(f"http://127.0.0.1:{port}/health/live")
    assert r.status_code == 200
    assert "server" not in r.headers
    _common(r)


async def test_options_lists_the_documented_methods_without_opening_cors(
    client: httpx.AsyncClient,
) -> None:
    """Issue 11, finding 6: OPTIONS was 405 (with the methods of one route only)."""
    document = (await client.get("/api/v1/openapi.json")).json()
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"}
    for template, operations in document["paths"].items():
        path = re.sub(r"\{[^}]+\}", "7", template)
        r = await client.options(path, headers=preflight)
        assert r.status_code == 204, (path, r.status_code)
        allowed = {m.strip() for m in r.headers["allow"].split(",")}
        assert allowed == {m.upper() for m in operations} | {"OPTIONS"}, path
        assert not [h for h in r.headers if h.startswith("access-control-")], path
        _common(r)
    r = await client.options("/api/v1/projects")
    assert r.headers["allow"] == "GET, POST, OPTIONS"  # two routes, one path
    assert (await client.options("/api/v1/no/such/route")).status_code == 404
