"""Which exceptions mean "a dependency is away" rather than "we have a bug".

:func:`classify` looks at an exception that escaped a route (and the exceptions it was raised
from) and names the component that is unreachable: ``db`` (PostgreSQL unreachable, restarting
or the pool exhausted), ``db_busy`` (SQLite's write lock still held after busy_timeout) or
``redis``. The error layer (:mod:`codeatlas.errors`) answers those with a 503 and
``Retry-After`` instead of a 500; anything else stays a 500.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from typing import Literal

import redis.exceptions
from sqlalchemy import exc as sa_exc

Outage = Literal["db", "db_busy", "redis"]

# Socket-level errors of a peer that is down or unreachable.
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ETIMEDOUT,
        errno.EPIPE,
        errno.ENOTCONN,
    }
)
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")
_SQLITE_GONE = ("unable to open database file", "disk i/o error")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        if isinstance(cur, BaseExceptionGroup):
            todo.extend(cur.exceptions)
        for nxt in (cur.__cause__, cur.__context__, getattr(cur, "orig", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def _raised_in(exc: BaseException, *packages: str) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in packages:
            return True
        tb = tb.tb_next
    return False


def _network_error(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, OSError):
        if exc.errno in _NETWORK_ERRNOS:
            return True
        # asyncpg reports a refused connection as "Multiple exceptions: [Errno 111] Connect
        # call failed ..." without an errno of its own.
        return exc.filename is None and "connect call failed" in str(exc).lower()
    return False


def _asyncpg_connection_error(exc: BaseException) -> bool:
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return False
    if isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.ConnectionDoesNotExistError
        | asyncpg.CannotConnectNowError
        | asyncpg.AdminShutdownError
        | asyncpg.TooManyConnectionsError,
    ):
        return True
    # Other InterfaceErrors are misuse (a released connection, a concurrent operation): bugs.
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc).lower()


def classify(exc: BaseException) -> Outage | None:
    """The component an exception says is unreachable, or None for a genuine error."""
    for cur in _chain(exc):
        if isinstance(cur, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            return "redis"
        if isinstance(cur, sqlite3.OperationalError):
            text = str(cur).lower()
            if any(m in text for m in _SQLITE_BUSY):
                return "db_busy"
            if any(m in text for m in _SQLITE_GONE):
                return "db"
        if isinstance(cur, sa_exc.TimeoutError):  # QueuePool limit reached: pool timeout
            return "db"
        if isinstance(cur, sa_exc.DBAPIError) and cur.connection_invalidated:
            return "db"
        if _asyncpg_connection_error(cur):
            return "db"
        if _network_error(cur):
            if _raised_in(cur, "redis"):
                return "redis"
            if _raised_in(cur, "asyncpg", "sqlalchemy"):
                return "db"
    return None
