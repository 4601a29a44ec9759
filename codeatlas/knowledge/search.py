"""Semantic search over the vector store, read back from the database (checklist 4-B).

Who may see what (:class:`Scope`): code of the projects the caller belongs to; entries of
those projects and every global entry. The scope is applied twice: as the vector store's
payload filter (so ``top_k`` is filled with visible points) and again when the hits are read
back from the database, which is the source of truth — a point of a deleted row, of a row
that moved, or whose text changed since it was embedded is dropped, never shown.

Failures are 503s with a code (:mod:`codeatlas.knowledge.errors`), never empty or made-up
results: vector store down → ``VECTOR_STORE_UNAVAILABLE``, embedder down →
``EMBEDDINGS_UNAVAILABLE``, collection of another model → ``EMBEDDING_MODEL_MISMATCH``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Select,
    and_,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from codeatlas.errors import NotFound
from codeatlas.knowledge.embeddings import EmbeddingUnavailable
from codeatlas.knowledge.errors import EmbeddingsDown, ModelMismatch, VectorStoreDown
from codeatlas.knowledge.indexing import GLOBAL_PROJECT, KIND_CODE, KIND_ENTRY
from codeatlas.knowledge.runtime import COLLECTIONS, REINDEX_ADVICE, KnowledgeRuntime
from codeatlas.knowledge.vector_store import (
    EmbeddingModelMismatch,
    SearchFilter,
    VectorHit,
    VectorStoreError,
)
from codeatlas.models import CodeChunk, CodeDocument, KbEntry, KbEntryChunk, ProjectMembership

logger = logging.getLogger(__name__)

SNIPPET_CHARS = 400


@dataclass(frozen=True, slots=True)
class Scope:
    """Projects whose code and entries the caller may see (global entries always)."""

    project_ids: list[int]

    @property
    def entry_project_ids(self) -> list[int]:
        return [GLOBAL_PROJECT, *self.project_ids]


async def member_project_ids(session: AsyncSession, user_id: int) -> list[int]:
    rows = await session.scalars(
        select(ProjectMembership.project_id).where(ProjectMembership.user_id == user_id)
    )
    return sorted(rows)


async def resolve_scope(session: AsyncSession, user_id: int, project_id: int | None) -> Scope:
    """The caller's scope, narrowed to ``project_id`` (404 unless a member, like elsewhere)."""
    if project_id is None:
        return Scope(await member_project_ids(session, user_id))
    found = await session.scalar(
        select(ProjectMembership.project_id).where(
            ProjectMembership.project_id == project_id, ProjectMembership.user_id == user_id
        )
    )
    if found is None:
        raise NotFound("Project not found")
    return Scope([project_id])


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result with the full text of its piece (the context builder needs it)."""

    kind: str
    source_id: int  # entry id or document id
    chunk_index: int
    score: float
    project_id: int | None
    title: str | None
    path: str | None
    language: str | None
    symbol: str | None
    start_line: int
    end_line: int
    text: str

    @property
    def result_id(self) -> str:
        return f"{self.kind}:{self.source_id}:{self.chunk_index}"


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """Whole lines from the start of ``text`` up to ``limit`` characters (at least one cut line)."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    return text[: cut if cut > 0 else limit].rstrip() + "\n…"


# -- the vector side -----------------------------------------------------------------------


async def check_collections(runtime: KnowledgeRuntime, kinds: Iterable[str]) -> None:
    """Raise the right 503 unless every collection of ``kinds`` is usable."""
    for kind in kinds:
        state = await runtime.ensure_collection(COLLECTIONS[kind])
        if state.mismatch:
            raise ModelMismatch(f"{state.mismatch}; {REINDEX_ADVICE}")
        if not state.ready:
            raise VectorStoreDown(f"The vector store is unavailable: {state.error}")


async def embed_query(runtime: KnowledgeRuntime, query: str) -> list[float]:
    try:
        return (await runtime.embedder().embed([query]))[0]
    except EmbeddingUnavailable as exc:
        logger.warning("query embedding failed: %s", exc)
        raise EmbeddingsDown(f"The embedding service is unavailable: {exc}") from exc


