"""Engine, sessionmaker, the request session dependency and ``atomic()``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from codeatlas.settings import Settings

logger = logging.getLogger(__name__)


def _prepare_sqlite(engine: AsyncEngine, *, transactional: bool, busy_timeout: float) -> None:
    """Make SQLite behave: foreign keys on, WAL, and SAVEPOINT-correct transactions.

    pysqlite/aiosqlite begin transactions lazily on their own, which breaks SAVEPOINT and
    transactional DDL; SQLAlchemy's documented recipe is to turn that off and emit BEGIN
    ourselves. We emit ``BEGIN IMMEDIATE``, and only right before a transaction's first
    write (see :func:`codeatlas.db.sqlite_locking.install`).
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    if transactional:  # with ATOMIC_TRANSACTIONS=false every statement commits by itself
        from codeatlas.db import sqlite_locking

        sqlite_locking.install(engine, busy_timeout)


def create_engine(settings: Settings) -> AsyncEngine:
    url = make_url(settings.resolved_database_url)
    kwargs: dict[str, Any] = {"echo": settings.db_echo, "pool_pre_ping": True}
    if not settings.atomic_transactions:
        # 3-A roll-back: every statement commits on its own, like the old commit-per-write code.
        kwargs["isolation_level"] = "AUTOCOMMIT"
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            from pathlib import Path

            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": settings.sqlite_busy_timeout}
    else:
        kwargs["pool_size"] = settings.db_pool_size
        kwargs["max_overflow"] = settings.db_pool_size
        kwargs["connect_args"] = {"timeout": 5, "command_timeout": 30}
    engine = create_async_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        _prepare_sqlite(
            engine,
            transactional=settings.atomic_transactions,
            busy_timeout=settings.sqlite_busy_timeout,
        )
    return engine


class Database:
    """The engine and sessionmaker of one process, chosen once at start-up."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for background code; pair it with :func:`atomic` for its writes."""
        async with self.sessionmaker() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def atomic(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """All writes inside the block commit together or not at all.

    Outside a transaction it opens one (``session.begin()``) and commits on exit; inside one
    (a request, an outer ``atomic``) it uses a SAVEPOINT, so a failure undoes just this block
    and the caller decides about the rest. With ATOMIC_TRANSACTIONS=false the engine is in
    autocommit and this only flushes.
    """
    if session.in_transaction():
        async with session.begin_nested():
            yield session
    else:
        async with session.begin():
            yield session


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One request, one transaction: commit when the endpoint returns, roll back if it raises.

    FastAPI runs this exit code before the response is sent, so a client that reads right
    after a successful write sees it.
    """
    db: Database = request.app.state.db
    async with db.sessionmaker() as session:
        deferred: list[Callable[[], object]] = []
        session.info[DEFERRED_IO] = deferred
        try:
            async with session.begin():
                yield session
        finally:
            if deferred:  # blocking clean-up the commit/rollback hooks left for a thread
                await asyncio.to_thread(_run_all, deferred)


DEFERRED_IO = "codeatlas_deferred_io"


def defer_blocking(session: AsyncSession | Session, fn: Callable[[], object]) -> bool:
    """Run ``fn`` in a thread once the request's transaction has ended, if this is a request
    session; False (and nothing deferred) otherwise, so the caller runs it itself.

    Commit and rollback hooks run on the event loop (inside SQLAlchemy's greenlet); this is
    how they hand file-system clean-up to a thread without the response going out first.
    """
    deferred = session.info.get(DEFERRED_IO)
    if deferred is None:
        return False
    deferred.append(fn)
    return True


def _run_all(fns: list[Callable[[], object]]) -> None:
    for fn in fns:
        try:
            fn()
        except Exception:
            logger.exception("deferred clean-up failed")


# scope="function": the transaction commits (or rolls back) when the endpoint returns, before
# the response is sent and before its background tasks run. With FastAPI's default scope a
# dependency's exit code runs only after the response went out (FastAPI >= 0.121 behaviour),
# so a client could read before the commit, be told 2xx for a write whose commit then failed,
# and a chat turn started as a background task raced the commit of its own message.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
