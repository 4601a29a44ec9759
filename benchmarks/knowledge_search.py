"""Knowledge search at 100,000 vectors (checklist 4-B: search < 50 ms for 100k vectors).

Setup (once; reused on later runs from ``--data-dir``): 100,000 knowledge-base entries made
of real prose — docstring paragraphs of the packages installed in site-packages — written to
a SQLite database exactly as the API writes them (``kb_entries`` + ``kb_entry_chunks``),
embedded with the local model, upserted into the embedded Qdrant engine with the ids and
payloads the ``knowledge.embed_entry`` job uses, then HNSW-indexed. 40% of the entries are
global, 40% belong to the benchmark user's project, 20% to a project the user cannot see,
so every search carries the real visibility filter. Takes ~10-15 min on 2 cores.

Measures, with queries that are held-out paragraphs (never indexed, all distinct):

1. in-process, embedded engine: the vector query alone (target p95 < 10 ms), the query
   embedding alone, and embedding + vector query (target p95 < 30 ms);
2. through HTTP against a real ``codeatlas serve`` process on the data dir: sequential
   ``POST /api/v1/knowledge/search`` (checklist: p95 < 50 ms) — auth, membership, query
   embedding, vector search, read-back from the database, JSON — then 4 concurrent clients.

Run: ``python benchmarks/knowledge_search.py`` (``--help`` for sizes and paths).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from codeatlas.knowledge.chunking import entry_embed_text, sha256_text, split_entry
from codeatlas.knowledge.embeddings import LOCAL_MODEL_DIMENSION, LOCAL_MODEL_NAME, LocalEmbedder
from codeatlas.knowledge.indexing import _entry_wanted
from codeatlas.knowledge.runtime import CODE_COLLECTION, KB_COLLECTION
from codeatlas.knowledge.vector_store import EdgeVectorStore, SearchFilter, VectorPoint
from codeatlas.settings import Settings

SECRET = "benchmark-secret-key-0123456789-abcdefghijklmnop"
TARGET_VECTOR_MS = 10.0
TARGET_E2E_MS = 30.0
TARGET_HTTP_MS = 50.0
MARKER = "bench.json"


def pct(samples: list[float]) -> tuple[float, float, float]:
    p50, p95, p99 = np.percentile(samples, [50, 95, 99])
    return float(p50), float(p95), float(p99)


def report(label: str, samples: list[float], target: float | None = None) -> dict[str, float]:
    p50, p95, p99 = pct(samples)
    verdict = ""
    if target is not None:
        verdict = f"  target p95 < {target:g} ms: {'PASS' if p95 < target else 'FAIL'}"
    stats = f"p50 {p50:7.2f}  p95 {p95:7.2f}  p99 {p99:7.2f} ms  (n={len(samples)})"
    print(f"  {label:<52} {stats}{verdict}")
    return {"p50": round(p50, 3), "p95": round(p95, 3), "p99": round(p99, 3), "n": len(samples)}


# -- corpus --------------------------------------------------------------------------------


def corpus(needed: int) -> list[str]:
    """Distinct docstring paragraphs (60-700 chars) of site-packages, in a stable order."""
    root = Path(ast.__file__).parent / "site-packages"
    seen: set[str] = set()
    out: list[str] = []
    for path in sorted(root.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if not isinstance(
                node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
            ):
                continue
            doc = ast.get_docstring(node)
            for para in (doc or "").split("\n\n"):
                text = " ".join(para.split())
                if 60 <= len(text) <= 700 and text not in seen:
                    seen.add(text)
                    out.append(text)
        if len(out) >= needed:
            return out[:needed]
    raise SystemExit(f"only {len(out)} paragraphs found, {needed} needed")


def title_of(text: str) -> str:
    words = text.split()
    return " ".join(words[:8])[:300]


def query_of(text: str) -> str:
    return " ".join(text.split()[:14])


# -- setup ---------------------------------------------------------------------------------


def settings_for(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, secret_key=SECRET, env="development")


async def _write_rows(settings: Settings, texts: list[str]) -> dict[str, int]:
    from sqlalchemy import insert

    from codeatlas.db.session import Database, atomic
    from codeatlas.models import KbEntry, KbEntryChunk, Project, ProjectMembership, User

    db = Database(settings)
    try:
        async with db.session() as s, atomic(s):
            user = User(
                email="bench@example.com", password_hash="!", full_name="Bench", is_active=True
            )
            s.add(user)
            mine, other = Project(name="bench-mine"), Project(name="bench-other")
            s.add_all([mine, other])
            await s.flush()
            s.add(ProjectMembership(project_id=mine.id, user_id=user.id, role="owner"))
            ids = {"user_id": user.id, "project_mine": mine.id, "project_other": other.id}
        for start in range(0, len(texts), 5000):
            entries, chunks = [], []
            for i in range(start, min(start + 5000, len(texts))):
                text, title = texts[i], title_of(texts[i])
                piece = split_entry(text, settings.kb_chunk_chars)[0]
                entries.append(
                    {
                        "id": i + 1,
                        "project_id": project_for(i, ids),
                        "title": title,
                        "content": text,
                        "tags": [],
                        "author_id": ids["user_id"],
                        "version": 1,
                    }
                )
                chunks.append(
                    {
                        "entry_id": i + 1,
                        "index": 0,
                        "start_line": piece.start_line,
                        "end_line": piece.end_line,
                        "text": piece.text,
                        "content_hash": sha256_text(entry_embed_text(title, piece.text)),
                    }
                )
            async with db.session() as s, atomic(s):
                await s.execute(insert(KbEntry), entries)
                await s.execute(insert(KbEntryChunk), chunks)
        return ids
    finally:
        await db.dispose()


def project_for(i: int, ids: dict[str, int]) -> int | None:
    bucket = i % 5  # 40% global, 40% mine, 20% a project the user cannot see
    if bucket < 2:
        return None
    return ids["project_mine"] if bucket < 4 else ids["project_other"]


async def _write_vectors(
    settings: Settings, texts: list[str], vectors: np.ndarray, ids: dict[str, int]
) -> dict[str, Any]:
    from codeatlas.models import KbEntry, KbEntryChunk

    store = EdgeVectorStore(settings.resolved_vector_store_path, optimize_threshold=None)
    try:
        for name in (KB_COLLECTION, CODE_COLLECTION):
            await store.create_index_if_missing(
                name, LOCAL_MODEL_DIMENSION, model_name=LOCAL_MODEL_NAME
            )
        batch: list[VectorPoint] = []
        started = time.perf_counter()
        for i, text in enumerate(texts):
            title = title_of(text)
            piece = split_entry(text, settings.kb_chunk_chars)[0]
            entry = KbEntry(id=i + 1, project_id=project_for(i, ids), title=title, version=1)
            chunk = KbEntryChunk(
                entry_id=i + 1,
                index=0,
                start_line=piece.start_line,
                end_line=piece.end_line,
                text=piece.text,
                content_hash=sha256_text(entry_embed_text(title, piece.text)),
            )
            wanted = _entry_wanted(entry, [chunk])[0]
            batch.append(VectorPoint(wanted.id, vectors[i].tolist(), wanted.payload))
            if len(batch) == 2000:
                await store.upsert(KB_COLLECTION, batch)
                batch = []
        await store.upsert(KB_COLLECTION, batch)
        upserted = time.perf_counter() - started
        print(f"  upserted {len(texts)} points in {upserted:.1f} s; building HNSW ...", flush=True)
        started = time.perf_counter()
        await store.optimize(KB_COLLECTION)
        built = time.perf_counter() - started
        info = await store.info(KB_COLLECTION)
        print(f"  HNSW built in {built:.1f} s: {info}", flush=True)
        return {"upsert_s": round(upserted, 1), "hnsw_build_s": round(built, 1)}
    finally:
        await store.close()


def build(data_dir: Path, n: int, n_queries: int) -> dict[str, Any]:
    from codeatlas.db import migrate

    data_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(data_dir)
    print(f"building {n} entries under {data_dir} (one-time) ...", flush=True)
    started = time.perf_counter()
    texts = corpus(n + n_queries)
    index_texts, query_texts = texts[:n], texts[n:]
    print(f"  corpus: {len(texts)} paragraphs in {time.perf_counter() - started:.0f} s", flush=True)

    cache = data_dir / "vectors.npy"
    if cache.exists():
        vectors = np.load(cache)
    else:
        embedder = LocalEmbedder(batch_size=16, intra_op_threads=os.cpu_count() or 1)
        inputs = [entry_embed_text(title_of(t), t) for t in index_texts]
        vectors = np.empty((n, LOCAL_MODEL_DIMENSION), dtype=np.float32)
        t0 = time.perf_counter()
        for start in range(0, n, 2000):
            vectors[start : start + 2000] = embedder.embed_sync(inputs[start : start + 2000])
            done = min(n, start + 2000)
            rate = done / (time.perf_counter() - t0)
            print(f"  embedded {done}/{n} ({rate:.0f}/s)", flush=True)
        np.save(cache, vectors)
    migrate.upgrade(settings)
    ids = asyncio.run(_write_rows(settings, index_texts))
    timings = asyncio.run(_write_vectors(settings, index_texts, vectors, ids))
    meta = {
        "n": n,
        "model": LOCAL_MODEL_NAME,
        **ids,
        **timings,
        "queries": [query_of(t) for t in query_texts],
        "setup_s": round(time.perf_counter() - started, 1),
    }
    (data_dir / MARKER).write_text(json.dumps(meta))
    return meta


# -- measurements --------------------------------------------------------------------------


async def in_process(data_dir: Path, meta: dict[str, Any], queries: list[str]) -> dict[str, Any]:
    settings = settings_for(data_dir)
    store = EdgeVectorStore(settings.resolved_vector_store_path, optimize_threshold=None)
    embedder = LocalEmbedder(batch_size=16, intra_op_threads=settings.embedding_threads)
    flt = SearchFilter(project_ids=[0, meta["project_mine"]])
    out: dict[str, Any] = {}
    try:
        await store.create_index_if_missing(
            KB_COLLECTION, LOCAL_MODEL_DIMENSION, model_name=LOCAL_MODEL_NAME
        )
        print(f"  collection: {await store.info(KB_COLLECTION)}")
        await embedder.embed(["warm up"])
        vectors, embed_ms = [], []
        for q in queries:
            t = time.perf_counter()
            vectors.append((await embedder.embed([q]))[0])
            embed_ms.append((time.perf_counter() - t) * 1000)
        for v in vectors[:20]:
            await store.search(KB_COLLECTION, v, 10, flt)
        search_ms = []
        for v in vectors:
            t = time.perf_counter()
            hits = await store.search(KB_COLLECTION, v, 10, flt)
            search_ms.append((time.perf_counter() - t) * 1000)
            assert len(hits) == 10
        e2e_ms = []
        for q in queries:
            t = time.perf_counter()
            v = (await embedder.embed([q + " ?"]))[0]  # a new text: no cache anywhere
            await store.search(KB_COLLECTION, v, 10, flt)
            e2e_ms.append((time.perf_counter() - t) * 1000)
        out["vector_query"] = report(
            "vector query (top 10, visibility filter)", search_ms, TARGET_VECTOR_MS
        )
        out["embed_query"] = report("query embedding (local int8 MiniLM, 1 thread)", embed_ms)
        out["embed_plus_query"] = report("embedding + vector query", e2e_ms, TARGET_E2E_MS)
    finally:
        await store.close()
        await embedder.aclose()
    return out


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "QDRANT_"))
    }
    env.update(DATA_DIR=str(data_dir), SECRET_KEY=SECRET, LOG_LEVEL="WARNING", ENV="development")
    log = open(data_dir / "serve.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "codeatlas", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            raise SystemExit((data_dir / "serve.log").read_text())
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("server not ready:\n" + (data_dir / "serve.log").read_text())
        time.sleep(0.5)


def over_http(
    data_dir: Path, meta: dict[str, Any], queries: list[str], concurrency: int
) -> dict[str, Any]:
    from codeatlas.auth.tokens import create_access_token

    token = create_access_token(meta["user_id"], settings_for(data_dir))
    headers = {"Authorization": f"Bearer {token}"}
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    proc = start_server(data_dir, port)
    print(f"  codeatlas serve ready in {time.perf_counter() - started:.1f} s (pid {proc.pid})")
    out: dict[str, Any] = {}
    try:
        url = f"http://127.0.0.1:{port}/api/v1/knowledge/search"
        with httpx.Client(timeout=30) as c:
            for q in queries[:30]:
                r = c.post(url, json={"query": "warm " + q, "top_k": 10}, headers=headers)
                r.raise_for_status()
            latencies, server_ms, visible = [], [], 0
            for q in queries:
                t = time.perf_counter()
                r = c.post(url, json={"query": q, "top_k": 10}, headers=headers)
                latencies.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
                body = r.json()
                server_ms.append(body["took_ms"])
                results = body["results"]
                assert len(results) == 10, body
                visible += all(x["project_id"] in (None, meta["project_mine"]) for x in results)
            assert visible == len(queries), "a result outside the user's visibility"
        out["http_sequential"] = report(
            "HTTP POST /knowledge/search, 1 client", latencies, TARGET_HTTP_MS
        )
        out["server_took_ms"] = report("  of which inside the endpoint (took_ms)", server_ms)

        per_thread: list[list[float]] = [[] for _ in range(concurrency)]

        def client(k: int) -> None:
            with httpx.Client(timeout=30) as c:
                for q in queries[k::concurrency]:
                    t = time.perf_counter()
                    r = c.post(url, json={"query": q + " !", "top_k": 10}, headers=headers)
                    per_thread[k].append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - t0
        flat = [x for xs in per_thread for x in xs]
        out[f"http_{concurrency}_clients"] = report(f"HTTP, {concurrency} concurrent clients", flat)
        out["throughput_rps"] = round(len(flat) / elapsed, 1)
        print(f"  throughput with {concurrency} clients: {out['throughput_rps']} requests/s")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="entries (= vectors) to index")
    parser.add_argument("--queries", type=int, default=1000, help="distinct held-out queries")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "codeatlas-bench-knowledge",
        help="where the index is built once and reused (DATA_DIR of the served process)",
    )
    parser.add_argument("--rebuild", action="store_true", help="build the data dir again")
    args = parser.parse_args()
    data_dir = args.data_dir / f"n{args.n}"
    marker = data_dir / MARKER
    if args.rebuild and data_dir.exists():
        import shutil

        keep = data_dir / "vectors.npy"
        saved = keep.read_bytes() if keep.exists() else None
        shutil.rmtree(data_dir)
        if saved is not None:
            data_dir.mkdir(parents=True)
            keep.write_bytes(saved)
    meta = (
        json.loads(marker.read_text()) if marker.exists() else build(data_dir, args.n, args.queries)
    )
    queries = meta["queries"][: args.queries]
    print(f"\n{meta['n']} vectors ({meta['model']}), {len(queries)} distinct queries, ", end="")
    print(f"{os.cpu_count()} CPUs")
    print("in-process, embedded Qdrant engine:")
    results = {"setup": {k: meta[k] for k in ("upsert_s", "hnsw_build_s", "setup_s")}}
    results.update(asyncio.run(in_process(data_dir, meta, queries)))
    print("through HTTP, real `codeatlas serve`:")
    results.update(over_http(data_dir, meta, queries, args.concurrency))
    (data_dir / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nresults written to {data_dir / 'results.json'}")


if __name__ == "__main__":
    main()
