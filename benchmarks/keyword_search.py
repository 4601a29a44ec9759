"""Keyword search at scale: the sparse keyword index (Qdrant engine, IDF modifier) against
the O(n) substring scan it replaced, on a realistic code corpus.

Corpus: the ``.py`` files of real packages installed in this environment's site-packages
(the list is printed), cut into chunks by CodeAtlas's own tree-sitter chunker
(:func:`codeatlas.code.parsing.parse_source`), then replicated with path variation
(``copy0007/<package>/<file>``) over ``--projects`` projects until ``--chunks`` chunks.
Each replica's sparse vector is the original's plus its own path terms, exactly what
:func:`codeatlas.knowledge.keyword.encode_document` gives for that path.

Measured:

1. indexing: the chunks written through ``EdgeVectorStore.upsert`` (the store the embedded
   default runs) in batches, chunks/s;
2. the index: ``sparse_search`` top-50 (what hybrid search asks for) for a mix of queries —
   the natural-language questions of ``benchmarks/retrieval_quality.py`` and identifiers
   sampled from the corpus (``parse_header``, ``HTTPConnection``) — scoped to a user's
   ``--scope`` projects, p50/p95/p99;
3. the baseline: the previous implementation's candidate statement (every chunk in scope
   tested with ``LIKE '%term%'`` for every term, SQLite in memory) over the first
   ``--baseline-chunks`` chunks, and its cost extrapolated linearly to the full size
   (it is a scan: its cost is linear in the chunks in scope).

Run: ``python benchmarks/keyword_search.py --chunks 1000000`` (add ``--path DIR`` to keep
the index). Prints the corpus, the figures and the ratio in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import site
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeatlas.code.parsing import parse_source  # noqa: E402
from codeatlas.knowledge.keyword import (  # noqa: E402
    TOKENIZER,
    encode_document,
    encode_query,
    query_terms,
    term_id,
    terms,
)
from codeatlas.knowledge.vector_store import (  # noqa: E402
    EdgeVectorStore,
    SearchFilter,
    VectorPoint,
    point_id,
)

PACKAGES = [
    "starlette", "httpx", "httpcore", "fastapi", "pydantic", "sqlalchemy", "alembic",
    "dramatiq", "redis", "jinja2", "markdown_it", "pygments", "tenacity", "anyio", "click",
    "typer", "uvicorn", "qdrant_client", "pip", "setuptools", "_pytest", "mypy", "idna",
    "email_validator", "limits", "slowapi", "sentry_sdk", "jwt", "asyncpg", "aiosqlite",
]  # fmt: skip
COLLECTION = "bench_keywords"
P95_TARGET_MS = 20.0


def _site_packages() -> Path:
    for candidate in site.getsitepackages():
        if (Path(candidate) / "starlette").is_dir():
            return Path(candidate)
    raise SystemExit("no site-packages with starlette found")


def build_base(max_files: int) -> list[tuple[str, str | None, str]]:
    """``(path, symbol, text)`` of the chunks of real packages' files."""
    root = _site_packages()
    chunks: list[tuple[str, str | None, str]] = []
    used: list[str] = []
    files = 0
    for package in PACKAGES:
        directory = root / package
        if not directory.is_dir():
            continue
        used.append(package)
        for file in sorted(directory.rglob("*.py")):
            if files >= max_files:
                break
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if len(text) > 400_000:
                continue
            files += 1
            rel = str(file.relative_to(root))
            for c in parse_source(text, "python").chunks:
                chunks.append((rel, c.symbol, c.text))
    print(
        f"corpus: {files} .py files of {len(used)} packages from {root} "
        f"({', '.join(used)}) -> {len(chunks)} chunks (tree-sitter chunker)"
    )
    return chunks


