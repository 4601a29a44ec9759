"""A code corpus for the chat benchmark: ``chunks`` chunks of real code in one project,
left in a database and a DATA_DIR's embedded vector store exactly as CodeAtlas's own
indexing would have left them, so that ``codeatlas serve`` on that DATABASE_URL and
DATA_DIR retrieves from them (hybrid code search: the dense ``code_chunks`` collection, the
sparse ``code_keywords`` collection, both read back from the database by ``hydrate_code``).

* Code: :func:`keyword_search.build_base` (real ``.py`` files of site-packages cut by the
  tree-sitter chunker); whole files are kept until ``base_chunks`` chunks, each file parsed
  again with :func:`codeatlas.code.parsing.parse_source` for what the rows need besides
  the text (lines, kind, symbols). The base is replicated with path variation
  (``copyNNNN/<package path>``) to reach ``chunks``; the last document may be cut short.
* Rows: ``code_documents`` (status ``searchable``) and ``code_chunks`` as
  ``code.process_file`` writes them (:func:`codeatlas.code.tasks._chunk_rows`), a user, the
  project and the user's owner membership, all with bulk inserts.
* Points: ids, payloads and embed texts from :func:`codeatlas.knowledge.indexing._code_wanted`
  and :func:`~codeatlas.knowledge.indexing._keyword_wanted` (what ``index_document`` uses).
  Dense vectors: the base chunks embedded with the configured embedder (the runtime's,
  the local ONNX MiniLM by default; cached in the data dir as .npy); a replica gets its base
  vector plus Gaussian noise of relative norm ``noise``, renormalised (what matters is the
  HNSW search over that many points). Sparse vectors: ``encode_document`` of each replica
  with its own path. The dense collection is HNSW-indexed (``optimize``) before serving,
  as the store's own optimize threshold would have done; the keyword collection is left as
  indexing leaves it (the store never optimizes sparse collections).

A marker file in the data dir (chunk count, database URL, model, ...) lets a second call
with the same arguments reuse the corpus after checking the row and point counts.

Standalone: ``python benchmarks/chat_corpus.py --chunks 100000 --dir /tmp/codeatlas-chat-corpus``
(DATABASE_URL from the environment, SQLite when unset; the data dir is
:func:`corpus_location`'s, one per database and size under ``--dir``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from keyword_search import _site_packages, build_base  # noqa: E402

from codeatlas.code.languages import detect_language  # noqa: E402
from codeatlas.code.parsing import ParseResult, parse_source  # noqa: E402
from codeatlas.code.tasks import _chunk_rows, _Snapshot, symbol_rows  # noqa: E402
from codeatlas.db import migrate  # noqa: E402
from codeatlas.db.session import Database, atomic  # noqa: E402
from codeatlas.knowledge.chunking import code_embed_text  # noqa: E402
from codeatlas.knowledge.indexing import _code_wanted, _keyword_wanted  # noqa: E402
from codeatlas.knowledge.keyword import TOKENIZER, encode_document  # noqa: E402
from codeatlas.knowledge.runtime import (  # noqa: E402
    CODE_COLLECTION,
    KB_COLLECTION,
    KEYWORD_COLLECTION,
    KnowledgeRuntime,
)
from codeatlas.knowledge.vector_store import EdgeVectorStore, VectorPoint  # noqa: E402
from codeatlas.models import (  # noqa: E402
    CodeChunk,
    CodeDocument,
    DocumentStatus,
    Project,
    ProjectMembership,
    User,
)
from codeatlas.settings import Settings  # noqa: E402

MARKER = "chat_corpus.json"
#: The corpus's owner and project are named after its size, so corpora of several sizes can
#: share a database (each in its own data dir); rebuilding one replaces only its namesake.
CORPUS_EMAIL = "chat-bench-corpus-{chunks}@example.com"
CORPUS_PROJECT = "chat-bench-corpus-{chunks}"
BATCH = 2000


@dataclass(frozen=True)
class CorpusInfo:
    user_id: int
    project_id: int
    chunks: int
    documents: int
    files: int
    packages: list[str]
    base_chunks: int
    replicas: float
    model: str
    database_url: str
    data_dir: str
    build_s: float
    reused: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        how = "reused" if self.reused else "built"
        return (
            f"corpus: {self.chunks} code chunks in {self.documents} documents of project "
            f"{self.project_id} (user {self.user_id}): {self.base_chunks} base chunks of "
            f"{self.files} real .py files ({', '.join(self.packages)}) replicated "
            f"x{self.replicas:.1f} as copyNNNN/<path>; {self.model}; {how} "
            f"(build {self.build_s:.0f} s)"
        )


@dataclass
class _File:
    """One base file: its site-packages path, bytes and parse."""

    rel: str
    data: bytes
    result: ParseResult
    first: int  # index of its first chunk in the base chunk list


@dataclass
class _Doc:
    """One written document: which copy of which base file, its rows (detached)."""

    copy: int
    file: _File
    doc: CodeDocument
    chunks: list[CodeChunk]


def corpus_settings(data_dir: Path, database_url: str) -> Settings:
    # The embedder's threads change the speed, never the vectors.
    return Settings(
        env="test",
        data_dir=data_dir,
        database_url=database_url,
        embedding_threads=os.cpu_count() or 1,
    )


def _salt(settings: Settings) -> str:
    """What else the dense point ids depend on (as ``indexing.index_document`` computes it)."""
    if settings.embedding_provider == "local":
        return f"max_tokens={settings.embedding_max_tokens}\0"
    return ""


# -- the base: real files, their chunks ----------------------------------------------------


def _base(max_files: int, base_chunks: int) -> list[_File]:
    """Whole files of :func:`build_base`'s corpus until ``base_chunks`` chunks."""
    chunks = build_base(max_files)
    root = _site_packages()
    by_file: dict[str, list[tuple[str | None, str]]] = {}
    for rel, symbol, text in chunks:
        by_file.setdefault(rel, []).append((symbol, text))
    files: list[_File] = []
    total = 0
    for rel, expected in by_file.items():
        if total >= base_chunks:
            break
        data = (root / rel).read_bytes()
        result = parse_source(data.decode("utf-8"), detect_language(rel, data[:512]))
        # The same parse as build_base's: the rows get its lines, kinds and symbols.
        assert [(c.symbol, c.text) for c in result.chunks] == expected, rel
        if not result.chunks:
            continue
        files.append(_File(rel, data, result, total))
        total += len(result.chunks)
    return files


