"""Ingestion throughput: upload → searchable for a repository of real code on the embedded
default, and the embedder's share of it.

Corpus: the first ``--files`` ``.py`` files (sorted) of real packages in this environment's
site-packages (the list is printed), uploaded as one zip archive.

Measured, in one run:

1. the local embedder's raw batch throughput on this corpus's chunks (what the indexing job
   embeds: path, symbol and chunk text), at the model's own 256 tokens and at
   ``EMBEDDING_MAX_TOKENS`` (default 128): chunks/s of ``LocalEmbedder.embed_sync`` on
   ``--sample`` chunks, batched by length;
2. upload → searchable on a real ``codeatlas serve`` (SQLite, embedded Valkey, embedded
   Qdrant engine, its worker child process): wall time from the upload request until
   ``GET /api/v1/projects/{id}/indexing`` reports every file searchable (or failed),
   files/s and chunks/s, and those chunks/s as a share of (1) at the same token limit.

Run: ``python benchmarks/ingestion.py --files 1000``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeatlas.auth.tokens import create_access_token  # noqa: E402
from codeatlas.code.parsing import parse_source  # noqa: E402
from codeatlas.db import migrate  # noqa: E402
from codeatlas.db.session import Database, atomic  # noqa: E402
from codeatlas.knowledge.chunking import code_embed_text  # noqa: E402
from codeatlas.knowledge.embeddings import LocalEmbedder  # noqa: E402
from codeatlas.models import Project, ProjectMembership, User  # noqa: E402
from codeatlas.settings import Settings  # noqa: E402

PACKAGES = (
    "starlette", "httpx", "fastapi", "pydantic", "sqlalchemy", "alembic", "dramatiq",
    "redis", "jinja2", "pygments", "anyio", "click", "uvicorn", "qdrant_client",
)  # fmt: skip
TARGET_S = 90.0
SHARE_TARGET = 0.70


def corpus(count: int) -> list[tuple[str, bytes]]:
    site = Path(sysconfig.get_paths()["purelib"])
    found: list[tuple[str, Path]] = []
    used = []
    for package in PACKAGES:
        if (site / package).is_dir():
            used.append(package)
            found += [
                (f"{package}/{p.relative_to(site / package).as_posix()}", p)
                for p in sorted((site / package).rglob("*.py"))
            ]
    chosen = [(name, path.read_bytes()) for name, path in found[:count]]
    size = sum(len(d) for _, d in chosen)
    print(f"corpus: {len(chosen)} .py files ({size / 1e6:.1f} MB) of {', '.join(used)} from {site}")
    return chosen


def raw_throughput(files: list[tuple[str, bytes]], sample: int, max_tokens: int) -> float:
    texts: list[str] = []
    for path, data in files:
        for c in parse_source(data.decode("utf-8", "replace"), "python").chunks:
            texts.append(code_embed_text(path, c.symbol, c.text))
    step = max(1, len(texts) // sample)
    texts = texts[::step][:sample]
    embedder = LocalEmbedder(max_length=max_tokens)
    embedder.embed_sync(texts[:16])  # load the model outside the timing
    t0 = time.perf_counter()
    embedder.embed_sync(texts)
    rate = len(texts) / (time.perf_counter() - t0)
    print(f"raw LocalEmbedder, {len(texts)} chunks, max {max_tokens} tokens: {rate:.1f} chunks/s")
    return rate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def setup(settings: Settings) -> tuple[int, int]:
    db = Database(settings)
    async with db.session() as s, atomic(s):
        user = User(email="bench@example.com", password_hash="!", is_active=True)
        project = Project(name="ingestion")
        s.add_all([user, project])
        await s.flush()
        s.add(ProjectMembership(project_id=project.id, user_id=user.id, role="owner"))
        ids = user.id, project.id
    await db.dispose()
    return ids


async def pipeline(files: list[tuple[str, bytes]], max_tokens: int) -> tuple[float, int]:
    tmp = Path(tempfile.mkdtemp(prefix="codeatlas-ingest-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))},
        "DATA_DIR": str(tmp),
        "ENV": "development",
        "LOG_LEVEL": "WARNING",
        "EMBEDDING_MAX_TOKENS": str(max_tokens),
        "SECRET_KEY": "ingestion-benchmark-secret-key-0123456789",
    }
    settings = Settings(data_dir=tmp, env="development", secret_key=env["SECRET_KEY"])  # type: ignore[call-arg]
    await asyncio.to_thread(migrate.upgrade, settings)
    user_id, project_id = await setup(settings)
    token = create_access_token(user_id, settings)
    port = free_port()
    log = (tmp / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "codeatlas", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            z.writestr(name, data)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as c:
            for _ in range(600):
                try:
                    if (await c.get("/health/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.5)
            t0 = time.perf_counter()
            r = await c.post(
                f"/api/v1/projects/{project_id}/files",
                files=[("archives", ("repo.zip", buf.getvalue(), "application/zip"))],
                headers=headers,
            )
            assert r.status_code in (200, 201), r.text
            body: dict = {}
            while time.perf_counter() - t0 < 3600:
                body = (
                    await c.get(f"/api/v1/projects/{project_id}/indexing", headers=headers)
                ).json()
                files_ = body["files"]
                if files_["total"] and files_["searchable"] + files_["failed"] == files_["total"]:
                    break
                await asyncio.sleep(0.5)
            elapsed = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(
        f"upload -> searchable: {body['files']['total']} files ({body['files']['failed']} "
        f"failed), {body['chunks']['total']} chunks in {elapsed:.1f} s "
        f"({body['files']['total'] / elapsed:.1f} files/s, "
        f"{body['chunks']['total'] / elapsed:.1f} chunks/s)"
    )
    return elapsed, int(body["chunks"]["total"])


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--sample", type=int, default=800)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--skip-pipeline", action="store_true")
    args = ap.parse_args()
    files = corpus(args.files)
    full = raw_throughput(files, args.sample, 256)
    raw = raw_throughput(files, args.sample, args.max_tokens)
    print(f"embedding {args.max_tokens} tokens instead of 256: {raw / full:.2f}x chunks/s")
    if args.skip_pipeline:
        return
    elapsed, chunks = await pipeline(files, args.max_tokens)
    share = chunks / elapsed / raw
    print(
        f"pipeline chunks/s = {share:.0%} of the raw embedder ({SHARE_TARGET:.0%} target); "
        f"upload -> searchable {elapsed:.1f} s ({TARGET_S:.0f} s target for 1,000 files)"
    )


if __name__ == "__main__":
    asyncio.run(main())
