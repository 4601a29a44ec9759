"""Background jobs of the code domain: ``code.process_file`` parses an uploaded document.

For one document: mark it `processing`, read its stored bytes, parse them
(:func:`codeatlas.code.parsing.parse_source`: symbols, imports, symbol-bounded chunks, line
windows for anything it cannot parse), then in ONE transaction set the document `parsed`
with its symbols, replace its chunks and tell the hooks of :mod:`codeatlas.code.events`
(the knowledge domain queues the document's indexing there, which later marks it
`searchable`; with no indexing queued it is `searchable` at once).

A crash anywhere before that commit leaves the old state; running it again (a retry, a
redelivery, a second message) replaces the chunks again, so a document always holds
exactly one set.

Stale work is dropped, not stored: the transaction only commits if the document still has
the version that was read (a newer upload enqueues its own job).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from codeatlas.code.events import chunks_stored
from codeatlas.code.parsing import ParseResult, parse_source
from codeatlas.code.storage import UploadStorage
from codeatlas.db.session import atomic
from codeatlas.jobs.actors import PARSE_QUEUE, actor, load_actor_modules
from codeatlas.jobs.events import publish_to_users
from codeatlas.jobs.runtime import get_runtime
from codeatlas.models import CodeChunk, CodeDocument, DocumentStatus, ProjectMembership

logger = logging.getLogger(__name__)


class DocumentUnprocessable(Exception):
    """Retrying cannot help (the stored file is gone): the document ends `failed`."""


class ContentChanged(Exception):
    """The file on disk is not the one the row describes (an upload is in flight): retry."""


@dataclass(frozen=True, slots=True)
class _Snapshot:
    id: int
    project_id: int
    file_path: str
    version: int
    content_hash: str
    language: str | None


def _read(storage: UploadStorage, snap: _Snapshot) -> bytes:
    try:
        fd = storage.open_file(snap.project_id, snap.file_path)
    except FileNotFoundError:
        raise DocumentUnprocessable(f"stored file {snap.file_path!r} is missing") from None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def symbol_rows(result: ParseResult) -> list[dict[str, Any]]:
    """``code_documents.symbols`` of a parsed file."""
    return [
        {
            "name": sym.name,
            "kind": sym.kind,
            "start_line": sym.start_line,
            "end_line": sym.end_line,
            "parent": sym.parent,
        }
        for sym in result.symbols
    ]


def _chunk_rows(snap: _Snapshot, result: ParseResult) -> list[dict[str, Any]]:
    return [
        {
            "document_id": snap.id,
            "project_id": snap.project_id,
            "index": c.index,
            "start_line": c.start_line,
            "end_line": c.end_line,
            "symbol": c.symbol[:512] if c.symbol else None,
            "kind": c.kind,
            "text": c.text,
            "content_hash": hashlib.sha256(c.text.encode("utf-8", "replace")).hexdigest(),
        }
        for c in result.chunks
    ]


async def _members(session: AsyncSession, project_id: int) -> list[int]:
    rows = await session.scalars(
        select(ProjectMembership.user_id).where(ProjectMembership.project_id == project_id)
    )
    return list(rows)


async def _publish(members: list[int], project_id: int, event_type: str, **fields: Any) -> None:
    runtime = get_runtime()
    await publish_to_users(
        runtime.redis(), runtime.settings, members, event_type, project_id=project_id, **fields
    )


async def process_document(
    document_id: int, *, before_commit: Callable[[], Awaitable[None]] | None = None
) -> str:
    """Parse and index one document; returns what happened (for logs and tests).

    ``before_commit`` runs inside the final transaction, after the chunks are written and
    before they commit: the crash tests park the job there and kill its worker.
    """
    runtime = get_runtime()
    # Other domains' tasks modules register their chunk hooks (codeatlas.code.events).
    load_actor_modules(runtime.settings)
    db = runtime.database()
    async with db.session() as s, atomic(s):
        # Write first: it takes SQLite's write lock at once and locks the row on PostgreSQL.
        row = (
            await s.execute(
                update(CodeDocument)
                .where(CodeDocument.id == document_id, CodeDocument.parseable.is_(True))
                .values(status=DocumentStatus.PROCESSING.value)
                .returning(
                    CodeDocument.id,
                    CodeDocument.project_id,
                    CodeDocument.file_path,
                    CodeDocument.version,
                    CodeDocument.content_hash,
                    CodeDocument.language,
                )
            )
        ).first()
        if row is None:
            logger.info("document %s is gone or not parseable: nothing to do", document_id)
            return "skipped"
        snap = _Snapshot(*row)
        members = await _members(s, snap.project_id)

    storage = UploadStorage(runtime.settings.UPLOAD_ROOT)
    data = await asyncio.to_thread(_read, storage, snap)
    if hashlib.sha256(data).hexdigest() != snap.content_hash:
        raise ContentChanged(f"{snap.file_path!r} changed on disk since version {snap.version}")
    text = data.decode("utf-8", errors="replace")
    # CPU-bound: off the event loop, which every job of this worker process shares.
    result = await asyncio.to_thread(parse_source, text, snap.language)

    symbols = symbol_rows(result)
    chunk_rows = _chunk_rows(snap, result)
    async with db.session() as s, atomic(s):
        stored = await s.execute(
            update(CodeDocument)
            .where(CodeDocument.id == snap.id, CodeDocument.version == snap.version)
            .values(
                status=DocumentStatus.PARSED.value,
                symbols=symbols,
                language=result.language or snap.language,
                # A degraded parse (grammar failure): indexed by line windows, reason kept.
                error=result.error,
            )
        )
        if stored.rowcount == 0:  # type: ignore[attr-defined]
            logger.info("document %s changed while parsing: left to its newer job", snap.id)
            return "stale"
        await s.execute(delete(CodeChunk).where(CodeChunk.document_id == snap.id))
        if chunk_rows:
            await s.execute(insert(CodeChunk), chunk_rows)
        # E.g. knowledge.embed_chunks, sent after commit; it marks the document searchable.
        status = DocumentStatus.PARSED
        if not chunks_stored(s, snap.id, snap.project_id):
            status = DocumentStatus.SEARCHABLE  # nothing else will index it
            await s.execute(
                update(CodeDocument).where(CodeDocument.id == snap.id).values(status=status.value)
            )
        if before_commit is not None:
            await before_commit()
    logger.info(
        "indexed document %s (%s): %d symbols, %d chunks, %d imports",
        snap.id,
        snap.file_path,
        len(symbols),
        len(chunk_rows),
        len(result.imports),
    )
    await _publish(
        members,
        snap.project_id,
        "document.indexed",
        document_id=snap.id,
        version=snap.version,
        status=status.value,
        symbols=len(symbols),
        chunks=len(chunk_rows),
    )
    return "indexed"


async def mark_document_failed(document_id: int, *, error: str) -> None:
    """The job gave up (permanent error, or retries exhausted): say so on the document."""
    async with get_runtime().database().session() as s, atomic(s):
        await s.execute(
            update(CodeDocument)
            .where(
                CodeDocument.id == document_id,
                CodeDocument.status.in_(
                    [
                        DocumentStatus.PENDING.value,
                        DocumentStatus.PROCESSING.value,
                        DocumentStatus.PARSED.value,
                    ]
                ),
            )
            .values(status=DocumentStatus.FAILED.value, error=error[:4000])
        )
        project_id = await s.scalar(
            select(CodeDocument.project_id).where(CodeDocument.id == document_id)
        )
        members = await _members(s, project_id) if project_id is not None else []
    if project_id is not None:
        await _publish(
            members,
            project_id,
            "document.failed",
            document_id=document_id,
            status=DocumentStatus.FAILED.value,
            error=error,
        )


@actor(
    "code.process_file",
    queue=PARSE_QUEUE,
    throws=(DocumentUnprocessable,),
    on_give_up=mark_document_failed,
    time_limit_ms=300_000,
)
async def process_file(document_id: int) -> None:
    """Parse one uploaded document into symbols and chunks (idempotent)."""
    await process_document(document_id)
