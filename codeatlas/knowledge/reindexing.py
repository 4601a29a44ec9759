"""Rebuilding the vector collections: after an embedding-model change, or as a repair.

``reindex`` drops a collection only when it holds vectors of another model (or when forced),
recreates it for the configured model, then brings every source (code document with chunks,
knowledge-base entry) up to date and deletes points whose source is gone. Each source is
synced idempotently (see :mod:`codeatlas.knowledge.indexing`), so a re-index that is
interrupted and started again resumes instead of starting over.

Runs in `codeatlas reindex` (this process; with the embedded store the server must be stopped,
since only one process can open it) or as the ``knowledge.reindex`` job (inside the server's
own workers in the embedded default).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select

from codeatlas.db.session import Database
from codeatlas.knowledge import indexing
from codeatlas.knowledge.runtime import (
    CODE_COLLECTION,
    COLLECTIONS,
    KB_COLLECTION,
    KEYWORD_COLLECTION,
    KnowledgeRuntime,
)
from codeatlas.knowledge.vector_store import SearchFilter
from codeatlas.models import CodeChunk, KbEntry

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
ALL = "all"


def resolve_collections(which: str) -> list[str]:
    if which == ALL:
        return list(COLLECTIONS.values())
    if which not in COLLECTIONS.values():
        raise ValueError(f"unknown collection {which!r}: {', '.join(COLLECTIONS.values())}, all")
    return [which]


async def rebuild(runtime: KnowledgeRuntime, collection: str, *, force: bool) -> bool:
    """Drop and recreate ``collection`` if it holds another model's vectors (or ``force``).

    Returns whether it was dropped.
    """
    state = await runtime.ensure_collection(collection, force=True)
    if not force and state.mismatch is None:
        if not state.ready:
            raise indexing.CollectionNotReady(f"{collection}: {state.error}")
        return False
    logger.warning(
        "dropping vector collection %s to rebuild it with %s (%s)",
        collection,
        runtime.model_name,
        state.mismatch or "forced",
    )
    await runtime.store().drop_collection(collection)
    state = await runtime.ensure_collection(collection, force=True)
    if not state.ready:
        raise indexing.CollectionNotReady(f"{collection}: {state.mismatch or state.error}")
    return True


async def _source_ids(db: Database, collection: str) -> list[int]:
    async with db.session() as s:
        if collection == CODE_COLLECTION:
            rows = await s.scalars(select(CodeChunk.document_id).distinct())
        else:
            rows = await s.scalars(select(KbEntry.id))
        return sorted(rows)


async def reindex(
    runtime: KnowledgeRuntime,
    db: Database,
    which: str = ALL,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Rebuild and re-sync ``which`` (a collection name or ``all``); sources synced by name."""
    done: dict[str, int] = {}
    for collection in resolve_collections(which):
        await rebuild(runtime, collection, force=force)
        if collection == CODE_COLLECTION:
            # The keyword index of code is synced by the same per-document job.
            await rebuild(runtime, KEYWORD_COLLECTION, force=force)
        ids = await _source_ids(db, collection)
        sync = indexing.index_document if collection == CODE_COLLECTION else indexing.index_entry
        for n, source_id in enumerate(ids, 1):
            try:
                await sync(runtime, db, source_id)
            except indexing.SourceChanged:
                await sync(runtime, db, source_id)  # changed under us once: read it again
            if progress is not None:
                progress(collection, n, len(ids))
        await _delete_orphans(runtime, collection, set(ids))
        if collection == CODE_COLLECTION:
            await _delete_orphans(runtime, KEYWORD_COLLECTION, set(ids))
        done[collection] = len(ids)
        logger.info("re-indexed %s: %d sources", collection, len(ids))
    return done


async def _delete_orphans(runtime: KnowledgeRuntime, collection: str, live: set[int]) -> None:
    """Delete points whose document or entry no longer exists (e.g. deleted while down)."""
    store = runtime.store()
    points = await store.list_points(collection, SearchFilter(), limit=100_000_000)
    orphans = {int(p["document_id"]) for p in points.values() if "document_id" in p} - live
    for source_id in sorted(orphans):
        await store.delete_by_filter(collection, SearchFilter(document_ids=[source_id]))
    if orphans:
        logger.info("deleted the points of %d vanished sources from %s", len(orphans), collection)


__all__ = ["ALL", "CODE_COLLECTION", "KB_COLLECTION", "rebuild", "reindex", "resolve_collections"]