def _layout(files: list[_File], chunks: int) -> Iterator[tuple[int, _File, int]]:
    """``(copy, file, chunks kept)`` of every document, until ``chunks`` chunks in all."""
    left = chunks
    copy = 0
    while left > 0:
        for f in files:
            keep = min(left, len(f.result.chunks))
            yield copy, f, keep
            left -= keep
            if left == 0:
                return
        copy += 1


def _doc_path(copy: int, rel: str) -> str:
    return f"copy{copy:04d}/{rel}"


# -- dense base vectors ---------------------------------------------------------------------


async def _base_vectors(
    settings: Settings, runtime: KnowledgeRuntime, cache_dir: Path, files: list[_File]
) -> tuple[np.ndarray, float]:
    """The base chunks' vectors, embedded as the copy0000 documents' chunks are (cached)."""
    texts = [
        code_embed_text(_doc_path(0, f.rel), c.symbol, c.text)
        for f in files
        for c in f.result.chunks
    ]
    digest = hashlib.sha256(
        "\0".join([runtime.model_name, _salt(settings), *texts]).encode()
    ).hexdigest()[:16]
    cache = cache_dir / f"base-vectors-{digest}.npy"
    if cache.exists():
        vectors = np.load(cache)
        print(f"  base vectors: {len(vectors)} from {cache.name} (cached)", flush=True)
        return vectors, 0.0
    embedder = runtime.embedder()
    out = np.empty((len(texts), runtime.dimension), dtype=np.float32)
    started = time.perf_counter()
    step = 256
    for start in range(0, len(texts), step):
        out[start : start + step] = await embedder.embed(texts[start : start + step])
        done = min(len(texts), start + step)
        rate = done / (time.perf_counter() - started)
        print(f"  embedded {done}/{len(texts)} base chunks ({rate:.0f}/s)", flush=True)
    elapsed = time.perf_counter() - started
    np.save(cache, out)
    return out, elapsed


# -- database -------------------------------------------------------------------------------


