"""The PostgreSQL advisory lock that serialises `alembic upgrade` across processes (5-C).

Taken as a transaction-level lock in the migration's own transaction, so it is released by
the same COMMIT that makes the new schema visible: whoever waited then reads the version
table, finds head, and does nothing. It is polled with ``pg_try_advisory_xact_lock`` rather
than waited for with ``pg_advisory_xact_lock``, because a long migration would otherwise
run into the connection's command timeout in every process that waits.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

logger = logging.getLogger(__name__)

# Any constant 64-bit key, the same in every CodeAtlas process: "codeatlas" in ASCII.
MIGRATION_LOCK_KEY = 0x636F646561746C6173 & 0x7FFFFFFFFFFFFFFF
POLL_SECONDS = 0.25


class MigrationLockTimeout(RuntimeError):
    """Another process kept migrating this database for longer than we were willing to wait."""


async def take_migration_lock(connection: AsyncConnection, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    logged = False
    while True:
        got = await connection.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
        )
        if got:
            return
        if not logged:
            logger.info("another process is migrating this database; waiting for it")
            logged = True
        if time.monotonic() > deadline:
            raise MigrationLockTimeout(
                f"the migration lock was still held after {wait_seconds:g}s (MIGRATE_LOCK_TIMEOUT)"
            )
        await asyncio.sleep(POLL_SECONDS)
