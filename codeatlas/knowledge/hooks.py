"""Deleting a code document or a project deletes its vectors (checklist 4-B).

Other domains delete rows with ``session.delete(obj)``; a ``before_flush`` listener sees
those objects and enqueues ``knowledge.delete_points`` in the same transaction, so the job
is sent only if the deletion commits (and dropped with it on rollback). This keeps the code
and projects services free of any knowledge-base call. Deletions that bypass the ORM
(bulk ``DELETE`` statements, foreign-key cascades) are not seen here; their points are
never shown anyway (every hit is read back from the database) and `codeatlas reindex`
removes them.

The listener is installed by the knowledge start-up (:func:`install`) and does nothing in a
process where the jobs runtime is not configured.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from codeatlas.models import CodeDocument, Project

logger = logging.getLogger(__name__)

_installed = False


def _on_before_flush(session: Session, _context: Any, _instances: Any) -> None:
    deleted = [obj for obj in session.deleted if isinstance(obj, CodeDocument | Project)]
    if not deleted:
        return
    from codeatlas.jobs.enqueue import enqueue
    from codeatlas.jobs.runtime import get_runtime

    try:
        settings = get_runtime().settings
    except RuntimeError:
        logger.warning("jobs runtime not configured: vectors of deleted rows stay until reindex")
        return
    for obj in deleted:
        if isinstance(obj, CodeDocument):
            from codeatlas.knowledge.tasks import code_indexed

            if not code_indexed(settings):
                continue  # code is not embedded: no points to delete (reindex sweeps leftovers)
            enqueue(
                session,
                "knowledge.delete_points",
                "document",
                obj.id,
                settings=settings,
                project_id=obj.project_id,
                document_id=obj.id,
            )
        else:
            enqueue(
                session,
                "knowledge.delete_points",
                "project",
                obj.id,
                settings=settings,
                project_id=obj.id,
            )


def install() -> None:
    """Listen on every ORM session of this process (idempotent)."""
    global _installed
    if not _installed:
        import codeatlas.knowledge.tasks  # noqa: F401  (registers the actor it enqueues)

        event.listen(Session, "before_flush", _on_before_flush)
        _installed = True
