"""6-A benchmark: filename search over N code documents on PostgreSQL, with and without the
trigram index, in the database and through HTTP against a running ``codeatlas serve``.

Run as ``python benchmarks/filename_search.py --rows 1000000`` (it lives outside the
installed package because it DROPs and re-creates its database). It builds a fresh
database (Alembic to head), fills it by COPY with real paths: every file of the packages
installed in site-packages, replicated as ``copyNNNN/<path>`` to reach the row count (the
corpus is printed), then times one mix of queries taken from those paths (exact names,
basename prefixes, common and rare fragments, paths, misses, 1-2 character queries)
through :func:`codeatlas.code.search.search_filenames`:

1. without the trigram index ``ix_code_documents_file_path_squashed_trgm`` (dropped after
   the load; the basename index stays, so this measures what the trigram index adds);
2. with it (created from the model's DDL, then ANALYZE), plus the EXPLAIN of a substring
   query;
3. through HTTP: ``GET /api/v1/search/files`` against a real server process.

Scope is "all my projects" for a user who is a member of every project, so every query
runs over all N rows (the hardest case); a per-project run is printed too.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import site
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Index, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateIndex

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TRGM_INDEX = "ix_code_documents_file_path_squashed_trgm"
COLUMNS = [
    "project_id", "file_path", "file_name", "language", "size", "content_hash", "parseable",
    "status", "version", "created_at", "updated_at",
]  # fmt: skip
SEARCH_INDEXES = ("ix_code_documents_file_name_search", TRGM_INDEX)
DB_P95_TARGET_MS = 5.0
HTTP_P95_TARGET_MS = 20.0
SPEEDUP_TARGET = 10.0


@dataclass
class Corpus:
    """Real paths: every file of the packages installed in this environment's site-packages
    (``__pycache__`` and ``*.dist-info`` left out), as the repositories users upload are
    laid out. Replicated with path variation (``copyNNNN/<path>``) to reach the row count;
    each project holds a contiguous run of files, as one repository does."""

    root: Path
    paths: list[str]

    @classmethod
    def load(cls) -> Corpus:
        root = next(
            (Path(c) for c in site.getsitepackages() if (Path(c) / "starlette").is_dir()), None
        )
        if root is None:
            raise SystemExit("no site-packages with starlette found")
        paths: list[str] = []
        for directory, dirs, files in os.walk(root):
            skip = (".dist-info", ".egg-info")
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.endswith(skip))
            rel = Path(directory).relative_to(root)
            paths += [str(rel / f) if str(rel) != "." else f for f in sorted(files)]
        return cls(root, [p for p in paths if len(p) <= 900])

    def describe(self, rows: int, projects: int) -> str:
        names = Counter(p.rsplit("/", 1)[-1] for p in self.paths)
        tops = {p.split("/", 1)[0] for p in self.paths}
        return (
            f"corpus: {len(self.paths):,} real files of {len(tops)} top-level entries of "
            f"{self.root} ({len(names):,} distinct file names; most common: "
            f"{', '.join(f'{n} x{c}' for n, c in names.most_common(3))}), replicated "
            f"x{rows / len(self.paths):.1f} as copyNNNN/<path> into {projects} projects of "
            f"{-(-rows // projects):,} files"
        )

    def row(self, i: int, per_project: int) -> tuple[int, str, str]:
        base = self.paths[i % len(self.paths)]
        path = f"copy{i // len(self.paths):04d}/{base}"
        return 1 + i // per_project, path, base.rsplit("/", 1)[-1]

    def words(self) -> list[str]:
        """The commonest words of the paths (``client``, ``test``, ``utils``): common fragments."""
        counts = Counter(
            w for p in self.paths for w in re.split(r"[/_.\-]", p.lower()) if len(w) >= 3
        )
        return [w for w, _ in counts.most_common(80)]


def make_queries(count: int, corpus: Corpus, rng: random.Random) -> list[tuple[str, str]]:
    """(kind, query): the realistic mix the benchmark times, all taken from real paths."""
    names = Counter(p.rsplit("/", 1)[-1] for p in corpus.paths)
    common = [n for n, _ in names.most_common(3)]
    words = corpus.words()
    kinds = (
        ["exact"] * 22 + ["exact-common"] * 3 + ["prefix"] * 20 + ["fragment-common"] * 12
        + ["fragment-rare"] * 10 + ["path"] * 8 + ["long-path"] * 5 + ["miss"] * 12
        + ["short"] * 8
    )  # fmt: skip
    out = []
    for _ in range(count):
        kind = rng.choice(kinds)
        path = rng.choice(corpus.paths)
        parts = path.split("/")
        name = parts[-1]
        if kind == "exact":
            q = name
        elif kind == "exact-common":
            q = rng.choice(common)
        elif kind == "prefix":
            q = name[: rng.randint(3, 8)]
        elif kind == "fragment-common":
            q = rng.choice(words)
        elif kind == "fragment-rare":
            start = rng.randint(0, max(0, len(name) - 6))
            q = name[start : start + rng.randint(5, 9)]
        elif kind == "path" and len(parts) > 1:
            i = rng.randrange(len(parts) - 1)
            q = f"{parts[i]}/{parts[i + 1][: rng.randint(3, 8)]}"
        elif kind in ("path", "long-path"):
            q = "/".join(parts[-3:])
        elif kind == "miss":
            letters = "bcdfghjklmnpqrstvwxz"
            q = "".join(rng.choice(letters) for _ in range(rng.randint(4, 12)))
            q = q if rng.random() < 0.5 else f"nonexistent_{q}.py"
        else:
            q = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 2)))
        out.append((kind, q))
    return out


def percentiles(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]

    return {
        "p50": pct(50),
        "p95": pct(95),
        "p99": pct(99),
        "mean": statistics.fmean(ordered),
        "max": ordered[-1],
    }


def fmt(stats: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:8.2f}ms" for k, v in stats.items())


@dataclass
class Bench:
    url: str
    rows: int
    projects: int
    queries: int
    http: bool
    redis_url: str | None
    seed: int = 7
    by_kind: dict[str, dict[str, float]] = field(default_factory=dict)

    def log(self, message: str) -> None:
        print(message, flush=True)

    async def run(self) -> int:
        from codeatlas.db import migrate
        from codeatlas.db.session import Database
        from codeatlas.settings import Settings

        rng = random.Random(self.seed)
        data_dir = Path(tempfile.mkdtemp(prefix="codeatlas-bench-"))
        settings = Settings(database_url=self.url, data_dir=data_dir, env="test")
        await recreate_database(self.url)
        await asyncio.to_thread(migrate.upgrade, settings)
        db = Database(settings)
        try:
            corpus = Corpus.load()
            self.log(corpus.describe(self.rows, self.projects))
            user_id = await self.fill(db, corpus)
            queries = make_queries(self.queries, corpus, rng)
            kinds: dict[str, int] = {}
            for kind, _ in queries:
                kinds[kind] = kinds.get(kind, 0) + 1
            self.log(f"query mix ({len(queries)}): {dict(sorted(kinds.items()))}")

            async with db.engine.begin() as conn:
                await conn.execute(text(f"DROP INDEX IF EXISTS {TRGM_INDEX}"))
                await conn.execute(text("ANALYZE code_documents"))
            without = await self.time_queries(db, user_id, queries, "without trigram index")

            started = time.perf_counter()
            async with db.engine.begin() as conn:
                await conn.execute(CreateIndex(trigram_index()))
                await conn.execute(text("ANALYZE code_documents"))
            self.log(f"trigram index built in {time.perf_counter() - started:.1f}s")
            await self.index_sizes(db)
            with_index = await self.time_queries(db, user_id, queries, "with trigram index")
            one_project = await self.time_queries(
                db, user_id, queries, "with trigram index, one project", project_id=1
            )
            uses_index = await self.explain(db, user_id)
            http_stats = await self.time_http(settings, user_id, queries) if self.http else None
        finally:
            await db.dispose()

        speedup = without["p95"] / with_index["p95"]
        self.log("\n== summary ==")
        self.log(f"rows={self.rows} projects={self.projects} queries={self.queries}")
        self.log(f"db   without index : {fmt(without)}")
        self.log(f"db   with index    : {fmt(with_index)}")
        self.log(f"db   one project   : {fmt(one_project)}")
        if http_stats:
            self.log(f"http with index    : {fmt(http_stats)}")
        self.log(f"p95 speed-up from the trigram index: {speedup:.1f}x")
        before, after = self.by_kind["without trigram index"], self.by_kind["with trigram index"]
        for kind in sorted(before):
            self.log(
                f"  {kind:<16} p95 {before[kind]:8.2f} -> {after[kind]:7.2f} ms "
                f"({before[kind] / after[kind]:.1f}x)"
            )
        checks = {
            f"db p95 < {DB_P95_TARGET_MS} ms": with_index["p95"] < DB_P95_TARGET_MS,
            f"speed-up >= {SPEEDUP_TARGET}x": speedup >= SPEEDUP_TARGET,
            "EXPLAIN uses the basename and trigram indexes": uses_index,
        }
        if http_stats:
            checks[f"http p95 < {HTTP_P95_TARGET_MS} ms"] = http_stats["p95"] < HTTP_P95_TARGET_MS
        for name, ok in checks.items():
            self.log(f"  [{'PASS' if ok else 'FAIL'}] {name}")
        return 0 if all(checks.values()) else 1

    async def fill(self, db: Any, corpus: Corpus) -> int:
        from codeatlas.code.languages import detect_language

        started = time.perf_counter()
        async with db.engine.begin() as conn:
            user_id = (
                await conn.execute(
                    text(
                        "INSERT INTO users (email, password_hash, full_name, is_active, is_admin)"
                        " VALUES ('bench@example.com', '!', 'Bench', true, false) RETURNING id"
                    )
                )
            ).scalar_one()
            await conn.execute(
                text(
                    "INSERT INTO projects (name, description) "
                    "SELECT 'project ' || g, '' FROM generate_series(1, :n) g"
                ),
                {"n": self.projects},
            )
            await conn.execute(
                text(
                    "INSERT INTO project_members (project_id, user_id, role) "
                    "SELECT id, :u, 'viewer' FROM projects"
                ),
                {"u": user_id},
            )
            await conn.execute(text(f"DROP INDEX IF EXISTS {TRGM_INDEX}"))
            # The asyncpg connection itself, inside the same transaction: text arrays as
            # parameters are simplest there.
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            # COPY in batches, each well within the driver's 30 s command timeout.
            per_project = -(-self.rows // self.projects)
            now = datetime.now(UTC)
            batch = 100_000
            for start in range(0, self.rows, batch):
                records = []
                for i in range(start, min(self.rows, start + batch)):
                    project, path, name = corpus.row(i, per_project)
                    records.append(
                        (
                            project, path, name, detect_language(path), 200 + i * 7919 % 50000,
                            hashlib.sha256(path.encode()).hexdigest(), True, "searchable", 1,
                            now, now,
                        )
                    )  # fmt: skip
                await driver.copy_records_to_table(
                    "code_documents", records=records, columns=COLUMNS, timeout=120
                )
                self.log(f"  inserted {start + len(records):>9,} rows")
        async with db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE code_documents"))
            # Statistics of the other tables too, as autovacuum keeps them: with none,
            # project_members (1,000 rows) is estimated at 4 and the membership filter
            # becomes a nested loop (measured 15-500 ms per search).
            await conn.execute(text("ANALYZE"))
        self.log(f"filled {self.rows:,} documents in {time.perf_counter() - started:.1f}s")
        return int(user_id)

    async def time_queries(
        self,
        db: Any,
        user_id: int,
        queries: list[tuple[str, str]],
        label: str,
        project_id: int | None = None,
    ) -> dict[str, float]:
        from codeatlas.code.search import search_filenames

        async def one(q: str) -> None:
            async with db.session() as s, s.begin():
                await search_filenames(s, user_id=user_id, query=q, project_id=project_id, limit=20)
                await s.rollback()  # keep the history table out of the measurement's way

        return await self._timed(label, queries, one)

    async def _timed(
        self,
        label: str,
        queries: list[tuple[str, str]],
        one: Callable[[str], Awaitable[None]],
    ) -> dict[str, float]:
        for _, q in queries[:100]:  # warm the caches and the connection pool
            await one(q)
        samples: list[float] = []
        by_kind: dict[str, list[float]] = {}
        for kind, q in queries:
            started = time.perf_counter()
            await one(q)
            ms = (time.perf_counter() - started) * 1000
            samples.append(ms)
            by_kind.setdefault(kind, []).append(ms)
        stats = percentiles(samples)
        self.by_kind[label] = {k: percentiles(v)["p95"] for k, v in by_kind.items()}
        self.log(f"\n-- {label}: {fmt(stats)}")
        for kind, values in sorted(by_kind.items()):
            s = percentiles(values)
            self.log(f"     {kind:<16} n={len(values):<4} p50={s['p50']:7.2f} p95={s['p95']:7.2f}")
        return stats

    async def explain(self, db: Any, user_id: int) -> bool:
        """EXPLAIN ANALYZE the statements one substring search sends; True if the trigram
        index serves the substring rank."""
        from codeatlas.code.search import search_filenames

        captured: list[tuple[str, Any]] = []

        def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if "lower(code_documents.file_path) LIKE" in statement:
                captured.append((statement, params))

        event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
        try:
            async with db.session() as s, s.begin():
                await search_filenames(
                    s, user_id=user_id, query="voice_pay", project_id=None, limit=20
                )
                await s.rollback()
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
        statement, params = captured[-1]
        # The statement also writes the history row (a CTE): EXPLAIN ANALYZE runs it, so
        # inside a transaction that is rolled back.
        async with db.engine.connect() as conn, conn.begin() as tx:
            result = await conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, params
            )
            plan = "\n".join(row[0] for row in result)
            await tx.rollback()
        self.log("\n-- EXPLAIN ANALYZE of the search statement for 'voice_pay' (all projects):")
        self.log(plan)
        return all(name in plan for name in SEARCH_INDEXES)

    async def index_sizes(self, db: Any) -> None:
        async with db.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT c.relname, pg_size_pretty(pg_relation_size(c.oid)) FROM pg_class c"
                    " JOIN pg_index i ON i.indexrelid = c.oid"
                    " WHERE i.indrelid = 'code_documents'::regclass ORDER BY c.relname"
                )
            )
            table = await conn.scalar(
                text("SELECT pg_size_pretty(pg_relation_size('code_documents'))")
            )
        self.log(f"code_documents heap {table}; indexes: " + ", ".join(f"{n} {z}" for n, z in rows))

    async def time_http(
        self, settings: Any, user_id: int, queries: list[tuple[str, str]]
    ) -> dict[str, float]:
        import httpx

        from codeatlas.auth.tokens import create_access_token

        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
        env.update(
            DATABASE_URL=self.url,
            DATA_DIR=str(settings.data_dir),
            ENV="test",
            LOG_LEVEL="WARNING",
            SECRET_KEY=settings.secret_key,
        )
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        proc = subprocess.Popen(
            [sys.executable, "-m", "codeatlas", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        token = create_access_token(user_id, settings)
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ) as client:
                deadline = time.monotonic() + 60
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError("codeatlas serve exited")
                    try:
                        if (await client.get("/health/live")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError("codeatlas serve did not start")
                    await asyncio.sleep(0.2)

                async def one(q: str) -> None:
                    r = await client.get("/api/v1/search/files", params={"q": q, "limit": 20})
                    if r.status_code != 200:
                        raise RuntimeError(f"HTTP {r.status_code}: {r.text}")

                return await self._timed("through HTTP (codeatlas serve)", queries, one)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def trigram_index() -> Index:
    """The model's trigram index (migration 0006 creates the same one)."""
    from codeatlas.models import CodeDocument

    table = CodeDocument.__table__
    return next(ix for ix in table.indexes if ix.name == TRGM_INDEX)  # type: ignore[attr-defined]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def recreate_database(url: str) -> None:
    from tests.conftest import _recreate_pg_database

    if make_url(url).get_backend_name() != "postgresql":
        raise SystemExit("the filename-search benchmark needs PostgreSQL (postgresql+asyncpg://)")
    await _recreate_pg_database(url)


def run(
    url: str,
    rows: int = 1_000_000,
    projects: int = 1000,
    queries: int = 1000,
    http: bool = True,
    redis_url: str | None = None,
) -> int:
    """Build, fill, measure, print; returns 0 when every target is met."""
    bench = Bench(url, rows, projects, queries, http, redis_url)
    return asyncio.run(bench.run())


DEFAULT_BENCH_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/codeatlas_bench_filenames"


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_BENCH_URL),
        help="PostgreSQL URL of a database the benchmark may DROP and re-create.",
    )
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP phase")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    args = parser.parse_args()
    return run(
        args.database_url, args.rows, args.projects, args.queries, not args.no_http, args.redis_url
    )


if __name__ == "__main__":
    sys.exit(main())