def percentiles(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return f"p50 {statistics.median(ms):.2f} / p95 {q[94]:.2f} / p99 {q[98]:.2f} ms"


def queries(base: list[tuple[str, str | None, str]], n: int, rng: random.Random) -> list[str]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from retrieval_quality import QUESTIONS

    out = [q for q, _ in QUESTIONS]
    symbols = sorted({s.split(".")[-1] for _, s, _ in base if s and len(s) > 5})
    out += rng.sample(symbols, min(len(symbols), max(0, n - len(out))))
    return out[:n]


def baseline_scan(
    base: list[tuple[str, str | None, str]], size: int, qs: list[str], projects: int
) -> list[float]:
    """The replaced scorer's candidate query (its dominant cost) over ``size`` chunks."""
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE c (id INTEGER PRIMARY KEY, project_id INT, path TEXT, symbol TEXT, text TEXT)"
    )
    rows = []
    for i in range(size):
        path, symbol, text = base[i % len(base)]
        rows.append((i, i % projects, f"copy{i // len(base):04d}/{path}", symbol, text))
    db.executemany("INSERT INTO c VALUES (?,?,?,?,?)", rows)
    db.execute("CREATE INDEX ix ON c(project_id)")
    times: list[float] = []
    for q in qs:
        ts = query_terms(q)
        if not ts:
            continue
        flags = " OR ".join(
            f"text LIKE '%{t}%' OR path LIKE '%{t}%' OR coalesce(symbol, '') LIKE '%{t}%'"
            for t in ts
        )
        t0 = time.perf_counter()
        db.execute(f"SELECT id, length(text) FROM c WHERE ({flags})").fetchall()
        times.append((time.perf_counter() - t0) * 1000)
    return times


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=1_000_000)
    ap.add_argument("--max-files", type=int, default=6000)
    ap.add_argument("--projects", type=int, default=1000)
    ap.add_argument("--scope", type=int, default=20, help="projects the searching user is in")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--baseline-chunks", type=int, default=20_000)
    ap.add_argument("--path", type=Path, default=None)
    args = ap.parse_args()
    rng = random.Random(7)

    base = build_base(args.max_files)
    t0 = time.perf_counter()
    vectors = [encode_document(text, path, symbol) for path, symbol, text in base]
    encode_s = time.perf_counter() - t0
    print(
        f"encoded {len(base)} chunks in {encode_s:.1f} s ({len(base) / encode_s:.0f} chunks/s, "
        f"tokenizer {TOKENIZER}); replicated x{args.chunks / len(base):.1f} as "
        f"copyNNNN/<package path> over {args.projects} projects to {args.chunks} chunks"
    )
    workdir = args.path or Path(tempfile.mkdtemp(prefix="kwbench-"))
    store = EdgeVectorStore(workdir, optimize_threshold=None)
    await store.create_index_if_missing(COLLECTION, 0, model_name=TOKENIZER)
    existing = await store.count(COLLECTION)
    t0 = time.perf_counter()
    batch: list[VectorPoint] = []
    for i in range(existing, args.chunks):
        copy = i // len(base)
        path = base[i % len(base)][0]
        indices, values = vectors[i % len(base)]
        # The replica's own path terms (copyNNNN) carry the path bonus, like any path term.
        extra = {term_id(t) for t in terms(f"copy{copy:04d}")} - set(indices)
        if extra:
            pairs = sorted([*zip(indices, values, strict=True), *((e, 1.5) for e in extra)])
            indices, values = [p[0] for p in pairs], [p[1] for p in pairs]
        batch.append(
            VectorPoint(
                point_id("bench", i),
                [],
                {
                    "project_id": i % args.projects,
                    "document_id": i // 8,
                    "kind": "code",
                    "language": "python",
                    "chunk_index": i % 8,
                    "path": f"copy{copy:04d}/{path}",
                },
                sparse=(indices, values),
            )
        )
        if len(batch) == 2000:
            await store.upsert(COLLECTION, batch)
            batch = []
            if (i + 1) % 100_000 == 0:
                rate = (i + 1 - existing) / (time.perf_counter() - t0)
                print(f"  {i + 1} indexed ({rate:.0f} chunks/s)", flush=True)
    await store.upsert(COLLECTION, batch)
    if args.chunks > existing:
        elapsed = time.perf_counter() - t0
        print(
            f"indexed {args.chunks - existing} chunks in {elapsed:.1f} s "
            f"({(args.chunks - existing) / elapsed:.0f} chunks/s)"
        )
    total = await store.count(COLLECTION)
    qs = queries(base, args.queries, rng)
    scope = rng.sample(range(args.projects), min(args.scope, args.projects))
    for label, flt in (
        (f"{len(scope)} projects", SearchFilter(project_ids=scope, kinds=["code"])),
        ("all projects", SearchFilter(kinds=["code"])),
    ):
        for q in qs[:5]:  # warm-up
            await store.sparse_search(COLLECTION, encode_query(q), 50, flt)
        times: list[float] = []
        for q in qs:
            t1 = time.perf_counter()
            await store.sparse_search(COLLECTION, encode_query(q), 50, flt)
            times.append((time.perf_counter() - t1) * 1000)
        print(f"sparse index, {total} chunks, top-50, scope {label}: {percentiles(times)}")
        if label.endswith("projects") and label != "all projects":
            index_p95 = statistics.quantiles(times, n=100, method="inclusive")[94]
    scan = baseline_scan(base, min(args.baseline_chunks, len(base) * 4), qs, args.projects)
    scan_p50 = statistics.median(scan)
    size = min(args.baseline_chunks, len(base) * 4)
    print(
        f"baseline LIKE scan (previous keyword.py), {size} chunks: {percentiles(scan)}; "
        f"extrapolated to {total} chunks: p50 ~{scan_p50 * total / size:.0f} ms"
    )
    verdict = "meets" if index_p95 < P95_TARGET_MS else "MISSES"
    print(
        f"keyword index p95 {index_p95:.2f} ms {verdict} the {P95_TARGET_MS:.0f} ms target; "
        f"the scan's p50 alone at {size} chunks is {scan_p50 / max(index_p95, 1e-6):.0f}x "
        "the index's p95 at full size"
    )
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
