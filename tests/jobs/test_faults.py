"""PostgreSQL down 60 s in the middle of indexing (issue 10, finding 2): scaled mode, two
real worker processes, on a PostgreSQL and a Redis of the test's own. Afterwards every job
ends `succeeded` (or `dead`, and then an admin retry finishes it), none is stuck, no
document has its chunks twice, and the API answered 503, never 500, during the outage."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from codeatlas.app import create_app
from codeatlas.db import migrate
from codeatlas.db.session import Database
from codeatlas.models import CodeChunk, CodeDocument, Job, ProjectRole
from tests.code.helpers import make_project, upload
from tests.conftest import PG_AVAILABLE, build_settings
from tests.factories import auth_headers, create_user
from tests.jobs.conftest import FAST, Workers, wait_for
from tests.platform.throwaway import throwaway_postgres, throwaway_redis

pytestmark = [
    pytest.mark.slow,
    # It brings its own PostgreSQL; run it once, in the PostgreSQL pass of the suite.
    pytest.mark.skipif(not PG_AVAILABLE, reason="runs in the PostgreSQL pass"),
]

OUTAGE_SECONDS = 60.0
UNFINISHED = ("queued", "running", "retrying")


def source(i: int) -> bytes:
    body = "".join(
        f"def f{i}_{k}(x: int) -> int:\n    '''Step {k}.'''\n    return x * {k} + {i}\n\n\n"
        for k in range(40)
    )
    return f'"""Module {i}."""\n\n\n{body}class K{i}:\n    pass\n'.encode()


async def _counts(db: Database) -> dict[str, int]:
    async with db.session() as s:
        rows = await s.execute(select(Job.status, func.count()).group_by(Job.status))
        return {status: n for status, n in rows}


async def test_postgresql_down_60s_mid_indexing_loses_nothing(tmp_path: Path) -> None:
    with throwaway_postgres() as pg, throwaway_redis() as rd:
        settings = build_settings(
            pg.url,
            tmp_path,
            redis_url=rd.url,
            redis_key_prefix="fault:",
            **{**FAST, "jobs_extra_modules": [], "jobs_workers_required": False},
        )
        await asyncio.to_thread(migrate.upgrade, settings)
        db = Database(settings)
        owner = await create_user(db, "owner@example.com")
        admin = await create_user(db, "admin@example.com", is_admin=True)
        project_id = await make_project(db, {owner: ProjectRole.OWNER})
        headers = auth_headers(owner, settings)
        workers = Workers(settings, tmp_path)
        app = create_app(settings)
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60
                ) as c,
            ):
                await workers.start(threads=2)
                await workers.start(threads=2)
                n = 0
                for _ in range(4):
                    files = [(f"pkg/m{n + k}.py", source(n + k)) for k in range(20)]
                    n += 20
                    r = await upload(c, project_id, headers, files)
                    assert r.status_code == 201, r.text

                async def some_done() -> bool:
                    return (await _counts(db)).get("succeeded", 0) >= 5

                await wait_for(some_done, 120, "indexing to be under way")
                at_stop = await _counts(db)
                print(f"\njobs when PostgreSQL stopped: {at_stop}")
                await asyncio.to_thread(pg.stop)
                stopped = time.monotonic()

                codes: list[int] = []
                while time.monotonic() - stopped < OUTAGE_SECONDS:
                    r = await upload(c, project_id, headers, [("late.py", source(999))])
                    codes.append(r.status_code)
                    r = await c.get(f"/api/v1/projects/{project_id}/files", headers=headers)
                    codes.append(r.status_code)
                    await asyncio.sleep(5)
                assert codes and set(codes) == {503}, codes

                await asyncio.to_thread(pg.start)

                async def settled() -> bool:
                    try:
                        counts = await _counts(db)
                    except Exception:
                        return False
                    return not any(counts.get(s) for s in UNFINISHED)

                await wait_for(settled, 240, "every job to end after PostgreSQL came back")
                counts = await _counts(db)
                print(f"jobs after recovery: {counts}")

                async with db.session() as s:
                    dead = (await s.scalars(select(Job).where(Job.status == "dead"))).all()
                admin_h = auth_headers(admin, settings)
                for job in dead:  # retryable from the admin API, and then they finish
                    assert job.last_error
                    r = await c.post(f"/api/v1/admin/jobs/{job.id}/retry", headers=admin_h)
                    assert r.status_code == 200, r.text
                await wait_for(settled, 120, "retried dead jobs to end")
                assert set(await _counts(db)) == {"succeeded"}

            async with db.session() as s:
                docs = (
                    await s.execute(
                        select(CodeDocument.status, func.count())
                        .where(CodeDocument.project_id == project_id)
                        .group_by(CodeDocument.status)
                    )
                ).all()
                assert dict(docs) == {"searchable": n}
                per_doc = (
                    await s.execute(
                        select(
                            CodeChunk.document_id, func.count(), func.max(CodeChunk.index)
                        ).group_by(CodeChunk.document_id)
                    )
                ).all()
                # Exactly one set of chunks per document: 0..k-1, nothing written twice.
                assert len(per_doc) == n
                assert all(count == top + 1 for _, count, top in per_doc)
                jobs = (await s.scalars(select(Job))).all()
                assert len(jobs) == n  # one job per upload, none lost, none doubled
        finally:
            workers.stop_all()
            await db.dispose()
