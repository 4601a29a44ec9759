"""Keeping the vector store in step with the database: what the knowledge jobs do.

A point's id is derived from everything its vector and payload depend on (source, chunk
index, content hash, project, language, path/title), so:

* re-running a job is idempotent (same id, same vector);
* an unchanged chunk is never embedded again: the job lists the source's points, embeds
  only the ids it does not find, and deletes the ids that are no longer wanted;
* two jobs of the same document racing each other converge: each one re-reads the chunks
  after writing and, if they changed meanwhile, raises :class:`SourceChanged` so Dramatiq
  retries it against the new rows (the last writer always checks its own work).

Search reads every hit back from the database and drops a hit whose chunk hash no longer
matches, so a point left behind by a crash is never shown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from codeatlas.db.session import Database, atomic
from codeatlas.knowledge.chunking import code_embed_text, entry_embed_text, sha256_text
from codeatlas.knowledge.keyword import encode_document
from codeatlas.knowledge.runtime import (
    CODE_COLLECTION,
    KB_COLLECTION,
    KEYWORD_COLLECTION,
    REINDEX_ADVICE,
    KnowledgeRuntime,
)
from codeatlas.knowledge.vector_store import SearchFilter, VectorPoint, point_id
from codeatlas.models import CodeChunk, CodeDocument, DocumentStatus, KbEntry, KbEntryChunk

logger = logging.getLogger(__name__)

#: ``project_id`` payload of global entries (real project ids start at 1), so one integer
#: filter "any of [0, my projects]" covers "global or mine".
GLOBAL_PROJECT = 0
KIND_CODE = "code"
KIND_ENTRY = "entry"


class SourceChanged(Exception):
    """The rows changed while their vectors were written: retry against the new rows."""


class CollectionNotReady(Exception):
    """The collection is unusable (another model, store down): retry later or re-index."""


@dataclass(frozen=True, slots=True)
class IndexResult:
    embedded: int
    kept: int
    deleted: int

    def __str__(self) -> str:
        return f"embedded {self.embedded}, kept {self.kept}, deleted {self.deleted}"


@dataclass(frozen=True, slots=True)
class _Wanted:
    id: str
    text: str
    payload: dict[str, Any]
    symbol: str | None = None


async def _ready(runtime: KnowledgeRuntime, collection: str) -> None:
    state = await runtime.ensure_collection(collection)
    if state.mismatch:
        raise CollectionNotReady(f"{state.mismatch}; {REINDEX_ADVICE}")
    if not state.ready:
        raise CollectionNotReady(f"vector collection {collection} unavailable: {state.error}")


async def _sync_points(
    runtime: KnowledgeRuntime, collection: str, source_id: int, wanted: list[_Wanted]
) -> IndexResult:
    """Make the source's points exactly ``wanted``: embed the missing, delete the stale."""
    store = runtime.store()
    existing = await store.list_points(collection, SearchFilter(document_ids=[source_id]))
    missing = [w for w in wanted if w.id not in existing]
    if missing and collection == KEYWORD_COLLECTION:
        points = [
            VectorPoint(
                w.id,
                [],
                w.payload,
                sparse=encode_document(w.text, str(w.payload["path"]), w.symbol),
            )
            for w in missing
        ]
        await store.upsert(collection, points)
    elif missing:
        vectors = await runtime.embedder().embed([w.text for w in missing])
        await store.upsert(
            collection,
            [VectorPoint(w.id, v, w.payload) for w, v in zip(missing, vectors, strict=True)],
        )
    wanted_ids = {w.id for w in wanted}
    stale = [pid for pid in existing if pid not in wanted_ids]
    if stale:
        await store.delete(collection, stale)
    return IndexResult(len(missing), len(wanted) - len(missing), len(stale))


# -- code documents ----------------------------------------------------------------------


async def _code_snapshot(
    session: AsyncSession, document_id: int
) -> tuple[CodeDocument | None, list[CodeChunk]]:
    doc = await session.scalar(select(CodeDocument).where(CodeDocument.id == document_id))
    if doc is None:
        return None, []
    chunks = await session.scalars(
        select(CodeChunk).where(CodeChunk.document_id == document_id).order_by(CodeChunk.index)
    )
    return doc, list(chunks)


