"""What a running job may use: settings, a database and a Redis client for its event loop.

Actors take ids only, so they find their resources here. A worker process runs every async
actor on Dramatiq's one event-loop thread; the API process (inline jobs) runs them on its own
loop with the app's database. Engines and clients are bound to the loop that created them,
hence one of each per loop.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis

from codeatlas.core.redis_client import create_redis
from codeatlas.db.session import Database
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)


class JobRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._databases: dict[asyncio.AbstractEventLoop, tuple[Database, bool]] = {}
        self._redis: dict[asyncio.AbstractEventLoop, aioredis.Redis | None] = {}

    def use_database(self, database: Database) -> None:
        """Share an existing database on the running loop (not closed by :meth:`aclose`)."""
        self._databases[asyncio.get_running_loop()] = (database, False)

    def database(self) -> Database:
        loop = asyncio.get_running_loop()
        if loop not in self._databases:
            self._databases[loop] = (Database(self.settings), True)
        return self._databases[loop][0]

    def redis(self) -> aioredis.Redis | None:
        loop = asyncio.get_running_loop()
        if loop not in self._redis:
            self._redis[loop] = create_redis(self.settings)
        return self._redis[loop]

    async def aclose(self) -> None:
        """Close what this runtime opened on the running loop."""
        loop = asyncio.get_running_loop()
        database, owned = self._databases.pop(loop, (None, False))
        if database is not None and owned:
            await database.dispose()
        client = self._redis.pop(loop, None)
        if client is not None:
            await client.aclose()


_runtime: JobRuntime | None = None


def configure(settings: Settings) -> JobRuntime:
    global _runtime
    _runtime = JobRuntime(settings)
    return _runtime


def get_runtime() -> JobRuntime:
    if _runtime is None:
        raise RuntimeError("jobs runtime not configured (start the app or `codeatlas worker`)")
    return _runtime


def reset() -> None:
    global _runtime
    _runtime = None
