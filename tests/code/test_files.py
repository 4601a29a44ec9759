"""A project's files: keyset pages with filters, detail, raw content, delete."""

from __future__ import annotations

import httpx
from sqlalchemy import update

from codeatlas.db.session import Database, atomic
from codeatlas.models import CodeDocument
from tests.code.conftest import Team
from tests.code.helpers import error_code, project_files, upload

PATHS = [
    "README.md",
    "src/a.py",
    "src/b.py",
    "src/sub/c.py",
    "src0/x.py",  # sorts right after "src/..." byte-wise: the prefix filter must not take it
    "src-old/y.py",
    "web/app.ts",
    "web/ünï.ts",
]


async def _seed(client: httpx.AsyncClient, team: Team) -> dict[str, int]:
    r = await upload(
        client, team.project_id, team.headers(team.editor), files=[(p, p.encode()) for p in PATHS]
    )
    assert r.status_code == 201, r.text
    return {f["path"]: f["document_id"] for f in r.json()["files"]}


async def _all_pages(client: httpx.AsyncClient, team: Team, **params: object) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        query = {k: v for k, v in {**params, "cursor": cursor}.items() if v is not None}
        r = await client.get(
            f"/api/v1/projects/{team.project_id}/files",
            params=query,
            headers=team.headers(team.viewer),
        )
        assert r.status_code == 200, r.text
        seen += [item["path"] for item in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return seen


async def test_keyset_pages_cover_every_file_once_in_path_order(
    client: httpx.AsyncClient, team: Team
) -> None:
    await _seed(client, team)
    for limit in (1, 2, 3, 50):
        assert await _all_pages(client, team, limit=limit) == sorted(PATHS, key=str.encode)


async def test_filters_language_status_and_path_prefix(
    client: httpx.AsyncClient, team: Team, db: Database
) -> None:
    ids = await _seed(client, team)
    assert await _all_pages(client, team, limit=2, path_prefix="src/") == [
        "src/a.py",
        "src/b.py",
        "src/sub/c.py",
    ]
    assert await _all_pages(client, team, language="typescript") == ["web/app.ts", "web/ünï.ts"]
    async with db.session() as s, atomic(s):
        await s.execute(
            update(CodeDocument).where(CodeDocument.id == ids["src/b.py"]).values(status="failed")
        )
    assert await _all_pages(client, team, status="failed") == ["src/b.py"]
    assert await _all_pages(
        client, team, status="pending", language="python", path_prefix="src"
    ) == [
        "src-old/y.py",
        "src/a.py",
        "src/sub/c.py",
        "src0/x.py",
    ]


async def test_bad_cursor_is_400(client: httpx.AsyncClient, team: Team) -> None:
    r = await client.get(
        f"/api/v1/projects/{team.project_id}/files",
        params={"cursor": "not-a-cursor"},
        headers=team.headers(team.viewer),
    )
    assert (r.status_code, error_code(r)) == (400, "INVALID_CURSOR")


async def test_detail_and_content(client: httpx.AsyncClient, team: Team) -> None:
    ids = await _seed(client, team)
    h = team.headers(team.viewer)
    r = await client.get(f"/api/v1/projects/{team.project_id}/files/{ids['web/ünï.ts']}", headers=h)
    assert r.status_code == 200
    assert r.json() | {"path": "web/ünï.ts", "name": "ünï.ts", "symbols": None} == r.json()
    r = await client.get(
        f"/api/v1/projects/{team.project_id}/files/{ids['web/ünï.ts']}/content", headers=h
    )
    assert r.status_code == 200
    assert r.content == "web/ünï.ts".encode()
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["etag"].strip('"') == r.headers["etag"].strip('"').lower()


async def test_other_projects_files_are_404(
    client: httpx.AsyncClient, team: Team, db: Database
) -> None:
    from codeatlas.models import ProjectRole
    from tests.code.helpers import make_project

    ids = await _seed(client, team)
    other = await make_project(db, {team.stranger: ProjectRole.OWNER}, name="other")
    h = team.headers(team.stranger)
    for url in (
        f"/api/v1/projects/{other}/files/{ids['README.md']}",
        f"/api/v1/projects/{team.project_id}/files/{ids['README.md']}",
        f"/api/v1/projects/{team.project_id}/files",
    ):
        r = await client.get(url, headers=h)
        assert (r.status_code, error_code(r)) == (404, "NOT_FOUND"), url


async def test_delete_removes_row_and_file_viewer_cannot(
    client: httpx.AsyncClient, team: Team
) -> None:
    ids = await _seed(client, team)
    url = f"/api/v1/projects/{team.project_id}/files/{ids['src/sub/c.py']}"
    r = await client.delete(url, headers=team.headers(team.viewer))
    assert (r.status_code, error_code(r)) == (403, "FORBIDDEN")
    r = await client.delete(url, headers=team.headers(team.stranger))
    assert (r.status_code, error_code(r)) == (404, "NOT_FOUND")
    assert (team.project_dir / "src/sub/c.py").exists()

    r = await client.delete(url, headers=team.headers(team.editor))
    assert r.status_code == 204
    assert not (team.project_dir / "src/sub").exists()  # emptied directories go too
    assert "src/sub/c.py" not in project_files(team.upload_root, team.project_id)
    assert (await client.get(url, headers=team.headers(team.editor))).status_code == 404
    assert (await client.delete(url, headers=team.headers(team.editor))).status_code == 404
    # and the path can be used again
    r = await upload(
        client, team.project_id, team.headers(team.editor), files=[("src/sub/c.py", b"again")]
    )
    assert r.status_code == 201 and r.json()["files"][0]["version"] == 1


async def test_missing_content_is_reported_not_500(client: httpx.AsyncClient, team: Team) -> None:
    ids = await _seed(client, team)
    (team.project_dir / "README.md").unlink()
    r = await client.get(
        f"/api/v1/projects/{team.project_id}/files/{ids['README.md']}/content",
        headers=team.headers(team.viewer),
    )
    assert (r.status_code, error_code(r)) == (404, "CONTENT_MISSING")
