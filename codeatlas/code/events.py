"""What the code domain tells other domains, without importing them: a hook called inside
the transaction that stores a document's chunks.

The knowledge domain registers its indexing (``knowledge.embed_chunks``, enqueued in that
same transaction, so it is sent only if the chunks commit) when its tasks module is loaded;
the code domain never imports the knowledge domain. Handlers must only enqueue or write in
the given session: they run before the commit.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

#: ``handler(session, document_id, project_id) -> bool``: True when it queued more indexing
#: (the document then stays ``parsed`` until that work marks it ``searchable``).
ChunksStored = Callable[[AsyncSession, int, int], bool]

_chunks_stored: list[ChunksStored] = []


def on_chunks_stored(handler: ChunksStored) -> ChunksStored:
    """Register ``handler`` (idempotent: the same function is registered once)."""
    if handler not in _chunks_stored:
        _chunks_stored.append(handler)
    return handler


def chunks_stored(session: AsyncSession, document_id: int, project_id: int) -> bool:
    """Tell every registered handler that a document's chunks were replaced in ``session``;
    whether any of them queued more indexing."""
    queued = False
    for handler in list(_chunks_stored):
        queued = handler(session, document_id, project_id) or queued
    return queued