async def _ensure_database(url: str) -> None:
    """Create a PostgreSQL database that does not exist yet (a SQLite file's directory)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database:
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        return
    from tests.conftest import pg_admin

    async with pg_admin(url) as admin:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", u.database):
            await admin.execute(f'CREATE DATABASE "{u.database}"')
            print(f"  created database {u.database}", flush=True)


async def _owner_and_project(db: Database, chunks: int) -> tuple[int, int]:
    """A fresh benchmark user and project (the previous ones and all they own deleted)."""
    email, name = CORPUS_EMAIL.format(chunks=chunks), CORPUS_PROJECT.format(chunks=chunks)
    async with db.session() as s, atomic(s):
        # ON DELETE CASCADE takes the documents, chunks, memberships and chats along.
        await s.execute(delete(Project).where(Project.name == name))
        await s.execute(delete(User).where(User.email == email))
        user = User(email=email, password_hash="!", full_name="Chat benchmark", is_active=True)
        s.add(user)
        await s.flush()
        project = Project(name=name, created_by_id=user.id)
        s.add(project)
        await s.flush()
        s.add(ProjectMembership(project_id=project.id, user_id=user.id, role="owner"))
        return user.id, project.id


async def _write_rows(
    db: Database, project_id: int, layout: list[tuple[int, _File, int]]
) -> list[_Doc]:
    """Documents and chunks, bulk-inserted; the (detached) rows, for the points."""
    out: list[_Doc] = []
    symbols = {id(f): symbol_rows(f.result) for _, f, _ in layout}
    for start in range(0, len(layout), BATCH):
        part = layout[start : start + BATCH]
        docs: list[dict[str, Any]] = [
            {
                "project_id": project_id,
                "file_path": _doc_path(copy, f.rel),
                "file_name": f.rel.rsplit("/", 1)[-1],
                "language": f.result.language,
                "size": len(f.data),
                "content_hash": hashlib.sha256(f.data).hexdigest(),
                "parseable": True,
                "status": DocumentStatus.SEARCHABLE.value,
                "symbols": symbols[id(f)],
                "error": f.result.error,
                "version": 1,
            }
            for copy, f, _ in part
        ]
        async with db.session() as s, atomic(s):
            ids = list(
                await s.scalars(
                    insert(CodeDocument).returning(CodeDocument.id, sort_by_parameter_order=True),
                    docs,
                )
            )
            rows: list[dict[str, Any]] = []
            for doc_id, row, (copy, f, keep) in zip(ids, docs, part, strict=True):
                result = f.result
                if keep < len(result.chunks):
                    result = ParseResult(
                        result.language, result.symbols, result.imports,
                        result.chunks[:keep], result.error,
                    )  # fmt: skip
                snap = _Snapshot(
                    doc_id, project_id, row["file_path"], 1, row["content_hash"], row["language"]
                )
                chunk_rows = _chunk_rows(snap, result)
                rows += chunk_rows
                doc = CodeDocument(
                    id=doc_id,
                    project_id=project_id,
                    file_path=row["file_path"],
                    language=row["language"],
                )
                out.append(_Doc(copy, f, doc, [CodeChunk(**r) for r in chunk_rows]))
            for i in range(0, len(rows), BATCH):
                await s.execute(insert(CodeChunk), rows[i : i + BATCH])
    return out


# -- vector store ---------------------------------------------------------------------------


async def _write_points(
    settings: Settings,
    store: EdgeVectorStore,
    docs: list[_Doc],
    base: np.ndarray,
    noise: float,
    seed: int,
) -> dict[str, float]:
    salt = _salt(settings)
    rng = np.random.default_rng(seed)
    dim = base.shape[1]
    dense: list[VectorPoint] = []
    sparse: list[VectorPoint] = []
    written = 0
    next_report = 20_000
    timings = {"sparse_s": 0.0, "dense_s": 0.0}
    started = time.perf_counter()
    for d in docs:
        doc, chunks = d.doc, d.chunks
        wanted = _code_wanted(doc, chunks, salt)
        vectors = base[d.file.first : d.file.first + len(chunks)].astype(np.float64)
        if d.copy > 0:
            vectors = vectors + rng.standard_normal(vectors.shape) * (noise / np.sqrt(dim))
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for w, v in zip(wanted, vectors, strict=True):
            dense.append(VectorPoint(w.id, v.tolist(), w.payload))
        t = time.perf_counter()
        for w in _keyword_wanted(doc, chunks):
            # What indexing._sync_points writes into the keyword collection.
            vec = encode_document(w.text, str(w.payload["path"]), w.symbol)
            sparse.append(VectorPoint(w.id, [], w.payload, sparse=vec))
        timings["sparse_s"] += time.perf_counter() - t
        if len(dense) >= BATCH:
            written += await _flush(store, dense, sparse, timings)
            if written >= next_report:
                next_report += 20_000
                rate = written / (time.perf_counter() - started)
                print(f"  {written} points x 2 collections ({rate:.0f} chunks/s)", flush=True)
    await _flush(store, dense, sparse, timings)
    return timings


async def _flush(
    store: EdgeVectorStore,
    dense: list[VectorPoint],
    sparse: list[VectorPoint],
    timings: dict[str, float],
) -> int:
    n = len(dense)
    t = time.perf_counter()
    await store.upsert(CODE_COLLECTION, dense)
    t2 = time.perf_counter()
    await store.upsert(KEYWORD_COLLECTION, sparse)
    timings["dense_s"] += t2 - t
    timings["sparse_s"] += time.perf_counter() - t2
    dense.clear()
    sparse.clear()
    return n


async def _counts(settings: Settings, project_id: int) -> tuple[int, int, int]:
    """Chunks of the project in the database, points in the two code collections."""
    db = Database(settings)
    try:
        async with db.session() as s:
            rows = await s.scalar(
                select(func.count())
                .select_from(CodeChunk)
                .where(CodeChunk.project_id == project_id)
            )
    except Exception:  # no database, no schema: nothing to reuse
        return -1, -1, -1
    finally:
        await db.dispose()
    path = settings.resolved_vector_store_path
    if not path.exists():
        return int(rows or 0), -1, -1
    store = EdgeVectorStore(path, optimize_threshold=None)
    try:
        return (
            int(rows or 0),
            await store.count(CODE_COLLECTION),
            await store.count(KEYWORD_COLLECTION),
        )
    except Exception:
        return int(rows or 0), -1, -1
    finally:
        await store.close()


# -- the entry point ------------------------------------------------------------------------


async def ensure_corpus(
    data_dir: Path,
    database_url: str,
    chunks: int = 100_000,
    *,
    max_files: int = 400,
    base_chunks: int = 3000,
    noise: float = 0.25,
    seed: int = 7,
    rebuild: bool = False,
    cache_dir: Path | None = None,
) -> CorpusInfo:
    """The corpus of ``chunks`` chunks in ``database_url`` + ``data_dir`` (built if needed).

    ``data_dir`` becomes the served DATA_DIR: its ``vectors/`` is the embedded store (or
    VECTOR_STORE_PATH when set, as for ``serve``). ``base_chunks`` caps the real chunks that
    are embedded (the local model does ~60/s); ``noise`` is the relative norm of the
    Gaussian noise added to a replica's base vector. The base vectors are cached in
    ``cache_dir`` (default ``data_dir``), keyed by the model and the texts.
    """
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = corpus_settings(data_dir, database_url)
    runtime = KnowledgeRuntime(settings)
    wanted = {
        "chunks": chunks,
        "database_url": database_url,
        "model": runtime.model_name,
        "dimension": runtime.dimension,
        "salt": _salt(settings),
        "tokenizer": TOKENIZER,
        "max_files": max_files,
        "base_chunks": base_chunks,
        "noise": noise,
        "seed": seed,
    }
    marker = data_dir / MARKER
    if marker.exists() and not rebuild:
        meta = json.loads(marker.read_text())
        if {k: meta.get(k) for k in wanted} == wanted:
            counts = await _counts(settings, meta["info"]["project_id"])
            if counts == (chunks, chunks, chunks):
                return CorpusInfo(**{**meta["info"], "reused": True})
            print(f"corpus marker found but rows/points are {counts}: rebuilding", flush=True)
        else:
            print("corpus marker is for other arguments: rebuilding", flush=True)
    marker.unlink(missing_ok=True)

    print(f"building a {chunks}-chunk corpus in {data_dir} on {database_url}", flush=True)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    files = _base(max_files, base_chunks)
    base_total = sum(len(f.result.chunks) for f in files)
    packages = list(dict.fromkeys(f.rel.split("/", 1)[0] for f in files))
    layout = list(_layout(files, chunks))
    print(
        f"  base: {len(files)} files of {len(packages)} packages ({', '.join(packages)}), "
        f"{base_total} chunks; replicated x{chunks / base_total:.2f} as copyNNNN/<path> "
        f"-> {chunks} chunks in {len(layout)} documents",
        flush=True,
    )
    timings["parse_s"] = time.perf_counter() - started

    try:
        base, timings["embed_s"] = await _base_vectors(
            settings, runtime, cache_dir or data_dir, files
        )
    finally:
        await runtime.aclose()

    t = time.perf_counter()
    await _ensure_database(database_url)
    await asyncio.to_thread(migrate.upgrade, settings)
    db = Database(settings)
    try:
        user_id, project_id = await _owner_and_project(db, chunks)
        docs = await _write_rows(db, project_id, layout)
    finally:
        await db.dispose()
    timings["rows_s"] = time.perf_counter() - t
    print(f"  rows written in {timings['rows_s']:.1f} s", flush=True)

    path = settings.resolved_vector_store_path
    if not path.resolve().is_relative_to(data_dir):
        raise SystemExit(f"VECTOR_STORE_PATH={path} is outside {data_dir}: unset it")
    if path.exists():
        shutil.rmtree(path)
    store = EdgeVectorStore(path, optimize_threshold=None)
    try:
        for name in (CODE_COLLECTION, KEYWORD_COLLECTION, KB_COLLECTION):
            dimension, model_name = runtime.identity(name)
            await store.create_index_if_missing(name, dimension, model_name=model_name)
        timings.update(await _write_points(settings, store, docs, base, noise, seed))
        print(
            f"  points written (dense {timings['dense_s']:.1f} s, sparse incl. encoding "
            f"{timings['sparse_s']:.1f} s); building HNSW ...",
            flush=True,
        )
        t = time.perf_counter()
        await store.optimize(CODE_COLLECTION)
        timings["hnsw_s"] = time.perf_counter() - t
        print(
            f"  HNSW built in {timings['hnsw_s']:.1f} s: {await store.info(CODE_COLLECTION)}",
            flush=True,
        )
    finally:
        await store.close()

    info = CorpusInfo(
        user_id=user_id,
        project_id=project_id,
        chunks=chunks,
        documents=len(layout),
        files=len(files),
        packages=packages,
        base_chunks=base_total,
        replicas=chunks / base_total,
        model=runtime.model_name,
        database_url=database_url,
        data_dir=str(data_dir),
        build_s=round(time.perf_counter() - started, 1),
        timings={k: round(v, 1) for k, v in timings.items()},
    )
    marker.write_text(json.dumps({**wanted, "info": asdict(info)}, indent=2))
    print(f"  corpus built in {info.build_s:.0f} s ({info.timings})", flush=True)
    return info


def corpus_location(root: Path, chunks: int) -> tuple[Path, str]:
    """``(data dir, database URL)`` of the corpus of ``chunks`` chunks under ``root``.

    A vector store belongs to one database (its payloads carry that database's ids), so
    each database and size gets its own data dir under ``root``: DATABASE_URL when set
    (named after it), else SQLite in that data dir. The base vectors are shared in ``root``.
    """
    url = os.environ.get("DATABASE_URL")
    if not url:
        data_dir = (root / f"sqlite-{chunks}").resolve()
        return data_dir, f"sqlite+aiosqlite:///{data_dir / 'codeatlas.db'}"
    u = make_url(url)
    name = Path(u.database or "db").name.replace(".", "_")
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return (root / f"{u.get_backend_name()}-{name}-{digest}-{chunks}").resolve(), url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("/tmp/codeatlas-chat-corpus"),
        help="root of the corpora (one data dir per database and size inside)",
    )
    parser.add_argument("--base-chunks", type=int, default=3000, help="real chunks embedded")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    data_dir, url = corpus_location(args.dir, args.chunks)
    info = asyncio.run(
        ensure_corpus(
            data_dir,
            url,
            args.chunks,
            base_chunks=args.base_chunks,
            rebuild=args.rebuild,
            cache_dir=args.dir,
        )
    )
    print(info.describe())


if __name__ == "__main__":
    main()
