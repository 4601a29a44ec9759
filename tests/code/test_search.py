"""Filename search (ranked, scoped to the caller's projects) and the search history."""

from __future__ import annotations

import httpx

from codeatlas.db.session import Database
from codeatlas.models import ProjectRole
from tests.code.conftest import Team
from tests.code.helpers import error_code, make_project, upload

PATHS = [
    "src/router.py",
    "src/api/routers/__init__.py",
    "src/routerlib/x.py",
    "tests/test_router.py",
    "docs/ROUTER.md",
    "lib/router_utils.py",
    "lib/other.py",
    "pkg/100%_done.txt",
    "pkg/snake_case.py",
]


async def _search(
    client: httpx.AsyncClient, headers: dict[str, str], **params: object
) -> httpx.Response:
    return await client.get("/api/v1/search/files", params=params, headers=headers)


async def test_ranking_exact_then_prefix_then_substring(
    client: httpx.AsyncClient, team: Team
) -> None:
    h = team.headers(team.editor)
    assert (
        await upload(client, team.project_id, h, files=[(p, b"x") for p in PATHS])
    ).status_code == 201
    r = await _search(client, h, q="Router.py")
    assert r.status_code == 200
    assert [(x["path"], x["match"]) for x in r.json()["results"]] == [
        ("src/router.py", "exact"),
        ("tests/test_router.py", "substring"),
    ]
    r = await _search(client, h, q="router")
    got = [(x["path"], x["match"]) for x in r.json()["results"]]
    assert got[:2] == [("docs/ROUTER.md", "prefix"), ("src/router.py", "prefix")]
    assert set(got[2:]) == {
        ("lib/router_utils.py", "prefix"),
        ("src/routerlib/x.py", "substring"),
        ("tests/test_router.py", "substring"),
        ("src/api/routers/__init__.py", "substring"),
    }
    assert [m for _, m in got] == sorted(
        (m for _, m in got), key=["exact", "prefix", "substring"].index
    )
    r = await _search(client, h, q="src/api")
    assert [x["path"] for x in r.json()["results"]] == ["src/api/routers/__init__.py"]


async def test_like_wildcards_are_literal(client: httpx.AsyncClient, team: Team) -> None:
    h = team.headers(team.editor)
    await upload(client, team.project_id, h, files=[(p, b"x") for p in PATHS])
    assert [x["path"] for x in (await _search(client, h, q="100%")).json()["results"]] == [
        "pkg/100%_done.txt"
    ]
    assert [x["path"] for x in (await _search(client, h, q="e_c")).json()["results"]] == [
        "pkg/snake_case.py"
    ]
    assert (await _search(client, h, q="0%_")).json()["results"][0]["path"] == "pkg/100%_done.txt"
    # under three characters only basenames are matched (no trigram for a substring)
    assert [x["match"] for x in (await _search(client, h, q="ut")).json()["results"]] == []
    assert [x["path"] for x in (await _search(client, h, q="ot")).json()["results"]] == [
        "lib/other.py"
    ]
    assert (await _search(client, h, q="nothing-like-this")).json()["results"] == []


async def test_scope_is_my_projects_or_one_of_them(
    client: httpx.AsyncClient, team: Team, db: Database
) -> None:
    await upload(
        client, team.project_id, team.headers(team.owner), files=[("shared/util.py", b"1")]
    )
    mine = await make_project(db, {team.stranger: ProjectRole.OWNER}, name="mine")
    r = await upload(client, mine, team.headers(team.stranger), files=[("private/util.py", b"2")])
    assert r.status_code == 201

    r = await _search(client, team.headers(team.stranger), q="util")
    assert [x["path"] for x in r.json()["results"]] == ["private/util.py"]
    r = await _search(client, team.headers(team.viewer), q="util")
    assert [x["path"] for x in r.json()["results"]] == ["shared/util.py"]
    r = await _search(client, team.headers(team.viewer), q="util", project_id=mine)
    assert (r.status_code, error_code(r)) == (404, "NOT_FOUND")
    r = await _search(client, team.headers(team.stranger), q="util", project_id=mine)
    assert [x["project_id"] for x in r.json()["results"]] == [mine]


