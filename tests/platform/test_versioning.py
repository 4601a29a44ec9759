"""5-B: only /api/v1 in the schema; un-versioned paths redirect, then are gone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx


async def test_openapi_lists_only_v1_paths(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    paths = list(r.json()["paths"])
    assert paths, "the schema should list the API"
    assert all(p.startswith("/api/v1/") for p in paths), paths
    assert (await client.get("/api/v1/docs")).status_code == 200
    assert (await client.get("/openapi.json")).status_code == 404


async def test_unversioned_path_redirects_with_deprecation_headers(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/api/system/version?a=1&b=two")
    assert r.status_code == 301
    assert r.headers["location"] == "/api/v1/system/version?a=1&b=two"
    assert r.headers["deprecation"] == "true"
    assert r.headers["sunset"].endswith("GMT")
    assert r.headers["link"] == '</api/v1/system/version?a=1&b=two>; rel="successor-version"'
    followed = await client.get(r.headers["location"])
    assert followed.status_code == 200
    assert (await client.head("/api/system/version")).status_code == 301
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        # 308: the client repeats the same method with the same body (301 turns POST into GET)
        r = await client.request(method, "/api/anything/else?x=1", json={"a": 1})
        assert r.status_code == 308, method
        assert r.headers["location"] == "/api/v1/anything/else?x=1"
        assert r.headers["deprecation"] == "true"


async def test_unknown_versioned_path_is_404_not_a_loop(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/no/such/thing")
    assert r.status_code == 404
    assert r.json()["error_code"] == "NOT_FOUND"


async def test_after_sunset_unversioned_is_410(app_factory) -> None:  # type: ignore[no-untyped-def]
    app = app_factory(api_legacy_sunset=datetime.now(UTC) - timedelta(days=1))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        r = await c.get("/api/system/version")
    assert r.status_code == 410
    assert r.json()["error_code"] == "API_VERSION_GONE"
    assert r.headers["x-error-code"] == "API_VERSION_GONE"


async def test_health_stays_unversioned(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).status_code == 200
    assert (await client.get("/health/ready")).status_code == 200
