"""Settings of the database layer (`codeatlas/db/`): SQLite locking, outages, migrations."""

from __future__ import annotations

from pydantic import BaseModel, Field


class DatabaseSettings(BaseModel):
    sqlite_busy_timeout: float = Field(
        10.0,
        description=(
            "SQLite only: seconds a transaction waits for the write lock (taken with "
            "`BEGIN IMMEDIATE` just before its first write) before the request answers "
            "503 DB_BUSY with Retry-After."
        ),
    )
    unavailable_retry_after: int = Field(
        5,
        description=(
            "Retry-After seconds sent with 503 DB_UNAVAILABLE / DB_BUSY / REDIS_UNAVAILABLE "
            "while the database or Redis cannot be reached."
        ),
    )
    migrate_lock_timeout: float = Field(
        300.0,
        description=(
            "PostgreSQL only: seconds `alembic upgrade` at start-up waits for the advisory "
            "lock another process migrating the same database holds."
        ),
    )
