"""No 5xx under concurrent use while a tree indexes (issue 10, the concurrency proof).

20 clients at once mix uploads, filename search, hybrid search (`/api/v1/search`), login,
project creation and knowledge-base writes while a 200-file tree is being indexed by real
Dramatiq worker threads (the embedded default's model) on the run's backend: SQLite +
embedded Valkey without DATABASE_URL/REDIS_URL, PostgreSQL + Redis with them (`.ci/run` runs
both). Not one response may be >= 500.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from codeatlas.db.session import Database
from codeatlas.models import CodeDocument, ProjectRole
from tests.auth.helpers import login
from tests.code.helpers import make_project, make_zip, upload
from tests.factories import DEFAULT_PASSWORD, auth_headers, create_user

pytestmark = pytest.mark.slow

CLIENTS = 20
ROUNDS = 6
TREE = 200


def _tree() -> list[tuple[str, bytes]]:
    files = []
    for i in range(TREE):
        body = (
            f'"""Module {i}."""\n\n\ndef handler_{i}(request: dict) -> int:\n'
            f'    """Deploy step {i}: validate then apply."""\n    return len(request) + {i}\n\n\n'
            f"class Service{i}:\n    def run(self) -> str:\n        return 'svc-{i}'\n"
        )
        files.append((f"pkg{i % 10}/module_{i}.py", body.encode()))
    return files


async def _pending(db: Database, project_id: int) -> int:
    async with db.session() as s:
        return int(
            await s.scalar(
                select(func.count())
                .select_from(CodeDocument)
                .where(CodeDocument.project_id == project_id, CodeDocument.status != "searchable")
            )
            or 0
        )


async def test_twenty_clients_while_a_tree_indexes_get_no_5xx(
    app_factory: Any, db: Database
) -> None:
    users = [await create_user(db, f"load{i}@example.com") for i in range(4)]
    project_id = await make_project(db, {u: ProjectRole.OWNER for u in users})
    app = app_factory(
        embedded_worker_threads=2,
        jobs_workers_required=False,
        knowledge_embed_code=False,
        login_failures_per_account=10_000,
        login_failures_per_ip=10_000,
        rate_limit_login="100000/minute",
        rate_limit_upload="100000/minute",
    )
    statuses: Counter[int] = Counter()
    failures: list[str] = []

    async def record(what: str, r: httpx.Response) -> None:
        statuses[r.status_code] += 1
        if r.status_code >= 500:
            failures.append(f"{what}: {r.status_code} {r.text[:300]}")

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=120
        ) as c,
    ):
        settings = app.state.settings
        owner_h = auth_headers(users[0], settings)
        r = await upload(c, project_id, owner_h, archives=[("tree.zip", make_zip(_tree()))])
        assert r.status_code == 201, r.text
        pending_at_start = await _pending(db, project_id)

        async def client(n: int) -> None:
            rng = random.Random(n)
            user = users[n % len(users)]
            h = auth_headers(user, settings)
            for k in range(ROUNDS):
                op = (n + k) % 6
                if op == 0:
                    name = f"c{n}/r{k}/{uuid.uuid4().hex[:6]}.py"
                    r = await upload(c, project_id, h, files=[(name, b"def f():\n    return 1\n")])
                elif op == 1:
                    r = await c.get(
                        "/api/v1/search/files",
                        params={"q": f"module_{rng.randrange(TREE)}", "limit": 10},
                        headers=h,
                    )
                elif op == 2:
                    r = await c.post(
                        "/api/v1/search",
                        json={
                            "query": "deploy step validate",
                            "project_id": project_id,
                            "mode": "hybrid",
                            "top_k": 5,
                        },
                        headers=h,
                    )
                elif op == 3:
                    r = await login(c, user.email, DEFAULT_PASSWORD)
                elif op == 4:
                    r = await c.post(
                        "/api/v1/projects", json={"name": f"p{n}-{k}", "description": ""}, headers=h
                    )
                else:
                    r = await c.post(
                        "/api/v1/knowledge/entries",
                        json={
                            "title": f"note {n}-{k}",
                            "content": "deploys go through CI",
                            "project_id": project_id,
                        },
                        headers=h,
                    )
                await record(f"client {n} op {op}", r)

        started = time.monotonic()
        await asyncio.gather(*(client(n) for n in range(CLIENTS)))
        elapsed = time.monotonic() - started
        pending_at_end = await _pending(db, project_id)
    print(
        f"{sum(statuses.values())} requests in {elapsed:.1f}s, statuses {dict(statuses)}, "
        f"documents not yet indexed: {pending_at_start} at start, {pending_at_end} at end"
    )
    assert failures == []
    assert sum(statuses.values()) == CLIENTS * ROUNDS
