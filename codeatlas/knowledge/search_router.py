"""POST /search: hybrid code search (semantic + keyword, reciprocal rank fusion)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from codeatlas.auth.deps import CurrentUser
from codeatlas.db.session import Database, SessionDep, atomic
from codeatlas.errors import responses
from codeatlas.knowledge.code_search import CodeResult, code_search
from codeatlas.knowledge.router import KnowledgeDep, SettingsDep
from codeatlas.knowledge.schemas import HybridResult, HybridSearchRequest, HybridSearchResponse
from codeatlas.knowledge.search import resolve_scope, snippet
from codeatlas.models import SearchHistory

router = APIRouter(prefix="/search", tags=["search"])


def _result(r: CodeResult) -> HybridResult:
    return HybridResult(
        id=f"code:{r.document_id}:{r.chunk_index}",
        document_id=r.document_id,
        project_id=r.project_id,
        path=r.path,
        language=r.language,
        symbol=r.symbol,
        start_line=r.start_line,
        end_line=r.end_line,
        snippet=snippet(r.text),
        score=round(r.score, 6),
        semantic_rank=r.semantic_rank,
        keyword_rank=r.keyword_rank,
    )


@router.post("", responses=responses(401, 404, 503), summary="Hybrid code search")
async def hybrid_search(
    request: Request,
    body: HybridSearchRequest,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    runtime: KnowledgeDep,
) -> HybridSearchResponse:
    """Files (each shown by its best chunk; `group_by_file=false`: chunks) ranked by
    reciprocal rank fusion of a semantic ranking (vector store) and a keyword ranking (BM25
    over chunk text, symbol names and paths in the database), in your projects or
    `project_id`, optionally one `language` and a `path_prefix`. Recorded in your
    search history. `mode=keyword` works without the vector store; `hybrid` and `semantic`
    answer 503 with the failing component's code when it is down."""
    started = time.perf_counter()
    scope = await resolve_scope(session, user.id, body.project_id)
    top_k = min(body.top_k or settings.search_default_top_k, settings.search_max_top_k)
    results = await code_search(
        session,
        runtime,
        settings,
        scope,
        body.query,
        mode=body.mode,
        top_k=top_k,
        language=body.language,
        path_prefix=body.path_prefix,
        group_by_file=body.group_by_file,
    )
    # Its own short transaction, not the request's: the request has been reading for tens
    # of milliseconds, and on SQLite a transaction that read and then writes fails at once
    # ("database is locked") if any job committed meanwhile; a fresh write waits its turn.
    db: Database = request.app.state.db
    async with db.session() as history, atomic(history):
        history.add(
            SearchHistory(
                user_id=user.id,
                query=body.query[:512],
                kind=body.mode,
                project_id=body.project_id,
                result_count=len(results),
            )
        )
    return HybridSearchResponse(
        query=body.query,
        mode=body.mode,
        results=[_result(r) for r in results],
        took_ms=round((time.perf_counter() - started) * 1000, 3),
    )
