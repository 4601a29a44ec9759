"""Knowledge-base entries through the API: CRUD with its permissions, embedding by the
`knowledge.embed_entry` job, and entries found by meaning (queries phrased differently from
the text) with the real local model and the embedded Qdrant engine."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from codeatlas.db.session import Database
from codeatlas.knowledge.runtime import KB_COLLECTION
from codeatlas.knowledge.vector_store import SearchFilter
from codeatlas.models import Job, KbEntryChunk
from tests.knowledge.conftest import Kit, Team

ENTRIES = {
    "deploy": (
        "Shipping a release to production",
        "Tag the commit, let CI build the container image, then roll it out with helm upgrade. "
        "Watch the dashboards for ten minutes before announcing it in the team channel.",
    ),
    "vpn": (
        "Remote access to the office network",
        "Install WireGuard, import the profile from the IT portal and connect before you open "
        "the internal wiki or the staging hosts.",
    ),
    "oncall": (
        "Being paged at night",
        "When PagerDuty calls, acknowledge within five minutes, open an incident document and "
        "escalate to the secondary if the database is involved.",
    ),
    "expenses": (
        "Getting reimbursed",
        "Photograph every receipt, submit the claim in the finance tool before the 5th of the "
        "following month; travel needs the manager's approval first.",
    ),
}
# Paraphrases sharing almost no words with the entry they should find.
QUERIES = {
    "how do I push a new version live?": "deploy",
    "connect my laptop to the company LAN from home": "vpn",
    "what to do when the alert phone rings after midnight": "oncall",
    "I paid for a train ticket, how do I get my money back": "expenses",
}


async def _create(kit: Kit, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = await kit.client.post("/api/v1/knowledge/entries", json=body, headers=headers)
    assert r.status_code == 201, r.text
    # Let its embedding job finish: on SQLite a request that reads then writes fails with
    # "database is locked" if a job commits in between (a platform limit, not this domain's).
    await kit.drain()
    return dict(r.json())


async def _search(kit: Kit, headers: dict[str, str], **body: Any) -> list[dict[str, Any]]:
    r = await kit.client.post("/api/v1/knowledge/search", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


async def test_entries_are_found_by_meaning(kit: Kit, team: Team) -> None:
    h = team.headers(team.owner)
    ids = {}
    for key, (title, content) in ENTRIES.items():
        ids[key] = (await _create(kit, h, title=title, content=content))["id"]
    await kit.drain()
    for query, expected in QUERIES.items():
        results = await _search(kit, h, query=query, top_k=3)
        assert results, query
        top = results[0]
        assert (top["kind"], top["entry_id"]) == ("entry", ids[expected]), (query, results)
        assert top["title"] == ENTRIES[expected][0]
        assert top["snippet"] and top["start_line"] == 1
        assert 0 < top["score"] <= 1
        assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)


async def test_crud_permissions_and_visibility(kit: Kit, team: Team, db: Database) -> None:
    c = kit.client
    project_entry = await _create(
        kit,
        team.headers(team.editor),
        title="Staging database",
        content="The staging database is restored from last night's backup every morning.",
        tags=["Ops", "db", "ops"],
        project_id=team.project_id,
    )
    assert project_entry["tags"] == ["ops", "db"] and project_entry["author_id"] == team.editor.id
    global_entry = await _create(
        kit, team.headers(team.stranger), title="Holidays", content="The office closes in August."
    )
    await kit.drain()

    # A viewer may read but not write the project's entries; a stranger sees nothing of it.
    body = {"title": "x", "content": "y", "project_id": team.project_id}
    r = await c.post("/api/v1/knowledge/entries", json=body, headers=team.headers(team.viewer))
    assert r.status_code == 403 and r.json()["error_code"] == "FORBIDDEN"
    r = await c.post("/api/v1/knowledge/entries", json=body, headers=team.headers(team.stranger))
    assert r.status_code == 404
    path = f"/api/v1/knowledge/entries/{project_entry['id']}"
    assert (await c.get(path, headers=team.headers(team.viewer))).status_code == 200
    assert (await c.get(path, headers=team.headers(team.stranger))).status_code == 404
    r = await c.patch(path, json={"title": "z"}, headers=team.headers(team.viewer))
    assert r.status_code == 403

    # Lists: members see both, the stranger only the global entry (theirs).
    r = await c.get("/api/v1/knowledge/entries", headers=team.headers(team.viewer))
    assert {e["id"] for e in r.json()["items"]} == {project_entry["id"], global_entry["id"]}
    r = await c.get("/api/v1/knowledge/entries", headers=team.headers(team.stranger))
    assert {e["id"] for e in r.json()["items"]} == {global_entry["id"]}
    r = await c.get(
        "/api/v1/knowledge/entries",
        params={"project_id": team.project_id},
        headers=team.headers(team.stranger),
    )
    assert r.status_code == 404
    r = await c.get(
        "/api/v1/knowledge/entries", params={"tag": "db"}, headers=team.headers(team.owner)
    )
    assert [e["id"] for e in r.json()["items"]] == [project_entry["id"]]

    # Search respects the same visibility.
    query = {"query": "is the test database refreshed from backups?", "top_k": 10}
    seen = await _search(kit, team.headers(team.viewer), **query)
    assert seen[0]["entry_id"] == project_entry["id"]
    assert seen[0]["project_id"] == team.project_id
    hidden = await _search(kit, team.headers(team.stranger), **query)
    assert project_entry["id"] not in {r["entry_id"] for r in hidden}
    r = await c.post(
        "/api/v1/knowledge/search",
        json={**query, "project_id": team.project_id},
        headers=team.headers(team.stranger),
    )
    assert r.status_code == 404

    # A global entry is changed by its author only.
    gpath = f"/api/v1/knowledge/entries/{global_entry['id']}"
    r = await c.patch(gpath, json={"content": "no"}, headers=team.headers(team.owner))
    assert r.status_code == 403
    r = await c.delete(gpath, headers=team.headers(team.stranger))
    assert r.status_code == 204
    assert (await c.get(gpath, headers=team.headers(team.stranger))).status_code == 404

    # Every write enqueued its job in the same transaction.
    async with db.session() as s:
        actors = sorted(await s.scalars(select(Job.actor)))
    assert actors == [
        "knowledge.delete_points",
        "knowledge.embed_entry",
        "knowledge.embed_entry",
    ]


async def test_update_replaces_vectors_and_delete_removes_them(
    kit: Kit, team: Team, db: Database
) -> None:
    h = team.headers(team.owner)
    long_content = "\n\n".join(
        f"Paragraph {i}: the build cache lives on the shared runner volume." for i in range(60)
    )
    entry = await _create(
        kit, h, title="CI caches", content=long_content, project_id=team.project_id
    )
    await kit.drain()
    store = kit.runtime.store()
    only_entry = SearchFilter(document_ids=[entry["id"]])
    async with db.session() as s:
        pieces = await s.scalar(select(func.count()).where(KbEntryChunk.entry_id == entry["id"]))
    assert pieces and pieces > 1  # long content was cut into several pieces
    assert len(await store.list_points(KB_COLLECTION, only_entry)) == pieces

    path = f"/api/v1/knowledge/entries/{entry['id']}"
    r = await kit.client.patch(
        path,
        json={"content": "Kubernetes nodes are drained before every kernel upgrade."},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["version"] == 2
    await kit.drain()
    points = await store.list_points(KB_COLLECTION, only_entry)
    assert len(points) == 1  # the stale pieces' points were deleted
    results = await _search(kit, h, query="how are machines patched safely?", top_k=1)
    assert results[0]["entry_id"] == entry["id"]
    assert "drained" in results[0]["snippet"]

    assert (await kit.client.delete(path, headers=h)).status_code == 204
    await kit.drain()
    assert await store.list_points(KB_COLLECTION, only_entry) == {}
    results = await _search(kit, h, query="how are machines patched safely?", top_k=5)
    assert entry["id"] not in {r["entry_id"] for r in results}


async def test_validation_errors(kit: Kit, team: Team) -> None:
    h = team.headers(team.owner)
    c = kit.client
    for body in ({"title": " ", "content": "x"}, {"title": "t"}, {"title": "t", "content": ""}):
        r = await c.post("/api/v1/knowledge/entries", json=body, headers=h)
        assert r.status_code == 422, body
    too_long = "x" * (team.settings.kb_entry_max_chars + 1)
    r = await c.post(
        "/api/v1/knowledge/entries", json={"title": "t", "content": too_long}, headers=h
    )
    assert r.status_code == 413 and r.json()["error_code"] == "ENTRY_TOO_LARGE"
    for body in ({"query": "  "}, {"query": "x", "top_k": 0}, {"query": "x", "kinds": ["doc"]}):
        r = await c.post("/api/v1/knowledge/search", json=body, headers=h)
        assert r.status_code == 422, body
    r = await c.post("/api/v1/knowledge/search", json={"query": "x"})
    assert r.status_code == 401
