"""Uploads: roles, versions and no-ops, binary files, limits, all-or-nothing."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from codeatlas.db.session import Database
from codeatlas.models import CodeDocument
from tests.code.conftest import Team
from tests.code.helpers import error_code, files_under, multipart, project_files, upload


async def _docs(db: Database) -> list[CodeDocument]:
    async with db.session() as s:
        return list(await s.scalars(select(CodeDocument).order_by(CodeDocument.file_path)))


async def test_owner_and_editor_upload_viewer_gets_403_stranger_404(
    client: httpx.AsyncClient, team: Team, db: Database
) -> None:
    for user in (team.owner, team.editor):
        r = await upload(
            client, team.project_id, team.headers(user), files=[(f"{user.id}.py", b"x")]
        )
        assert r.status_code == 201, r.text
    r = await upload(client, team.project_id, team.headers(team.viewer), files=[("v.py", b"x")])
    assert (r.status_code, error_code(r)) == (403, "FORBIDDEN")
    r = await upload(client, team.project_id, team.headers(team.stranger), files=[("s.py", b"x")])
    assert (r.status_code, error_code(r)) == (404, "NOT_FOUND")
    r = await upload(client, 999_999, team.headers(team.owner), files=[("s.py", b"x")])
    assert (r.status_code, error_code(r)) == (404, "NOT_FOUND")
    r = await upload(client, team.project_id, {}, files=[("anon.py", b"x")])
    assert r.status_code == 401
    assert sorted(d.file_path for d in await _docs(db)) == sorted(
        [f"{team.owner.id}.py", f"{team.editor.id}.py"]
    )
    assert project_files(team.upload_root, team.project_id) == sorted(
        [f"{team.owner.id}.py", f"{team.editor.id}.py"]
    )


async def test_same_content_is_a_noop_new_content_a_new_version(
    client: httpx.AsyncClient, team: Team, db: Database
) -> None:
    h = team.headers(team.editor)
    r1 = await upload(client, team.project_id, h, files=[("a.py", b"v1\n")])
    assert r1.status_code == 201 and r1.json()["files"][0]["result"] == "created"
    doc_id = r1.json()["files"][0]["document_id"]
    before = (await _docs(db))[0]

    r2 = await upload(client, team.project_id, h, files=[("a.py", b"v1\n")])
    assert r2.status_code == 200
    assert r2.json()["files"][0] | {"document_id": doc_id} == r2.json()["files"][0]
    assert (r2.json()["unchanged"], r2.json()["files"][0]["result"]) == (1, "unchanged")
    same = (await _docs(db))[0]
    assert (same.version, same.updated_at) == (1, before.updated_at)

    r3 = await upload(client, team.project_id, h, files=[("a.py", b"v2\n")])
    assert r3.status_code == 201
    f = r3.json()["files"][0]
    assert (f["result"], f["version"], f["document_id"]) == ("updated", 2, doc_id)
    assert (team.project_dir / "a.py").read_bytes() == b"v2\n"
    doc = (await _docs(db))[0]
    assert (doc.version, doc.size, doc.status) == (2, 3, "pending")


async def test_binary_files_are_stored_but_not_parseable(
    client: httpx.AsyncClient, team: Team
) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    r = await upload(
        client,
        team.project_id,
        team.headers(team.editor),
        files=[
            ("img/logo.png", png),
            ("tool.py", b"#!/usr/bin/env python\n"),
            ("run", b"#!/bin/sh\necho\n"),
        ],
    )
    assert r.status_code == 201
    by_path = {f["path"]: f for f in r.json()["files"]}
    assert (
        by_path["img/logo.png"] | {"parseable": False, "language": None, "status": "searchable"}
        == by_path["img/logo.png"]
    )
    assert (by_path["tool.py"]["language"], by_path["tool.py"]["parseable"]) == ("python", True)
    assert by_path["run"]["language"] == "bash"  # from the shebang
    assert (team.project_dir / "img/logo.png").read_bytes() == png


async def test_many_files_in_one_request_and_nested_folders(
    client: httpx.AsyncClient, team: Team
) -> None:
    files = [(f"pkg{i % 7}/sub{i % 3}/m{i}.py", f"x = {i}\n".encode()) for i in range(120)]
    r = await upload(client, team.project_id, team.headers(team.owner), files=files)
    assert r.status_code == 201 and r.json()["created"] == 120
    assert len(project_files(team.upload_root, team.project_id)) == 120


async def test_duplicate_and_conflicting_paths_are_refused(
    client: httpx.AsyncClient, team: Team
) -> None:
    h = team.headers(team.owner)
    r = await upload(client, team.project_id, h, files=[("a.py", b"1"), ("./a.py", b"2")])
    assert (r.status_code, error_code(r)) == (400, "DUPLICATE_PATH")
    r = await upload(client, team.project_id, h, files=[("lib", b"1"), ("lib/x.py", b"2")])
    assert (r.status_code, error_code(r)) == (409, "PATH_CONFLICT")
    assert (await upload(client, team.project_id, h, files=[("src/x.py", b"1")])).status_code == 201
    r = await upload(client, team.project_id, h, files=[("src", b"file where a dir is")])
    assert (r.status_code, error_code(r)) == (409, "PATH_CONFLICT")
    r = await upload(client, team.project_id, h, files=[("src/x.py/y.py", b"dir where a file is")])
    assert (r.status_code, error_code(r)) == (409, "PATH_CONFLICT")
    assert project_files(team.upload_root, team.project_id) == ["src/x.py"]


@pytest.fixture
async def small_limits(app_factory: object) -> FastAPI:
    app: FastAPI = app_factory(  # type: ignore[operator]
        upload_max_file_bytes=1000, upload_max_files=5, upload_max_request_bytes=3000
    )
    async with app.router.lifespan_context(app):
        yield app


async def test_limits_are_refused_with_their_codes_and_leave_no_files(
    small_limits: FastAPI, team: Team, db: Database
) -> None:
    h = team.headers(team.owner)
    transport = httpx.ASGITransport(app=small_limits)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await upload(
            client, team.project_id, h, files=[("ok.py", b"x"), ("big.py", b"x" * 1001)]
        )
        assert (r.status_code, error_code(r)) == (413, "FILE_TOO_LARGE")
        r = await upload(client, team.project_id, h, files=[(f"f{i}.py", b"x") for i in range(6)])
        assert (r.status_code, error_code(r)) == (400, "TOO_MANY_FILES")
        r = await upload(
            client, team.project_id, h, files=[(f"f{i}.py", b"y" * 900) for i in range(5)]
        )
        assert (r.status_code, error_code(r)) == (413, "UPLOAD_TOO_LARGE")
        body, ctype = multipart([("files", f"f{i}.py", b"z" * 999) for i in range(4)])
        r = await client.post(  # a body that streams past the limit without Content-Length
            f"/api/v1/projects/{team.project_id}/files",
            content=_chunked(body),
            headers={**h, "Content-Type": ctype},
        )
        assert (r.status_code, error_code(r)) == (413, "UPLOAD_TOO_LARGE")
        r = await client.post(
            f"/api/v1/projects/{team.project_id}/files",
            content=b"x" * 30_000,
            headers={**h, "Content-Type": "multipart/form-data; boundary=x"},
        )
        assert (r.status_code, error_code(r)) == (413, "UPLOAD_TOO_LARGE")
        r = await client.post(f"/api/v1/projects/{team.project_id}/files", json={"a": 1}, headers=h)
        assert (r.status_code, error_code(r)) == (415, "UNSUPPORTED_MEDIA_TYPE")
        r = await client.post(
            f"/api/v1/projects/{team.project_id}/files",
            content=b"--x\r\nnot really",
            headers={**h, "Content-Type": "multipart/form-data; boundary=x"},
        )
        assert (r.status_code, error_code(r)) == (400, "INVALID_MULTIPART")
        body, ctype = multipart([("unknown", "a.py", b"x")])
        r = await client.post(
            f"/api/v1/projects/{team.project_id}/files",
            content=body,
            headers={**h, "Content-Type": ctype},
        )
        assert (r.status_code, error_code(r)) == (400, "UNKNOWN_FIELD")
        body, ctype = multipart([])
        r = await client.post(
            f"/api/v1/projects/{team.project_id}/files",
            content=body,
            headers={**h, "Content-Type": ctype},
        )
        assert (r.status_code, error_code(r)) == (400, "NO_FILES")
    assert await _docs(db) == []
    assert files_under(team.upload_root) == []


async def _chunked(body: bytes):  # type: ignore[no-untyped-def]
    for i in range(0, len(body), 4096):
        yield body[i : i + 4096]
        await asyncio.sleep(0)


async def test_a_failure_after_files_are_placed_undoes_them(
    client: httpx.AsyncClient, team: Team, db: Database
) -> None:
    """The database refuses the second write (CHECK constraint): the request rolls back and
    the file placed for the first write is taken back too, the old version restored."""
    h = team.headers(team.owner)
    assert (
        await upload(client, team.project_id, h, files=[("keep.py", b"old")])
    ).status_code == 201
    from codeatlas.code import service

    original = service._store_rows

    async def failing(session, project_id, items, tx):  # type: ignore[no-untyped-def]
        await original(session, project_id, items, tx)
        await asyncio.to_thread(tx.apply)
        raise RuntimeError("boom after the files were placed")

    service._store_rows = failing  # type: ignore[assignment]
    try:
        r = await upload(
            client, team.project_id, h, files=[("keep.py", b"new"), ("fresh.py", b"f")]
        )
    finally:
        service._store_rows = original  # type: ignore[assignment]
    assert r.status_code == 500
    assert project_files(team.upload_root, team.project_id) == ["keep.py"]
    assert (team.project_dir / "keep.py").read_bytes() == b"old"
    assert [(d.file_path, d.version) for d in await _docs(db)] == [("keep.py", 1)]
    assert [p for p in files_under(team.upload_root) if p.startswith(".txn")] == []


async def test_uploads_are_rate_limited(app_factory: object, team: Team) -> None:
    app: FastAPI = app_factory(rate_limit_upload="2/minute")  # type: ignore[operator]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            codes = [
                (
                    await upload(
                        client, team.project_id, team.headers(team.owner), files=[(f"{i}.py", b"x")]
                    )
                ).status_code
                for i in range(3)
            ]
            r = await upload(
                client, team.project_id, team.headers(team.owner), files=[("z.py", b"x")]
            )
    assert codes == [201, 201, 429]
    assert error_code(r) == "RATE_LIMITED" and "Retry-After" in r.headers
