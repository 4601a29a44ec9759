"""The material an answer is built from: hybrid code search plus the knowledge base.

Code comes from :func:`codeatlas.knowledge.code_search.code_search` (keyword and semantic
rankings fused), chunks rather than whole files so citations point at lines; entries from
the semantic search of the knowledge base. Both are limited to the chat's project (or the
user's projects) and interleaved best first, so neither kind crowds the other out. When the
vector store or the embedder is down the answer still gets the keyword ranking of code,
with a warning in the log, instead of failing.

Retrieval sits before the first token of every answer, so its steps overlap: the question
is embedded once (a task both searches await) while the code search's keyword half runs,
and the code and knowledge-base searches run at the same time, each in its own session.
"""

from __future__ import annotations

import asyncio
import logging
from itertools import chain, zip_longest

from codeatlas.db.session import Database
from codeatlas.knowledge.code_search import CodeResult, Mode, code_search
from codeatlas.knowledge.errors import EmbeddingsDown, ModelMismatch, VectorStoreDown
from codeatlas.knowledge.indexing import KIND_CODE, KIND_ENTRY
from codeatlas.knowledge.runtime import KnowledgeRuntime
from codeatlas.knowledge.search import Hit, Scope, embed_query, resolve_scope, semantic_search
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)

SEMANTIC_DOWN = (VectorStoreDown, EmbeddingsDown, ModelMismatch)


def _hit(r: CodeResult) -> Hit:
    return Hit(
        kind=KIND_CODE,
        source_id=r.document_id,
        chunk_index=r.chunk_index,
        score=r.score,
        project_id=r.project_id,
        title=None,
        path=r.path,
        language=r.language,
        symbol=r.symbol,
        start_line=r.start_line,
        end_line=r.end_line,
        text=r.text,
    )


async def _code(
    db: Database,
    runtime: KnowledgeRuntime,
    settings: Settings,
    scope: Scope,
    q: str,
    vector: asyncio.Task[list[float]],
) -> list[Hit]:
    async with db.session() as session:

        async def search(mode: Mode) -> list[CodeResult]:
            return await code_search(
                session,
                runtime,
                settings,
                scope,
                q,
                mode=mode,
                top_k=settings.chat_context_top_k,
                group_by_file=False,
                vector=vector,  # not awaited by a keyword search
                candidates=settings.chat_search_candidates,
            )

        try:
            found = await search("hybrid")
        except SEMANTIC_DOWN as exc:
            logger.warning(
                "semantic code search unavailable (%s): keyword ranking only", exc.error_code
            )
            found = await search("keyword")
    return [_hit(r) for r in found]


async def _entries(
    db: Database,
    runtime: KnowledgeRuntime,
    settings: Settings,
    scope: Scope,
    q: str,
    vector: asyncio.Task[list[float]],
) -> list[Hit]:
    async with db.session() as session:
        try:
            return await semantic_search(
                session,
                runtime,
                scope,
                q,
                settings.chat_context_top_k,
                [KIND_ENTRY],
                query_vector=vector,
            )
        except SEMANTIC_DOWN as exc:
            logger.warning("knowledge-base search unavailable (%s): no entries", exc.error_code)
            return []


def _seen(task: asyncio.Task[list[float]]) -> None:
    # A search that failed before awaiting the embedding must not leave its error unread.
    if not task.cancelled():
        task.exception()


async def retrieve(
    db: Database,
    runtime: KnowledgeRuntime,
    settings: Settings,
    user_id: int,
    project_id: int | None,
    question: str,
    *,
    scope: Scope | None = None,
) -> list[Hit]:
    """The answer's material; ``scope``: the caller's scope when it already checked it."""
    if settings.chat_context_top_k == 0:
        return []
    vector = asyncio.create_task(embed_query(runtime, question))
    vector.add_done_callback(_seen)
    try:
        if scope is None:
            async with db.session() as session:
                scope = await resolve_scope(session, user_id, project_id)
        code, entries = await asyncio.gather(
            _code(db, runtime, settings, scope, question, vector),
            _entries(db, runtime, settings, scope, question, vector),
        )
    finally:
        if not vector.done():
            vector.cancel()
    return [h for h in chain.from_iterable(zip_longest(code, entries)) if h is not None]