def _code_wanted(doc: CodeDocument, chunks: list[CodeChunk], salt: str) -> list[_Wanted]:
    """``salt`` names what else the vectors depend on (the tokens the model reads)."""
    out: list[_Wanted] = []
    language = doc.language or ""
    for c in chunks:
        text = code_embed_text(doc.file_path, c.symbol, c.text)
        digest = sha256_text(f"{doc.project_id}\0{language}\0{salt}{text}")
        out.append(
            _Wanted(
                id=point_id(f"code:{doc.id}:{digest}", c.index),
                text=text,
                payload={
                    "project_id": doc.project_id,
                    "document_id": doc.id,
                    "kind": KIND_CODE,
                    "language": language,
                    "chunk_index": c.index,
                    "content_hash": c.content_hash,
                    "path": doc.file_path,
                    "start_line": c.start_line,
                    "end_line": c.end_line,
                },
            )
        )
    return out


def _keyword_wanted(doc: CodeDocument, chunks: list[CodeChunk]) -> list[_Wanted]:
    """The keyword points of a document: the chunk text itself, path and symbol apart."""
    language = doc.language or ""
    return [
        _Wanted(
            # Everything the sparse vector depends on (path and symbol give bonuses).
            id=point_id(
                "kw:"
                + sha256_text(
                    f"{doc.id}\0{doc.project_id}\0{language}\0{doc.file_path}\0"
                    f"{c.symbol or ''}\0{c.content_hash}"
                ),
                c.index,
            ),
            text=c.text,
            symbol=c.symbol,
            payload={
                "project_id": doc.project_id,
                "document_id": doc.id,
                "kind": KIND_CODE,
                "language": language,
                "chunk_index": c.index,
                "content_hash": c.content_hash,
                "path": doc.file_path,
            },
        )
        for c in chunks
    ]


def _fingerprint(chunks: list[CodeChunk] | list[KbEntryChunk]) -> list[tuple[int, str]]:
    return [(c.index, c.content_hash) for c in chunks]


async def index_document(runtime: KnowledgeRuntime, db: Database, document_id: int) -> str:
    """Index a code document's chunks: keyword postings into ``code_keywords`` (first: they
    are cheap, so the document is keyword-searchable early), then vectors into
    ``code_chunks``; drop its points from both if it is gone."""
    embed = runtime.settings.knowledge_embed_code
    if runtime.keyword_index:
        await _ready(runtime, KEYWORD_COLLECTION)
    if embed:
        await _ready(runtime, CODE_COLLECTION)
    async with db.session() as s:
        doc, chunks = await _code_snapshot(s, document_id)
        salt = (
            f"max_tokens={runtime.settings.embedding_max_tokens}\0"
            if runtime.settings.embedding_provider == "local"
            else ""
        )
        wanted = _code_wanted(doc, chunks, salt) if doc is not None and embed else []
        keywords = _keyword_wanted(doc, chunks) if doc is not None else []
        before = _fingerprint(chunks)
        path = doc.file_path if doc is not None else None
    if runtime.keyword_index:
        await _sync_points(runtime, KEYWORD_COLLECTION, document_id, keywords)
    result = IndexResult(0, 0, 0)
    if embed:
        result = await _sync_points(runtime, CODE_COLLECTION, document_id, wanted)
    async with db.session() as s, atomic(s):
        # Write first (SQLite: a read that upgrades to a write fails at once if another
        # writer committed meanwhile); only a `parsed` document: a newer upload
        # (pending/processing) keeps its status. A changed document rolls it back.
        await s.execute(
            update(CodeDocument)
            .where(
                CodeDocument.id == document_id,
                CodeDocument.status == DocumentStatus.PARSED.value,
            )
            .values(status=DocumentStatus.SEARCHABLE.value)
        )
        doc_after, chunks_after = await _code_snapshot(s, document_id)
        if _fingerprint(chunks_after) != before or (doc_after is None) != (doc is None):
            raise SourceChanged(f"document {document_id} changed while it was embedded")
    logger.info("vectors of document %s (%s): %s", document_id, path, result)
    return str(result)


