"""SQLite write locking: ``BEGIN IMMEDIATE`` right before a transaction's first write.

SQLite allows one writer at a time. A deferred ``BEGIN`` that has read and then writes must
upgrade its read snapshot to the write lock; if another connection committed in between,
SQLite refuses at once with "database is locked" (SQLITE_BUSY_SNAPSHOT), and
``busy_timeout`` never applies, because waiting could not help. ``BEGIN IMMEDIATE`` takes
the write lock up front and *does* wait (busy_timeout), so concurrent writers queue.

Taking it at the start of every request would hold the one write lock while an upload
streams in or a search embeds its query. So a transaction starts without any SQLite
transaction: its reads run as single statements (in WAL each sees the latest commit and
never blocks, the same as PostgreSQL's READ COMMITTED), and the first statement that
writes (INSERT/UPDATE/DELETE/DDL, a SAVEPOINT, or a ``SELECT … FOR UPDATE``, which is how
our code says "I read this to change it") first issues ``BEGIN IMMEDIATE``. From there to
COMMIT the transaction is serialised with every other writer, exactly what ``FOR UPDATE``
promises on PostgreSQL. Code that is correct under PostgreSQL's default isolation is
therefore correct here.

Within one process, writers also queue on an asyncio lock before ``BEGIN IMMEDIATE``.
SQLite's busy handler polls with sleeps of up to 100 ms, so with dozens of writers waiting
the lock sat free between a COMMIT and the next poll, and the queue drained so slowly that
the last writers ran out of busy_timeout (measured: 36 concurrent writes over HTTP took
~10 s and 4 answered DB_BUSY). The asyncio lock hands over at once and in order; the busy
handler still arbitrates between processes (the API and a worker).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only
from sqlalchemy.util.concurrency import in_greenlet

logger = logging.getLogger(__name__)

_PENDING = "codeatlas_begin_pending"  # SQLAlchemy began a transaction; SQLite has not yet
_HELD = "codeatlas_writer_lock"  # the in-process writer lock this connection holds
_READ_PREFIXES = ("SELECT", "PRAGMA", "EXPLAIN", "VALUES")


def _writes(conn: Connection, statement: str, context: Any) -> bool:
    compiled = getattr(context, "compiled", None)
    if compiled is not None:
        if context.isinsert or context.isupdate or context.isdelete or context.isddl:
            return True
        stmt = getattr(compiled, "statement", None)
        if getattr(stmt, "_for_update_arg", None) is not None:
            return True  # SQLite drops FOR UPDATE from the SQL; the intent is what counts
    head = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
    if head in _READ_PREFIXES:
        return False
    if head == "WITH":  # a CTE ahead of INSERT/UPDATE/DELETE writes
        upper = statement.upper()
        return any(f" {kw} " in upper for kw in ("INSERT", "UPDATE", "DELETE", "REPLACE"))
    return True


class _WriterQueue:
    """One asyncio lock per event loop: the writers of this process take turns."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def lock(self) -> asyncio.Lock | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: a plain sync caller
            return None
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    def acquire(self, lock: asyncio.Lock) -> None:
        try:
            await_only(self._acquire(lock))
        except TimeoutError:
            # the same error SQLite gives after busy_timeout: it answers 503 DB_BUSY
            raise sqlite3.OperationalError(
                "database is locked (this process's other writers held it too long)"
            ) from None

    async def _acquire(self, lock: asyncio.Lock) -> None:
        # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives in the
        # same loop iteration as the lock is granted (CPython gh-86296), so a cancelled task
        # (a stopped chat turn) went on running with the lock. asyncio.timeout re-raises it.
        async with asyncio.timeout(self.timeout):
            await lock.acquire()


def _release(info: dict[Any, Any]) -> None:
    """Give back the writer lock a connection holds (``info``: its pool record's info)."""
    lock = info.pop(_HELD, None)
    if lock is not None and lock.locked():
        lock.release()


def _let_go(info: dict[Any, Any]) -> None:
    """The transaction ended: nothing pending, no lock held."""
    info.pop(_PENDING, None)
    _release(info)


def install(engine: AsyncEngine, busy_timeout: float) -> None:
    """Wire the lazy ``BEGIN IMMEDIATE`` into ``engine`` (transactional mode only)."""
    sync_engine = engine.sync_engine
    queue = _WriterQueue(busy_timeout)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.info[_PENDING] = True

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before_execute(
        conn: Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if not conn.info.get(_PENDING) or not conn.in_transaction():
            return
        if not _writes(conn, statement, context):
            return
        conn.info[_PENDING] = False
        lock = queue.lock()
        if lock is not None:
            queue.acquire(lock)
            conn.info[_HELD] = lock
        raw = conn.connection.dbapi_connection
        assert raw is not None
        begin = raw.cursor()
        try:
            begin.execute("BEGIN IMMEDIATE")  # waits up to busy_timeout for other processes
        except BaseException:
            _release(conn.info)
            raise
        finally:
            begin.close()

    def _ended(conn: Connection) -> None:
        if conn.invalidated:  # its record was let go when the pool closed it (below);
            return  # touching .info here would raise PendingRollbackError
        _let_go(conn.info)

    event.listen(sync_engine, "commit", _ended)
    event.listen(sync_engine, "rollback", _ended)

    # A task cancelled inside a statement (a stopped chat turn, a shut-down) never reaches
    # COMMIT or ROLLBACK: SQLAlchemy treats the CancelledError as a disconnect and closes
    # ("invalidates") the connection without a rollback event. That left two locks taken,
    # and every later writer waited busy_timeout and failed with "database is locked"
    # (tests/platform/test_sqlite_locking.py, the cancelled-writer test):
    # * SQLite's own: the cancelled task's traceback still references the cursor, and
    #   sqlite3_close_v2 with an unfinalized statement leaves a "zombie" connection that keeps
    #   its transaction until the garbage collector frees the cursor. So the transaction is
    #   rolled back (on the connection's own thread) before SQLAlchemy closes it.
    # * this process's writer lock: let go whenever a connection returns to the pool or closes.
    def _on_invalidate(dbapi_conn: Any, _record: Any, _exc: Any) -> None:
        if not in_greenlet():  # garbage-collector clean-up: nothing can be awaited
            return
        try:
            dbapi_conn.rollback()
        except Exception as exc:  # noqa: BLE001 - a broken connection is closed next anyway
            logger.debug("rollback before closing an invalidated connection failed: %s", exc)

    def _on_pool_return(_dbapi_conn: Any, record: Any, *_: Any) -> None:
        _let_go(record.info)  # the same dict as Connection.info of that connection

    event.listen(sync_engine.pool, "invalidate", _on_invalidate)
    event.listen(sync_engine.pool, "checkin", _on_pool_return)
    event.listen(sync_engine.pool, "close", _on_pool_return)
