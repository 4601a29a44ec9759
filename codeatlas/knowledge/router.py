"""The knowledge API: entries CRUD, semantic search, context building, re-index (admin)."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from codeatlas.auth.deps import AdminUser, CurrentUser
from codeatlas.db.session import SessionDep
from codeatlas.errors import responses
from codeatlas.jobs.enqueue import enqueue
from codeatlas.knowledge import service
from codeatlas.knowledge.context import build_context
from codeatlas.knowledge.runtime import COLLECTIONS, KnowledgeRuntime
from codeatlas.knowledge.schemas import (
    Citation,
    ContextRequest,
    ContextResponse,
    EntryCreate,
    EntryOut,
    EntryPage,
    EntryUpdate,
    KnowledgeSearchRequest,
    KnowledgeSearchResponse,
    ReindexAccepted,
    SearchResult,
)
from codeatlas.knowledge.search import Hit, resolve_scope, semantic_search, snippet
from codeatlas.settings import Settings

router = APIRouter(prefix="/knowledge", tags=["knowledge"])

SEARCH_ERRORS = responses(401, 404, 503)


def get_knowledge_runtime(request: Request) -> KnowledgeRuntime:
    runtime: KnowledgeRuntime = request.app.state.knowledge
    return runtime


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


KnowledgeDep = Annotated[KnowledgeRuntime, Depends(get_knowledge_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
EntryId = Annotated[int, Path(ge=1, le=2**31 - 1)]


# -- entries -------------------------------------------------------------------------------


@router.post(
    "/entries",
    status_code=201,
    responses=responses(401, 403, 404, 413),
    summary="Write an entry (embedded by a background job)",
)
async def create_entry(
    data: EntryCreate, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> EntryOut:
    """Global when `project_id` is omitted; a project's entry needs the editor or owner role.
    The entry is searchable once its `knowledge.embed_entry` job has run."""
    entry = await service.create_entry(session, settings, user, data)
    return EntryOut.model_validate(entry)


@router.get("/entries", responses=responses(400, 401, 404), summary="List visible entries")
async def list_entries(
    user: CurrentUser,
    session: SessionDep,
    project_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    global_only: Annotated[bool, Query(alias="global", description="Only global entries.")] = False,
    tag: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> EntryPage:
    rows, next_cursor = await service.list_entries(
        session,
        user,
        project_id=project_id,
        global_only=global_only,
        tag=tag,
        limit=limit,
        cursor=cursor,
    )
    return EntryPage(items=[EntryOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/entries/{entry_id}", responses=responses(401, 404), summary="Read an entry")
async def get_entry(entry_id: EntryId, user: CurrentUser, session: SessionDep) -> EntryOut:
    return EntryOut.model_validate(await service.get_visible_entry(session, user, entry_id))


@router.patch(
    "/entries/{entry_id}", responses=responses(401, 403, 404, 413), summary="Change an entry"
)
async def update_entry(
    entry_id: EntryId,
    data: EntryUpdate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> EntryOut:
    entry = await service.update_entry(session, settings, user, entry_id, data)
    return EntryOut.model_validate(entry)


@router.delete(
    "/entries/{entry_id}",
    status_code=204,
    responses=responses(401, 403, 404),
    summary="Delete an entry and its vectors",
)
async def delete_entry(
    entry_id: EntryId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> Response:
    await service.delete_entry(session, settings, user, entry_id)
    return Response(status_code=204)


# -- search and context --------------------------------------------------------------------


def _result(hit: Hit) -> SearchResult:
    return SearchResult(
        id=hit.result_id,
        kind="entry" if hit.kind == "entry" else "code",
        score=round(hit.score, 6),
        project_id=hit.project_id,
        entry_id=hit.source_id if hit.kind == "entry" else None,
        document_id=hit.source_id if hit.kind == "code" else None,
        title=hit.title,
        path=hit.path,
        language=hit.language,
        symbol=hit.symbol,
        start_line=hit.start_line,
        end_line=hit.end_line,
        snippet=snippet(hit.text),
    )


def _top_k(settings: Settings, requested: int | None) -> int:
    return min(requested or settings.search_default_top_k, settings.search_max_top_k)


@router.post("/search", responses=SEARCH_ERRORS, summary="Semantic search (vector results)")
async def search(
    body: KnowledgeSearchRequest,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    runtime: KnowledgeDep,
) -> KnowledgeSearchResponse:
    """Entries and code chunks closest in meaning to `query`, best first, with cosine scores:
    in the caller's projects (or `project_id`, 404 unless a member) and global entries.
    503 `VECTOR_STORE_UNAVAILABLE`, `EMBEDDINGS_UNAVAILABLE` or `EMBEDDING_MODEL_MISMATCH`
    when search cannot run; never placeholder results."""
    started = time.perf_counter()
    scope = await resolve_scope(session, user.id, body.project_id)
    kinds = list(dict.fromkeys(body.kinds or COLLECTIONS))
    hits = await semantic_search(
        session, runtime, scope, body.query, _top_k(settings, body.top_k), kinds
    )
    return KnowledgeSearchResponse(
        query=body.query,
        model=runtime.model_name,
        results=[_result(h) for h in hits],
        took_ms=round((time.perf_counter() - started) * 1000, 3),
    )


@router.post("/context", responses=SEARCH_ERRORS, summary="Top results glued into a context")
async def context(
    body: ContextRequest,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    runtime: KnowledgeDep,
) -> ContextResponse:
    """The best results, deduplicated, each headed by a `[n]` citation, as one text of at most
    `max_context_length` characters (not tokens)."""
    max_length = min(
        body.max_context_length or settings.context_default_max_length,
        settings.context_max_length_limit,
    )
    scope = await resolve_scope(session, user.id, body.project_id)
    kinds = list(dict.fromkeys(body.kinds or COLLECTIONS))
    hits = await semantic_search(
        session, runtime, scope, body.query, _top_k(settings, body.top_k), kinds
    )
    text, cited = build_context(hits, max_length)
    return ContextResponse(
        query=body.query,
        context=text,
        length=len(text),
        max_context_length=max_length,
        citations=[
            Citation(
                marker=c.marker,
                result_id=c.hit.result_id,
                kind="entry" if c.hit.kind == "entry" else "code",
                title=c.hit.title,
                path=c.hit.path,
                entry_id=c.hit.source_id if c.hit.kind == "entry" else None,
                document_id=c.hit.source_id if c.hit.kind == "code" else None,
                project_id=c.hit.project_id,
                start_line=c.hit.start_line,
                end_line=c.hit.end_line,
                score=round(c.hit.score, 6),
                truncated=c.truncated,
            )
            for c in cited
        ],
    )


# -- operations ----------------------------------------------------------------------------


@router.post(
    "/reindex",
    status_code=202,
    responses=responses(401, 403),
    summary="Rebuild the vector index with the configured model (admin)",
)
async def reindex(
    _admin: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    collection: Literal["all", "kb_entries", "code_chunks"] = "all",
    force: Annotated[bool, Query(description="Drop even if the model matches.")] = False,
) -> ReindexAccepted:
    """Enqueues `knowledge.reindex`: collections of another model are dropped and rebuilt,
    every source re-embedded. The same as `codeatlas reindex`, run by the server's workers."""
    job = enqueue(session, "knowledge.reindex", collection, int(force), settings=settings)
    await session.flush()
    return ReindexAccepted(job_id=job.id, message_id=job.message_id)