async def mark_index_failed(db: Database, document_id: int, error: str) -> None:
    """Indexing gave up on a parsed document: ``failed``, with the reason."""
    async with db.session() as s, atomic(s):
        await s.execute(
            update(CodeDocument)
            .where(
                CodeDocument.id == document_id,
                CodeDocument.status == DocumentStatus.PARSED.value,
            )
            .values(status=DocumentStatus.FAILED.value, error=f"indexing failed: {error}"[:4000])
        )


# -- knowledge-base entries ----------------------------------------------------------------


async def _entry_snapshot(
    session: AsyncSession, entry_id: int
) -> tuple[KbEntry | None, list[KbEntryChunk]]:
    entry = await session.scalar(select(KbEntry).where(KbEntry.id == entry_id))
    if entry is None:
        return None, []
    chunks = await session.scalars(
        select(KbEntryChunk).where(KbEntryChunk.entry_id == entry_id).order_by(KbEntryChunk.index)
    )
    return entry, list(chunks)


def _entry_wanted(entry: KbEntry, chunks: list[KbEntryChunk]) -> list[_Wanted]:
    project = entry.project_id if entry.project_id is not None else GLOBAL_PROJECT
    out: list[_Wanted] = []
    for c in chunks:
        out.append(
            _Wanted(
                id=point_id(f"entry:{entry.id}:{project}:{c.content_hash}", c.index),
                text=entry_embed_text(entry.title, c.text),
                payload={
                    "project_id": project,
                    "document_id": entry.id,
                    "kind": KIND_ENTRY,
                    "language": "",
                    "chunk_index": c.index,
                    "content_hash": c.content_hash,
                    "title": entry.title,
                    "start_line": c.start_line,
                    "end_line": c.end_line,
                },
            )
        )
    return out


async def index_entry(runtime: KnowledgeRuntime, db: Database, entry_id: int) -> str:
    """Embed an entry's pieces into ``kb_entries``; drop its points if it is gone."""
    await _ready(runtime, KB_COLLECTION)
    async with db.session() as s:
        entry, chunks = await _entry_snapshot(s, entry_id)
        wanted = _entry_wanted(entry, chunks) if entry is not None else []
        before = (entry.version if entry is not None else None, _fingerprint(chunks))
    result = await _sync_points(runtime, KB_COLLECTION, entry_id, wanted)
    async with db.session() as s:
        entry_after, chunks_after = await _entry_snapshot(s, entry_id)
    after = (entry_after.version if entry_after is not None else None, _fingerprint(chunks_after))
    if after != before:
        raise SourceChanged(f"entry {entry_id} changed while it was embedded")
    logger.info("vectors of entry %s: %s", entry_id, result)
    return str(result)


# -- deletions ---------------------------------------------------------------------------


async def delete_source_points(runtime: KnowledgeRuntime, scope: str, source_id: int) -> None:
    """Delete the points of a deleted document (``document``), entry or project."""
    store = runtime.store()
    if scope == "document":
        targets = [
            (CODE_COLLECTION, SearchFilter(document_ids=[source_id])),
            (KEYWORD_COLLECTION, SearchFilter(document_ids=[source_id])),
        ]
    elif scope == "entry":
        targets = [(KB_COLLECTION, SearchFilter(document_ids=[source_id]))]
    elif scope == "project":
        targets = [
            (CODE_COLLECTION, SearchFilter(project_ids=[source_id])),
            (KEYWORD_COLLECTION, SearchFilter(project_ids=[source_id])),
            (KB_COLLECTION, SearchFilter(project_ids=[source_id])),
        ]
    else:
        raise ValueError(f"unknown scope {scope!r}")
    for collection, flt in targets:
        # A collection of another model holds nothing of ours worth keeping: skip it.
        await _ready(runtime, collection)
        await store.delete_by_filter(collection, flt)
    logger.info("deleted vectors of %s %s", scope, source_id)
