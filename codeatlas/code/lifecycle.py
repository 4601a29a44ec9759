"""Start-up of the code domain: the upload tree, and recovery of interrupted uploads."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from codeatlas.code import service
from codeatlas.code.storage import UploadStorage
from codeatlas.db.session import Database
from codeatlas.models import Project
from codeatlas.projects.events import on_project_deleted
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)


async def recover_uploads(db: Database, storage: UploadStorage) -> int:
    """Finish or undo the file transactions a killed process left behind."""

    async def stored_hash(project_id: int, path: str) -> str | None:
        async with db.session() as s:
            return await service.stored_hash(s, project_id, path)

    async def project_exists(project_id: int) -> bool:
        async with db.session() as s:
            return (await s.scalar(select(Project.id).where(Project.id == project_id))) is not None

    return await storage.recover(stored_hash, project_exists)


async def startup(app: FastAPI, stack: AsyncExitStack) -> None:
    """Create UPLOAD_ROOT, then reconcile what a crash may have left half done."""
    settings: Settings = app.state.settings
    storage = UploadStorage(settings.UPLOAD_ROOT)
    storage.ensure()
    app.state.upload_storage = storage

    async def remove_files(session: AsyncSession, project_id: int) -> None:
        await service.remove_project_files(session, storage, project_id)

    on_project_deleted(app, remove_files)  # a deleted project's files go with its rows
    recovered = await recover_uploads(app.state.db, storage)
    if recovered:
        logger.warning("recovered %d interrupted upload transaction(s)", recovered)


def get_storage(request: Request) -> UploadStorage:
    storage: UploadStorage = request.app.state.upload_storage
    return storage


StorageDep = Annotated[UploadStorage, Depends(get_storage)]
