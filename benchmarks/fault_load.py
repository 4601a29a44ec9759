"""Issue 10 benchmark: uploads under load while Redis, then PostgreSQL, is down.

Per scenario it starts a PostgreSQL and a Redis of its own (loopback, free ports), the API
(in-process ASGI app with its outbox relay) and two `codeatlas worker` processes, uploads a
batch, stops the component, keeps sending uploads and file listings for ``--outage``
seconds (bounded: one pair every ``--interval`` s), starts the component again and waits for
every accepted upload to be indexed. It prints, per scenario:

* requests sent and how many answered 5xx other than 503 (a 503 with an error code is the
  promised answer during an outage; 500 is the bug this issue fixed), and the 503 count;
* jobs lost: uploads answered 201 whose document is not indexed at the end;
* jobs duplicated: documents with more than one job row or more than one chunk set;
* seconds to recover: from the component's return until the first job of the backlog is
  done (delivery works again) and until the whole backlog is indexed (that part is bounded by
  the workers' throughput, not by recovery; no uploads are added after the return).

Target: 0 / 0 / 0 / 0 and delivery resumed <= 15 s. Settings are the shipped defaults except the
worker heartbeat timings, so the figures are what a deployment sees.

Usage::

    python benchmarks/fault_load.py [--outage 30] [--interval 0.5] [--batch 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeatlas.app import create_app  # noqa: E402
from codeatlas.db import migrate  # noqa: E402
from codeatlas.db.session import Database  # noqa: E402
from codeatlas.models import CodeChunk, CodeDocument, Job, ProjectRole  # noqa: E402
from codeatlas.settings import Settings  # noqa: E402
from tests.code.helpers import make_project, upload  # noqa: E402
from tests.factories import auth_headers, create_user  # noqa: E402
from tests.jobs.conftest import env_for  # noqa: E402
from tests.platform.throwaway import ThrowawayPostgres, ThrowawayRedis  # noqa: E402


def source(i: int) -> bytes:
    body = "".join(f"def f{i}_{k}(x):\n    return x * {k} + {i}\n\n\n" for k in range(30))
    return f'"""Module {i}."""\n\n\n{body}'.encode()


def start_workers(settings: Settings, tmp: Path, count: int) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(count):
        log = (tmp / f"worker-{i}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "codeatlas", "worker", "--threads", "2"],
                cwd=ROOT,
                env=env_for(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.monotonic() + 90
    for i in range(count):
        while "worker started" not in (tmp / f"worker-{i}.log").read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {i} did not start")
            time.sleep(0.1)
    return procs


async def outcome(db: Database, project_id: int, accepted: set[str]) -> dict[str, int]:
    async with db.session() as s:
        docs = dict(
            (
                await s.execute(
                    select(CodeDocument.file_path, CodeDocument.status).where(
                        CodeDocument.project_id == project_id
                    )
                )
            ).all()
        )
        jobs_per_doc = (
            await s.execute(
                select(Job.document_id, func.count())
                .where(Job.actor == "code.process_file")
                .group_by(Job.document_id)
            )
        ).all()
        chunk_sets = (
            await s.execute(
                select(CodeChunk.document_id, func.count(), func.max(CodeChunk.index)).group_by(
                    CodeChunk.document_id
                )
            )
        ).all()
        unfinished = await s.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.status.in_(["queued", "running", "retrying"]))
        )
    lost = sum(1 for path in accepted if docs.get(path) != "searchable")
    duplicated = sum(1 for _, n in jobs_per_doc if n > 1) + sum(
        1 for _, n, top in chunk_sets if n != top + 1
    )
    return {"lost": lost, "duplicated": duplicated, "unfinished": int(unfinished or 0)}


async def slowest_jobs(db: Database, since: datetime, n: int = 5) -> list[str]:
    """The last jobs to finish after the component returned: where the recovery time went."""
    async with db.session() as s:
        rows = (
            await s.execute(
                select(Job.actor, Job.attempts, Job.finished_at, Job.last_error)
                .where(Job.finished_at.is_not(None))
                .order_by(Job.finished_at.desc())
                .limit(n)
            )
        ).all()
    return [
        f"{actor} attempts={attempts} done at +{(done - since).total_seconds():.1f}s"
        f" last_error={(error or '')[:80]!r}"
        for actor, attempts, done, error in rows
    ]


async def scenario(component: str, args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"ca-fault-{component}-"))
    pg, rd = ThrowawayPostgres(), ThrowawayRedis()
    pg.start()
    rd.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        settings = Settings(
            env="test",
            database_url=pg.url,
            data_dir=tmp,
            redis_url=rd.url,
            redis_key_prefix="bench:",
            embedded_worker_threads=0,
            jobs_workers_required=False,
            knowledge_embed_code=False,
            worker_heartbeat_interval=1.0,
            worker_heartbeat_stale_after=4.0,
        )
        await asyncio.to_thread(migrate.upgrade, settings)
        db = Database(settings)
        owner = await create_user(db, f"{component}@example.com")
        project_id = await make_project(db, {owner: ProjectRole.OWNER})
        headers = auth_headers(owner, settings)
        procs = start_workers(settings, tmp, 2)
        app = create_app(settings)
        sent = status_5xx = status_503 = 0
        accepted: set[str] = set()
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60
            ) as c,
        ):

            async def send_pair(n: int, *, uploads: bool = True) -> None:
                nonlocal sent, status_5xx, status_503
                path = f"load/f{n}.py"
                responses = []
                if uploads:
                    responses.append(await upload(c, project_id, headers, [(path, source(n))]))
                responses.append(
                    await c.get(f"/api/v1/projects/{project_id}/files", headers=headers)
                )
                for r in responses:
                    sent += 1
                    if r.status_code == 503:
                        status_503 += 1
                    elif r.status_code >= 500:
                        status_5xx += 1
                    elif r.status_code == 201:
                        accepted.add(path)

            batch = [(f"batch/m{i}.py", source(i)) for i in range(args.batch)]
            r = await upload(c, project_id, headers, batch)
            sent += 1
            if r.status_code == 201:
                accepted.update(p for p, _ in batch)
            await asyncio.sleep(1.0)  # indexing under way
            target = pg if component == "postgresql" else rd
            await asyncio.to_thread(target.stop)
            stopped = time.monotonic()
            n = 10_000
            while time.monotonic() - stopped < args.outage:
                await send_pair(n)
                n += 1
                await asyncio.sleep(args.interval)
            await asyncio.to_thread(target.start)
            back = time.monotonic()
            back_wall = datetime.now(UTC)
            recovered: float | None = None
            resumed: float | None = None
            pending_at_return: int | None = None
            while time.monotonic() - back < args.deadline:
                # Reads go on through the recovery; no new uploads, so "recovered" is the
                # backlog of the outage drained, not a moving target.
                await send_pair(n, uploads=False)
                try:
                    state = await outcome(db, project_id, accepted)
                except Exception:
                    await asyncio.sleep(args.interval)
                    continue
                if pending_at_return is None:
                    pending_at_return = state["lost"]
                elif resumed is None and state["lost"] < pending_at_return:
                    resumed = time.monotonic() - back
                if state["lost"] == 0 and state["unfinished"] == 0:
                    recovered = time.monotonic() - back
                    resumed = recovered if resumed is None else resumed
                    break
                await asyncio.sleep(args.interval)
            final = await outcome(db, project_id, accepted)
            slowest = await slowest_jobs(db, back_wall)
        await db.dispose()
        return {
            "scenario": f"{component} down {args.outage:g}s",
            "sent": sent,
            "5xx (not 503)": status_5xx,
            "503": status_503,
            "accepted": len(accepted),
            "lost": final["lost"],
            "duplicated": final["duplicated"],
            "recover_s": recovered,
            "resume_s": resumed,
            "backlog": pending_at_return,
            "slowest": slowest,
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
        pg.remove()
        rd.remove()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=30.0, help="seconds the component is down")
    parser.add_argument("--interval", type=float, default=0.5, help="pause between request pairs")
    parser.add_argument("--batch", type=int, default=40, help="files uploaded before the outage")
    parser.add_argument("--deadline", type=float, default=180.0, help="longest recovery wait")
    parser.add_argument("--only", choices=["redis", "postgresql"])
    args = parser.parse_args()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    results = []
    for component in ("redis", "postgresql"):
        if args.only and component != args.only:
            continue
        results.append(await scenario(component, args))
    print()
    print(
        "| scenario | requests | 5xx (not 503) | 503 | uploads accepted | jobs lost "
        "| jobs duplicated | backlog at return | first job done s | backlog drained s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    ok = True
    for r in results:
        rec = "not recovered" if r["recover_s"] is None else f"{r['recover_s']:.1f}"
        res = "-" if r["resume_s"] is None else f"{r['resume_s']:.1f}"
        print(
            f"| {r['scenario']} | {r['sent']} | {r['5xx (not 503)']} | {r['503']} | "
            f"{r['accepted']} | {r['lost']} | {r['duplicated']} | {r['backlog']} | {res} "
            f"| {rec} |"
        )
        ok = ok and r["5xx (not 503)"] == 0 and r["lost"] == 0 and r["duplicated"] == 0
        ok = ok and r["resume_s"] is not None and r["resume_s"] <= 15
    for r in results:
        print(f"\nlast jobs to finish after {r['scenario']} (time since the component returned):")
        for line in r["slowest"]:
            print(f"  {line}")
    print(f"\ntarget 0 / 0 / 0 and first job done <= 15 s: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
