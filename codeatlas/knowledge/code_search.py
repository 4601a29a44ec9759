"""Hybrid code search: semantic hits (dense vectors) and keyword hits (the sparse keyword
index, :mod:`codeatlas.knowledge.keyword`), both from the vector store, read back from the
database in one statement and merged by reciprocal rank fusion
(:mod:`codeatlas.knowledge.hybrid`). The fusion stays here rather than in Qdrant's own
prefetch/RRF because it fuses files, not chunks (see below), which Qdrant cannot.

By default results are files: each ranking is reduced to the best chunk per file before the
fusion, so one file with many similar chunks cannot crowd the others out (measured in
``benchmarks/retrieval_quality.py``: fusing files beat fusing chunks on held-out questions).

Both rankings see the same scope and filters: the caller's projects (or one of them), an
optional language, an optional path prefix. The prefix is applied to the vector search as a
list of the matching document ids when there are at most :data:`MAX_PREFIX_DOCUMENTS` of
them, otherwise by dropping non-matching hits after the search (then the semantic list can
come back shorter than asked).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from codeatlas.code.service import prefix_upper_bound
from codeatlas.knowledge.errors import ModelMismatch, VectorStoreDown
from codeatlas.knowledge.hybrid import reciprocal_rank_fusion
from codeatlas.knowledge.indexing import KIND_CODE
from codeatlas.knowledge.keyword import encode_query
from codeatlas.knowledge.runtime import KEYWORD_COLLECTION, REINDEX_ADVICE, KnowledgeRuntime
from codeatlas.knowledge.search import (
    Hit,
    Scope,
    check_collections,
    code_hits,
    code_rows,
    embed_query,
    pairs_of,
    vector_search,
)
from codeatlas.knowledge.vector_store import (
    EmbeddingModelMismatch,
    SearchFilter,
    VectorHit,
    VectorStoreError,
)
from codeatlas.models import CodeDocument
from codeatlas.settings import Settings

Mode = Literal["hybrid", "semantic", "keyword"]
MAX_PREFIX_DOCUMENTS = 5000


@dataclass(frozen=True, slots=True)
class CodeResult:
    document_id: int
    chunk_index: int
    project_id: int
    path: str
    language: str | None
    symbol: str | None
    start_line: int
    end_line: int
    text: str
    score: float
    semantic_rank: int | None
    keyword_rank: int | None


def _from_hit(h: Hit) -> CodeResult:
    return CodeResult(
        document_id=h.source_id,
        chunk_index=h.chunk_index,
        project_id=h.project_id or 0,
        path=h.path or "",
        language=h.language,
        symbol=h.symbol,
        start_line=h.start_line,
        end_line=h.end_line,
        text=h.text,
        score=h.score,
        semantic_rank=None,
        keyword_rank=None,
    )


def _best_per_file(keys: list[tuple[int, int]]) -> list[tuple[int, int]]:
    seen: set[int] = set()
    out: list[tuple[int, int]] = []
    for key in keys:
        if key[0] not in seen:
            seen.add(key[0])
            out.append(key)
    return out


def path_range(prefix: str | None) -> tuple[str, str | None] | None:
    return (prefix, prefix_upper_bound(prefix)) if prefix else None


async def _documents_under(
    session: AsyncSession, scope: Scope, prefix: tuple[str, str | None], language: str | None
) -> list[int] | None:
    """Ids of the scope's documents under the prefix; None when there are too many."""
    low, high = prefix
    conditions = [CodeDocument.project_id.in_(scope.project_ids), CodeDocument.file_path >= low]
    if high is not None:
        conditions.append(CodeDocument.file_path < high)
    if language is not None:
        conditions.append(CodeDocument.language == language)
    ids = list(
        await session.scalars(
            select(CodeDocument.id).where(*conditions).limit(MAX_PREFIX_DOCUMENTS + 1)
        )
    )
    return ids if len(ids) <= MAX_PREFIX_DOCUMENTS else None


async def keyword_hits(
    runtime: KnowledgeRuntime, query: str, limit: int, flt: SearchFilter
) -> list[VectorHit]:
    """The keyword index's ``limit`` best chunks for ``query`` (raw, not yet read back)."""
    sparse = encode_query(query)
    if not sparse[0]:
        return []
    state = await runtime.ensure_collection(KEYWORD_COLLECTION)
    if state.mismatch:
        raise ModelMismatch(f"{state.mismatch}; {REINDEX_ADVICE}")
    if not state.ready:
        raise VectorStoreDown(f"The vector store is unavailable: {state.error}")
    try:
        return await runtime.store().sparse_search(KEYWORD_COLLECTION, sparse, limit, flt)
    except EmbeddingModelMismatch as exc:
        raise ModelMismatch(f"{exc}. Run `codeatlas reindex`.") from exc
    except VectorStoreError as exc:
        runtime.mark_unavailable(KEYWORD_COLLECTION, str(exc))
        raise VectorStoreDown(f"The vector store is unavailable: {exc}") from exc


