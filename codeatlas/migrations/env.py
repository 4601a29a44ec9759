"""Alembic environment: async engine, our metadata, batch mode on SQLite."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from codeatlas.db.migrate_lock import take_migration_lock
from codeatlas.db.session import create_engine
from codeatlas.models import Base
from codeatlas.settings import Settings

config = context.config
target_metadata = config.attributes.get("target_metadata", Base.metadata)


def _settings() -> Settings:
    settings = config.attributes.get("settings")
    return settings if isinstance(settings, Settings) else Settings()


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=False,
    )


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    settings = _settings()
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # Several pods starting together: one migrates, the others wait here and then
                # find the schema at head (5-C); held until this transaction commits.
                await take_migration_lock(connection, settings.migrate_lock_timeout)
            await connection.run_sync(_run_sync)
            await connection.commit()
    finally:
        await engine.dispose()


def run_offline() -> None:
    context.configure(
        url=_settings().resolved_database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=_settings().resolved_database_url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if context.is_offline_mode():
    run_offline()
elif connection is not None:
    _run_sync(connection)
else:
    asyncio.run(_run_online())
