"""Finding 6 of issue 11 (fuzzing): ids past their column range are 422 (were 500), NUL and
other control characters are refused in names, option booleans are strict."""

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