async def _rankings(
    runtime: KnowledgeRuntime,
    query: str,
    mode: Mode,
    candidates: int,
    flt: SearchFilter,
    vector: Awaitable[list[float]] | None,
) -> tuple[list[VectorHit], list[VectorHit]]:
    """The semantic and keyword candidates, searched at the same time (the query's embedding
    and the dense search overlap the sparse one); a failure of either is raised, the
    semantic one first, once both have ended."""

    async def semantic() -> list[VectorHit]:
        if mode not in ("hybrid", "semantic"):
            return []
        await check_collections(runtime, [KIND_CODE])
        query_vector = await (vector if vector is not None else embed_query(runtime, query))
        return await vector_search(runtime, KIND_CODE, query_vector, candidates, flt)

    async def keyword() -> list[VectorHit]:
        if mode not in ("hybrid", "keyword"):
            return []
        return await keyword_hits(runtime, query, candidates, flt)

    results = await asyncio.gather(semantic(), keyword(), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    semantic_raw, keyword_raw = cast(tuple[list[VectorHit], list[VectorHit]], tuple(results))
    return semantic_raw, keyword_raw


async def code_search(
    session: AsyncSession,
    runtime: KnowledgeRuntime,
    settings: Settings,
    scope: Scope,
    query: str,
    *,
    mode: Mode = "hybrid",
    top_k: int,
    language: str | None = None,
    path_prefix: str | None = None,
    group_by_file: bool = True,
    rrf_k: float | None = None,
    weights: tuple[float, float] | None = None,
    vector: Awaitable[list[float]] | None = None,
    candidates: int | None = None,
) -> list[CodeResult]:
    """The ``top_k`` best results for ``query``; semantic failures raise their 503s.

    ``group_by_file``: one result per file — each ranking is first reduced to the best
    chunk of every file, the files are fused, and a file is shown by its best chunk (the
    semantic one when it has one). Ranks are then ranks of files. Otherwise chunks are
    ranked and fused as they are, several per file. ``vector``: the query's embedding
    being computed by the caller (a task several searches await). ``candidates``: taken
    from each ranking (default SEARCH_CANDIDATES).
    """
    candidates = max(candidates or settings.search_candidates, top_k)
    prefix = path_range(path_prefix)
    rows: dict[tuple[int, int], CodeResult] = {}
    semantic_keys: list[tuple[int, int]] = []
    keyword_keys: list[tuple[int, int]] = []

    if not scope.project_ids:
        return []
    document_ids = None
    if prefix is not None:
        document_ids = await _documents_under(session, scope, prefix, language)
    flt = SearchFilter(
        project_ids=scope.project_ids,
        languages=[language] if language is not None else None,
        document_ids=document_ids,
    )
    semantic_raw, keyword_raw = await _rankings(runtime, query, mode, candidates, flt, vector)
    # Read back from the database in one statement: a hit whose chunk is gone or changed is
    # dropped.
    found = await code_rows(session, pairs_of([*semantic_raw, *keyword_raw]), scope)
    semantic_hits = code_hits(semantic_raw, found)
    keyword_hits_ = code_hits(keyword_raw, found)
    for keys, hits in ((semantic_keys, semantic_hits), (keyword_keys, keyword_hits_)):
        for h in hits:
            if path_prefix and not (h.path or "").startswith(path_prefix):
                continue
            key = (h.source_id, h.chunk_index)
            keys.append(key)
            rows.setdefault(key, _from_hit(h))

    if group_by_file:
        semantic_keys = _best_per_file(semantic_keys)
        keyword_keys = _best_per_file(keyword_keys)
    # The chunk that stands for a file: its best semantic chunk, else its best keyword one.
    representative: dict[int, tuple[int, int]] = {}
    for key in (*semantic_keys, *keyword_keys):
        representative.setdefault(key[0], key)

    def fusion_key(key: tuple[int, int]) -> Any:
        return key[0] if group_by_file else key

    def chunk_of(fused_key: Any) -> tuple[int, int]:
        return representative[fused_key] if group_by_file else fused_key

    order: list[tuple[tuple[int, int], float, int | None, int | None]]
    if mode == "semantic":
        order = [(key, rows[key].score, i + 1, None) for i, key in enumerate(semantic_keys)]
    elif mode == "keyword":
        order = [(key, rows[key].score, None, i + 1) for i, key in enumerate(keyword_keys)]
    else:
        fused = reciprocal_rank_fusion(
            [[fusion_key(k) for k in semantic_keys], [fusion_key(k) for k in keyword_keys]],
            k=rrf_k if rrf_k is not None else settings.search_rrf_k,
            weights=weights or (settings.search_semantic_weight, settings.search_keyword_weight),
        )
        order = [(chunk_of(f.key), f.score, f.ranks[0], f.ranks[1]) for f in fused]
    return [
        replace(rows[key], score=score, semantic_rank=sem_rank, keyword_rank=kw_rank)
        for key, score, sem_rank, kw_rank in order[:top_k]
    ]