async def test_limit_and_truncated(client: httpx.AsyncClient, team: Team) -> None:
    h = team.headers(team.owner)
    await upload(client, team.project_id, h, files=[(f"m/mod{i:02}.py", b"x") for i in range(30)])
    r = await _search(client, h, q="mod", limit=10)
    body = r.json()
    assert len(body["results"]) == 10 and body["truncated"] is True
    assert [x["path"] for x in body["results"]] == [f"m/mod{i:02}.py" for i in range(10)]
    r = await _search(client, h, q="mod", limit=1000)
    assert len(r.json()["results"]) == 30 and r.json()["truncated"] is False
    assert (await _search(client, h, q="")).status_code == 422
    assert error_code(await _search(client, h, q="   ")) == "EMPTY_QUERY"


async def test_searches_are_recorded_in_history_newest_first(
    client: httpx.AsyncClient, team: Team
) -> None:
    h = team.headers(team.editor)
    await upload(client, team.project_id, h, files=[(p, b"x") for p in PATHS])
    for q in ("router", "other", "nope"):
        await _search(client, h, q=q)
    await _search(client, h, q="util", project_id=team.project_id)
    await _search(client, team.headers(team.viewer), q="someone else's")

    r = await client.get("/api/v1/search/history", params={"limit": 3}, headers=h)
    assert r.status_code == 200
    page = r.json()
    assert [(i["query"], i["kind"], i["project_id"]) for i in page["items"]] == [
        ("util", "filename", team.project_id),
        ("nope", "filename", None),
        ("other", "filename", None),
    ]
    assert page["items"][1]["result_count"] == 0
    r = await client.get(
        "/api/v1/search/history", params={"cursor": page["next_cursor"]}, headers=h
    )
    assert [i["query"] for i in r.json()["items"]] == ["router"]
    assert r.json()["next_cursor"] is None
    assert r.json()["items"][0]["result_count"] == 6
    r = await client.get("/api/v1/search/history", params={"cursor": "x"}, headers=h)
    assert (r.status_code, error_code(r)) == (400, "INVALID_CURSOR")
    assert (await client.get("/api/v1/search/history")).status_code == 401


async def test_separators_count_although_the_index_ignores_them(
    client: httpx.AsyncClient, team: Team
) -> None:
    """The trigram index (PostgreSQL) sees paths without `/_.-`; the recheck does not."""
    h = team.headers(team.editor)
    paths = [
        "src/billing/invoice_23/export_style.rb",
        "src/billing/invoice_2/3export_style.rb",  # same without separators
        "src/billinginvoice23exportstyle.rb",
        "pkg/snake_case.py",
    ]
    assert (
        await upload(client, team.project_id, h, files=[(p, b"x") for p in paths])
    ).status_code == 201
    for project in (None, team.project_id):
        params: dict[str, object] = {"q": "Invoice_23/Export_Style.RB"}
        if project is not None:
            params["project_id"] = project
        r = await _search(client, h, **params)
        assert [x["path"] for x in r.json()["results"]] == [paths[0]]
        r = await _search(client, h, q="snakecase")
        assert r.json()["results"] == []
        r = await _search(client, h, q="invoice23export")
        assert [x["path"] for x in r.json()["results"]] == [paths[2]]


async def test_same_statement_many_times_stays_right(client: httpx.AsyncClient, team: Team) -> None:
    """PostgreSQL may switch a prepared statement to a generic plan after five runs; the
    answers must not change (they come from the same plan shape, with other values)."""
    h = team.headers(team.owner)
    names = [f"pkg/part_{i:02}/module_{i:02}.py" for i in range(12)]
    await upload(client, team.project_id, h, files=[(p, b"x") for p in names])
    for i in range(12):
        r = await _search(client, h, q=f"part_{i:02}/module")
        assert [x["path"] for x in r.json()["results"]] == [names[i]], i
        r = await _search(client, h, q=f"module_{i:02}.py")
        assert [(x["path"], x["match"]) for x in r.json()["results"]] == [(names[i], "exact")]
