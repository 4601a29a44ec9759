"""Projects and members: CRUD, 404 for strangers, roles, the last owner stays."""

from __future__ import annotations

import httpx

from codeatlas.db.session import Database
from codeatlas.settings import Settings
from tests.code.helpers import make_user, upload
from tests.factories import auth_headers

API = "/api/v1/projects"


async def test_project_lifecycle_and_roles(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    alice, bob, carol, mallory = [await make_user(db) for _ in range(4)]
    ha, hb, hc, hm = (auth_headers(u, settings) for u in (alice, bob, carol, mallory))

    r = await client.post(API, json={"name": " Atlas ", "description": "d"}, headers=ha)
    assert r.status_code == 201, r.text
    project = r.json()
    pid = project["id"]
    assert (project["name"], project["role"]) == ("Atlas", "owner")

    # strangers see nothing, and cannot tell it exists
    for method, url in [
        ("GET", f"{API}/{pid}"),
        ("GET", f"{API}/{pid}/members"),
        ("PATCH", f"{API}/{pid}"),
        ("DELETE", f"{API}/{pid}"),
    ]:
        r = await client.request(
            method, url, headers=hm, json={"name": "x"} if method == "PATCH" else None
        )
        assert (r.status_code, r.json()["error_code"]) == (404, "NOT_FOUND"), (method, url)
    missing = await client.get(f"{API}/{pid + 1000}", headers=hm)
    assert (
        missing.json()["message"]
        == (await client.get(f"{API}/{pid}", headers=hm)).json()["message"]
    )
    assert (await client.get(API, headers=hm)).json() == []

    r = await client.post(
        f"{API}/{pid}/members", json={"email": bob.email, "role": "editor"}, headers=ha
    )
    assert r.status_code == 202 and r.json()["role"] == "editor"
    r = await client.post(f"{API}/{pid}/members", json={"email": carol.email}, headers=ha)
    assert r.status_code == 202 and r.json()["role"] == "viewer"
    r = await client.post(f"{API}/{pid}/members", json={"email": carol.email}, headers=ha)
    assert (r.status_code, r.json()["error_code"]) == (409, "ALREADY_MEMBER")
    # an address without an account is invited, not refused (tests/auth/test_enumeration.py)
    r = await client.post(f"{API}/{pid}/members", json={"email": "nobody@example.com"}, headers=ha)
    assert r.status_code == 202 and r.json()["status"] == "invited"
    r = await client.post(f"{API}/{pid}/members", json={"email": "not an address"}, headers=ha)
    assert (r.status_code, r.json()["error_code"]) == (422, "VALIDATION_ERROR")
    r = await client.post(f"{API}/{pid}/members", json={"email": mallory.email}, headers=hb)
    assert (r.status_code, r.json()["error_code"]) == (403, "FORBIDDEN")

    assert [p["role"] for p in (await client.get(API, headers=hc)).json()] == ["viewer"]
    r = await client.patch(f"{API}/{pid}", json={"description": "new"}, headers=hb)
    assert r.status_code == 200 and r.json()["description"] == "new"
    r = await client.patch(f"{API}/{pid}", json={"name": "nope"}, headers=hc)
    assert r.status_code == 403
    members = (await client.get(f"{API}/{pid}/members", headers=hc)).json()
    assert {m["user_id"]: m["role"] for m in members} == {
        alice.id: "owner",
        bob.id: "editor",
        carol.id: "viewer",
    }

    # the last owner can neither leave nor be demoted
    r = await client.patch(f"{API}/{pid}/members/{alice.id}", json={"role": "editor"}, headers=ha)
    assert (r.status_code, r.json()["error_code"]) == (409, "LAST_OWNER")
    r = await client.delete(f"{API}/{pid}/members/{alice.id}", headers=ha)
    assert (r.status_code, r.json()["error_code"]) == (409, "LAST_OWNER")
    r = await client.patch(f"{API}/{pid}/members/{bob.id}", json={"role": "owner"}, headers=ha)
    assert r.status_code == 200 and r.json()["role"] == "owner"
    assert (await client.delete(f"{API}/{pid}/members/{alice.id}", headers=ha)).status_code == 204
    assert (await client.get(f"{API}/{pid}", headers=ha)).status_code == 404

    # a viewer may leave, but not remove others
    r = await client.delete(f"{API}/{pid}/members/{bob.id}", headers=hc)
    assert r.status_code == 403
    assert (await client.delete(f"{API}/{pid}/members/{carol.id}", headers=hc)).status_code == 204
    r = await client.delete(f"{API}/{pid}/members/{carol.id}", headers=hb)
    assert (r.status_code, r.json()["error_code"]) == (404, "NOT_FOUND")


async def test_delete_project_removes_documents_and_files(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    owner, editor = await make_user(db), await make_user(db)
    ho, he = auth_headers(owner, settings), auth_headers(editor, settings)
    pid = (await client.post(API, json={"name": "doomed"}, headers=ho)).json()["id"]
    await client.post(
        f"{API}/{pid}/members", json={"email": editor.email, "role": "editor"}, headers=ho
    )
    assert (await upload(client, pid, he, files=[("a/b.py", b"1")])).status_code == 201
    project_dir = settings.UPLOAD_ROOT / str(pid)
    assert (project_dir / "a/b.py").exists()

    assert (await client.delete(f"{API}/{pid}", headers=he)).status_code == 403
    assert (await client.delete(f"{API}/{pid}", headers=ho)).status_code == 204
    assert not project_dir.exists()
    assert list((settings.UPLOAD_ROOT / ".txn").iterdir()) == []
    assert (await client.get(f"{API}/{pid}/files", headers=ho)).status_code == 404
    r = await client.get("/api/v1/search/files", params={"q": "b.py"}, headers=he)
    assert r.json()["results"] == []


async def test_validation_errors(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    h = auth_headers(await make_user(db), settings)
    assert (await client.post(API, json={"name": ""}, headers=h)).status_code == 422
    assert (await client.post(API, json={"name": "x" * 201}, headers=h)).status_code == 422
    assert (await client.get(f"{API}/0", headers=h)).status_code == 422
    assert (await client.post(API, json={"name": "x"})).status_code == 401
