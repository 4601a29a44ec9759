"""Alembic, driven from code: the CLI, start-up and the tests all come through here (5-C)."""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData

from codeatlas.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class MigrationError(RuntimeError):
    """The schema could not be brought to head, or it drifted from the models."""


def alembic_config(settings: Settings, metadata: MetaData | None = None) -> Config:
    cfg = Config(stdout=io.StringIO())
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Date-prefixed revision files sort in time (Dispatch does the same).
    cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    cfg.attributes["settings"] = settings
    if metadata is not None:
        cfg.attributes["target_metadata"] = metadata
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    try:
        command.upgrade(alembic_config(settings), revision)
    except Exception as exc:
        raise MigrationError(f"alembic upgrade {revision} failed: {exc}") from exc


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config(Settings())).get_current_head()


def current_revision(settings: Settings) -> str | None:
    import asyncio

    from codeatlas.db.session import create_engine

    async def run() -> str | None:
        engine = create_engine(settings)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: MigrationContext.configure(c).get_current_revision()
                )
        finally:
            await engine.dispose()

    return asyncio.run(run())


def check(settings: Settings, metadata: MetaData | None = None) -> None:
    """Fail when the models and the migrations disagree (what `alembic check` does).

    The database must be at head first; `metadata` lets a test hand in a changed model.
    """
    try:
        command.check(alembic_config(settings, metadata))
    except Exception as exc:
        raise MigrationError(str(exc)) from exc


def create_all_dev(settings: Settings) -> None:
    """ALLOW_SYNC_DB=true: build the schema from the models (development only)."""
    import asyncio

    from codeatlas.db.session import create_engine
    from codeatlas.models import Base

    if settings.env == "production" or not settings.allow_sync_db:
        raise MigrationError(
            "create_all is only allowed with ALLOW_SYNC_DB=true outside production"
        )

    async def run() -> None:
        engine = create_engine(settings)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
        finally:
            await engine.dispose()

    asyncio.run(run())
