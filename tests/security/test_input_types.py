"""Finding 6 of issue 11 (fuzzing): ids past their column range are 422 (were 500), NUL and
other control characters are refused in names (NUL in every text input), option booleans are
strict, an unparsable body is a documented 400, timestamps carry their offset. The whole-API
schemathesis run is `test_fuzz.py`."""

from __future__ import annotations

import httpx

from codeatlas.db.session import Database
from tests.factories import auth_headers, create_user


async def test_out_of_range_ids_are_422_not_500(
    client: httpx.AsyncClient, db: Database, settings
) -> None:  # type: ignore[no-untyped-def]
    admin = await create_user(db, "root@example.com", is_admin=True)
    headers = auth_headers(admin, settings)
    huge = 2**64
    for method, path in [
        ("GET", f"/api/v1/admin/jobs/{huge}"),
        ("POST", f"/api/v1/admin/jobs/{huge}/retry"),
        ("POST", f"/api/v1/admin/jobs/{2**31}/cancel"),
        ("GET", f"/api/v1/admin/jobs?project_id={huge}"),
        ("GET", f"/api/v1/admin/jobs?document_id={-1}"),
    ]:
        r = await client.request(method, path, headers=headers)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error_code"] == "VALIDATION_ERROR"
    assert (await client.get("/api/v1/admin/jobs/1", headers=headers)).status_code == 404


async def test_control_characters_are_refused_in_names(
    client: httpx.AsyncClient, db: Database, settings
) -> None:  # type: ignore[no-untyped-def]
    user = await create_user(db, "named@example.com")
    headers = auth_headers(user, settings)
    for bad in ("a\x00b", "line\nbreak", "bell\x07", "sep\u2028x"):
        r = await client.post("/api/v1/projects", json={"name": bad}, headers=headers)
        assert r.status_code == 422, r.text
        r = await client.patch("/api/v1/auth/me", json={"full_name": bad}, headers=headers)
        assert r.status_code == 422, r.text
    r = await client.post("/api/v1/projects", json={"name": "Ünïcode ok"}, headers=headers)
    assert r.status_code == 201, r.text


async def test_nul_characters_are_refused_in_every_text_input(
    client: httpx.AsyncClient, db: Database, settings
) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL cannot store NUL in text: these were 500s there (found by the fuzzer)."""
    user = await create_user(db, "nul@example.com")
    headers = auth_headers(user, settings)
    r = await client.post("/api/v1/projects", json={"name": "p"}, headers=headers)
    assert r.status_code == 201, r.text
    cases = [
        (
            "POST",
            "/api/v1/projects",
            {"name": "p", "description": "a\x00b"},
            ["body", "description"],
        ),
        (
            "POST",
            "/api/v1/knowledge/entries",
            {"title": "t\x00", "content": "c"},
            ["body", "title"],
        ),
        (
            "POST",
            "/api/v1/knowledge/entries",
            {"title": "t", "content": "c", "tags": ["a", "\x00"]},
            ["body", "tags", 1],
        ),
        ("POST", "/api/v1/chats", {"title": "\x00"}, ["body", "title"]),
        ("POST", "/api/v1/search", {"query": "a\x00"}, ["body", "query"]),
        ("GET", "/api/v1/search/files?q=a%00b", None, ["query", "q"]),
        (
            "POST",
            "/api/v1/auth/login",
            {"email": "nul@example.com", "password": "x\x00"},
            ["body", "password"],
        ),
    ]
    for method, path, body, loc in cases:
        r = await client.request(method, path, json=body, headers=headers)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error_code"] == "VALIDATION_ERROR"
        assert loc in [d["loc"] for d in r.json()["details"]], r.text
    r = await client.post(
        "/api/v1/auth/token", data={"username": "nul@example.com", "password": "a\x00"}
    )
    assert r.status_code == 422, r.text
    # newlines and tabs in free text stay welcome
    r = await client.post(
        "/api/v1/projects", json={"name": "q", "description": "a\n\tb"}, headers=headers
    )
    assert r.status_code == 201, r.text


async def test_unparsable_body_is_a_documented_400(
    client: httpx.AsyncClient, db: Database, settings
) -> None:  # type: ignore[no-untyped-def]
    user = await create_user(db, "body@example.com")
    r = await client.post(
        "/api/v1/projects",
        content=b"\xff\xfe{",
        headers={**auth_headers(user, settings), "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "MALFORMED_BODY"
    document = (await client.get("/api/v1/openapi.json")).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                assert "400" in operation["responses"], (method, path)


async def test_timestamps_carry_their_utc_offset(
    client: httpx.AsyncClient, db: Database, settings
) -> None:  # type: ignore[no-untyped-def]
    """SQLite gave naive datetimes: `2026-12-01T19:19:16.338802` is no OpenAPI date-time."""
    from datetime import datetime

    user = await create_user(db, "time@example.com")
    headers = auth_headers(user, settings)
    project = (await client.post("/api/v1/projects", json={"name": "t"}, headers=headers)).json()
    chat = (await client.post("/api/v1/chats", json={"title": "t"}, headers=headers)).json()
    for stamp in (project["created_at"], project["updated_at"], chat["created_at"]):
        assert datetime.fromisoformat(stamp).utcoffset() is not None, stamp
