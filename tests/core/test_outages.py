"""Which exceptions count as "a dependency is away" (503) and which stay bugs (500)."""

from __future__ import annotations

import errno
import sqlite3

import asyncpg
import pytest
import redis.exceptions
from sqlalchemy import exc as sa_exc

from codeatlas.core.outages import classify
from codeatlas.errors import outage_error


def _wrapped(orig: BaseException, *, invalidated: bool = False) -> sa_exc.DBAPIError:
    return sa_exc.OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_wrapped(sqlite3.OperationalError("database is locked")), "db_busy"),
        (_wrapped(sqlite3.OperationalError("unable to open database file")), "db"),
        (_wrapped(Exception("server closed the connection"), invalidated=True), "db"),
        (asyncpg.CannotConnectNowError("the database system is starting up"), "db"),
        (asyncpg.InterfaceError("connection is closed"), "db"),
        (sa_exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"), "db"),
        (redis.exceptions.ConnectionError("Error 111 connecting"), "redis"),
        (redis.exceptions.TimeoutError("Timeout reading from socket"), "redis"),
    ],
)
def test_outages_are_recognised(exc: BaseException, kind: str) -> None:
    assert classify(exc) == kind
    error = outage_error(exc, retry_after=7)
    assert error is not None and error.status_code == 503
    assert error.headers == {"Retry-After": "7"}


def test_an_outage_found_through_the_cause_chain() -> None:
    try:
        try:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")
        except OSError as inner:
            raise RuntimeError("while loading the user") from inner
    except RuntimeError as outer:
        # raised outside asyncpg/redis: a refused socket alone does not say which component
        assert classify(outer) is None


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad"),
        _wrapped(sqlite3.OperationalError("no such table: users")),
        OSError(errno.ENOSPC, "No space left on device", "/data/uploads/x"),
        asyncpg.InterfaceError("cannot call Connection.fetch(): connection has been released"),
        sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
        redis.exceptions.ResponseError("WRONGTYPE"),
    ],
)
def test_bugs_stay_bugs(exc: BaseException) -> None:
    assert classify(exc) is None
    assert outage_error(exc) is None
