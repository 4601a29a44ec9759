"""Background jobs of the knowledge domain (actors take ids only and are idempotent).

* ``knowledge.embed_chunks(document_id)`` — after ``code.process_file`` stored a document's
  chunks: embed the new ones into ``code_chunks``, delete the stale ones (all of them when
  the document is gone).
* ``knowledge.embed_entry(entry_id)`` — after an entry was written: the same for its pieces
  in ``kb_entries``.
* ``knowledge.delete_points(scope, id)`` — after a document, entry or project was deleted.
* ``knowledge.reindex(collection, force)`` — rebuild a collection with the configured model
  (after a model change): drop it, create it, and re-embed every source.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from codeatlas.code.events import on_chunks_stored
from codeatlas.jobs.actors import EMBED_QUEUE, actor
from codeatlas.jobs.enqueue import enqueue
from codeatlas.jobs.runtime import get_runtime
from codeatlas.knowledge import indexing, reindexing
from codeatlas.knowledge.runtime import get_knowledge
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)


def code_indexed(settings: Settings) -> bool:
    """Whether uploaded code goes to the vector store at all (vectors or keyword postings)."""
    keyword = settings.knowledge_keyword_index
    return settings.knowledge_embed_code or bool(keyword)


@on_chunks_stored
def enqueue_embed_chunks(session: AsyncSession, document_id: int, project_id: int) -> bool:
    """Called by ``code.process_file`` (through :mod:`codeatlas.code.events`) inside the
    transaction that stores a document's chunks: the indexing job is sent when (and only
    if) that transaction commits.

    This module is one of the jobs' actor modules, so the hook and the ``knowledge.*``
    actors are registered in every process that runs or enqueues jobs.
    """
    settings = get_runtime().settings
    if not code_indexed(settings):
        return False
    enqueue(
        session,
        "knowledge.embed_chunks",
        document_id,
        settings=settings,
        project_id=project_id,
        document_id=document_id,
    )
    return True


async def _indexing_failed(document_id: int, *, error: str) -> None:
    """``knowledge.embed_chunks`` gave up: the document says so instead of staying parsed."""
    runtime = get_runtime()
    await indexing.mark_index_failed(runtime.database(), document_id, error)


@actor(
    "knowledge.embed_chunks",
    queue=EMBED_QUEUE,
    time_limit_ms=600_000,
    on_give_up=_indexing_failed,
)
async def embed_chunks(document_id: int) -> None:
    """Embed a code document's chunks and upsert them; delete its stale points."""
    runtime = get_runtime()
    await indexing.index_document(get_knowledge(runtime.settings), runtime.database(), document_id)


@actor("knowledge.embed_entry", queue=EMBED_QUEUE, time_limit_ms=600_000)
async def embed_entry(entry_id: int) -> None:
    """Embed a knowledge-base entry's pieces and upsert them; delete its stale points."""
    runtime = get_runtime()
    await indexing.index_entry(get_knowledge(runtime.settings), runtime.database(), entry_id)


@actor("knowledge.delete_points", queue=EMBED_QUEUE)
async def delete_points(scope: str, source_id: int) -> None:
    """Delete the vectors of a deleted ``document``, ``entry`` or ``project``."""
    runtime = get_runtime()
    await indexing.delete_source_points(get_knowledge(runtime.settings), scope, source_id)


@actor("knowledge.reindex", queue=EMBED_QUEUE, max_retries=1, time_limit_ms=6 * 3_600_000)
async def reindex(collection: str, force: int = 0) -> None:
    """Rebuild ``collection`` (or ``all``) with the configured embedding model.

    One long job rather than a job per source: it must finish the drop before any source is
    embedded, and a retry resumes (sources already in step are skipped).
    """
    runtime = get_runtime()
    await reindexing.reindex(
        get_knowledge(runtime.settings), runtime.database(), collection, force=bool(force)
    )
