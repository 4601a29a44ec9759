"""A job start the table has recorded is never undone by its best-effort announcement.

Seen in the PostgreSQL-outage benchmark: the start committed, then ``job.progress`` could
not read the row (asyncpg's refused connect is a bare ``ConnectionRefusedError``, which
SQLAlchemy does not wrap), the worker deferred the message, and every copy of it waited
~60 s for the lease of an attempt that was never running.
"""

from __future__ import annotations

from pathlib import Path

from codeatlas.jobs.middleware import announce
from codeatlas.jobs.runtime import JobRuntime
from codeatlas.settings import Settings
from tests.conftest import free_port


async def test_announcing_a_start_survives_a_refused_database(tmp_path: Path) -> None:
    # Nothing listens on the port: every connect is refused, as during an outage.
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gone"
    runtime = JobRuntime(Settings(env="test", database_url=url, data_dir=tmp_path))
    try:
        await announce(runtime, "a-message-id")  # logs and returns; raised OSError before
    finally:
        await runtime.aclose()