async def vector_search(
    runtime: KnowledgeRuntime, kind: str, vector: Sequence[float], limit: int, flt: SearchFilter
) -> list[VectorHit]:
    collection = COLLECTIONS[kind]
    try:
        return await runtime.store().search(collection, vector, limit, flt)
    except EmbeddingModelMismatch as exc:
        raise ModelMismatch(f"{exc}. Run `codeatlas reindex`.") from exc
    except VectorStoreError as exc:
        logger.warning("vector search in %s failed: %s", collection, exc)
        runtime.mark_unavailable(collection, str(exc))
        raise VectorStoreDown(f"The vector store is unavailable: {exc}") from exc


# -- reading hits back from the database ---------------------------------------------------


def pair_of(hit: VectorHit) -> tuple[int, int] | None:
    """The ``(document_id, chunk_index)`` a point stands for; None for a point written by
    something else (never shown)."""
    try:
        return int(hit.payload["document_id"]), int(hit.payload["chunk_index"])
    except (KeyError, TypeError, ValueError):
        return None


def pairs_of(hits: Iterable[VectorHit]) -> list[tuple[int, int]]:
    return [pair for h in hits if (pair := pair_of(h)) is not None]


def _any_pair(
    source: InstrumentedAttribute[int],
    index: InstrumentedAttribute[int],
    pairs: list[tuple[int, int]],
) -> ColumnElement[bool]:
    """``(source, index)`` is one of ``pairs``, as ORed equalities.

    Not a row-value ``IN``: SQLite answers that by scanning the whole (source, index) index
    (6 ms at 100k rows, measured), while each ORed pair is one index lookup (0.01 ms).
    """
    return or_(*[and_(source == a, index == b) for a, b in pairs])


CodeRow = tuple[CodeChunk, str, str | None]


def code_rows_query(
    dialect: str, pairs: list[tuple[int, int]], scope: Scope
) -> Select[CodeChunk, str, str | None]:
    """The statement of :func:`code_rows` for ``dialect`` (``pairs`` not empty)."""
    query = select(CodeChunk, CodeDocument.file_path, CodeDocument.language).join(
        CodeDocument, CodeDocument.id == CodeChunk.document_id
    )
    if dialect == "postgresql":
        wanted = (
            select(
                func.unnest(type_coerce([a for a, _ in pairs], ARRAY(Integer))).label("d"),
                func.unnest(type_coerce([b for _, b in pairs], ARRAY(Integer))).label("i"),
            )
        ).subquery()
        query = query.join(
            wanted, and_(CodeChunk.document_id == wanted.c.d, CodeChunk.index == wanted.c.i)
        ).where(CodeChunk.project_id == func.any(type_coerce(scope.project_ids, ARRAY(Integer))))
    else:
        # ``project_id + 0``: an expression, so SQLite cannot answer the statement from the
        # project_id index. Without statistics (the embedded default never ANALYZEs) its
        # planner preferred that index and read every chunk of the project to filter the
        # pairs: 31 ms for 3 pairs, 68 ms for 48 at 100 k chunks in one project, against
        # one lookup per pair through (document_id, index).
        query = query.where(
            _any_pair(CodeChunk.document_id, CodeChunk.index, pairs),
            (CodeChunk.project_id + 0).in_(scope.project_ids),
        )
    return query


async def code_rows(
    session: AsyncSession, pairs: Sequence[tuple[int, int]], scope: Scope
) -> dict[tuple[int, int], CodeRow]:
    """The chunks ``(document_id, index)`` of ``pairs`` that exist in a project of ``scope``,
    with their document's path and language: one statement.

    On PostgreSQL the pairs are two array parameters joined with ``unnest``: the statement
    text is the same for any number of pairs (one prepared statement, one cached plan, an
    index lookup per pair), where 100 ORed pairs cost a new plan each time (measured on
    100 k chunks: the two read-backs of a hybrid search were ~10 ms). SQLite keeps the ORed
    pairs (see :func:`_any_pair`).
    """
    pairs = list(dict.fromkeys(pairs))
    if not pairs or not scope.project_ids:
        return {}
    query = code_rows_query(session.get_bind().dialect.name, pairs, scope)
    rows = await session.execute(query)
    return {(c.document_id, c.index): (c, path, lang) for c, path, lang in rows}


def code_hits(hits: Sequence[VectorHit], found: dict[tuple[int, int], CodeRow]) -> list[Hit]:
    """``hits`` whose chunk was found (:func:`code_rows`) with the text they were made of."""
    out: list[Hit] = []
    for h in hits:
        key = pair_of(h)
        row = found.get(key) if key is not None else None
        if row is None or row[0].content_hash != h.payload.get("content_hash"):
            continue
        chunk, path, language = row
        out.append(
            Hit(
                kind=KIND_CODE,
                source_id=chunk.document_id,
                chunk_index=chunk.index,
                score=h.score,
                project_id=chunk.project_id,
                title=None,
                path=path,
                language=language,
                symbol=chunk.symbol,
                start_line=chunk.start_line,
                end_line=chunk.end_line,
                text=chunk.text,
            )
        )
    return out


async def hydrate_code(session: AsyncSession, hits: Sequence[VectorHit], scope: Scope) -> list[Hit]:
    """The code hits whose chunk still exists unchanged in a project of ``scope``."""
    return code_hits(hits, await code_rows(session, pairs_of(hits), scope))


async def hydrate_entries(
    session: AsyncSession, hits: Sequence[VectorHit], scope: Scope
) -> list[Hit]:
    """The entry hits whose piece still exists unchanged in an entry visible in ``scope``."""
    pairs = pairs_of(hits)
    if not pairs:
        return []
    visible: ColumnElement[bool] = KbEntry.project_id.is_(None)
    if scope.project_ids:
        visible = visible | KbEntry.project_id.in_(scope.project_ids)
    rows = await session.execute(
        select(KbEntryChunk, KbEntry.title, KbEntry.project_id)
        .join(KbEntry, KbEntry.id == KbEntryChunk.entry_id)
        .where(_any_pair(KbEntryChunk.entry_id, KbEntryChunk.index, pairs), visible)
    )
    found = {(c.entry_id, c.index): (c, title, pid) for c, title, pid in rows}
    out: list[Hit] = []
    for h in hits:
        key = (int(h.payload.get("document_id", -1)), int(h.payload.get("chunk_index", -1)))
        row = found.get(key)
        if row is None or row[0].content_hash != h.payload.get("content_hash"):
            continue
        chunk, title, project_id = row
        out.append(
            Hit(
                kind=KIND_ENTRY,
                source_id=chunk.entry_id,
                chunk_index=chunk.index,
                score=h.score,
                project_id=project_id,
                title=title,
                path=None,
                language=None,
                symbol=None,
                start_line=chunk.start_line,
                end_line=chunk.end_line,
                text=chunk.text,
            )
        )
    return out


# -- the search ----------------------------------------------------------------------------


async def semantic_search(
    session: AsyncSession,
    runtime: KnowledgeRuntime,
    scope: Scope,
    query: str,
    top_k: int,
    kinds: Sequence[str],
    *,
    languages: list[str] | None = None,
    document_ids: list[int] | None = None,
    overfetch: int = 2,
    query_vector: Awaitable[list[float]] | None = None,
) -> list[Hit]:
    """The ``top_k`` visible pieces closest to ``query``, best first, across ``kinds``.

    ``overfetch`` asks the store for that many times ``top_k`` so hits dropped on read-back
    (stale points) rarely leave the list short. ``query_vector``: the query's embedding being
    computed by the caller (a task several searches await).
    """
    await check_collections(runtime, kinds)
    vector = await (query_vector if query_vector is not None else embed_query(runtime, query))
    limit = top_k * max(1, overfetch)
    hits: list[Hit] = []
    if KIND_CODE in kinds and scope.project_ids:
        flt = SearchFilter(
            project_ids=scope.project_ids, languages=languages, document_ids=document_ids
        )
        raw = await vector_search(runtime, KIND_CODE, vector, limit, flt)
        hits += await hydrate_code(session, raw, scope)
    if KIND_ENTRY in kinds and document_ids is None and languages is None:
        flt = SearchFilter(project_ids=scope.entry_project_ids)
        raw = await vector_search(runtime, KIND_ENTRY, vector, limit, flt)
        hits += await hydrate_entries(session, raw, scope)
    hits.sort(key=lambda h: h.score, reverse=True)
    return hits[:top_k]
