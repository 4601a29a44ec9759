"""Probe actors for the jobs tests, loaded by workers through JOBS_EXTRA_MODULES.

Each one leaves a trace in Redis (under the test's key prefix) that the test reads, and the
ones that wait or fail do so on conditions the test controls.
"""

from __future__ import annotations

import asyncio
import logging

from codeatlas.core.redis_client import key
from codeatlas.jobs.actors import actor
from codeatlas.jobs.runtime import get_runtime

logger = logging.getLogger("codeatlas.tests.probe")


def _key(*parts: object) -> str:
    return key(get_runtime().settings, "probe", *parts)


def _redis():  # type: ignore[no-untyped-def]
    client = get_runtime().redis()
    assert client is not None
    return client


@actor("probe.record")
async def record(n: int) -> None:
    logger.info("probe record %s ran", n)
    await _redis().rpush(_key("done"), n)


@actor("probe.wait", time_limit_ms=120_000)
async def wait(n: int) -> None:
    """Blocks until the test sets the gate key, so a test can kill the worker mid-job."""
    logger.info("probe wait %s started", n)
    await _redis().rpush(_key("started"), n)
    while not await _redis().exists(_key("gate", n)):
        await asyncio.sleep(0.05)
    await _redis().rpush(_key("done"), n)
    logger.info("probe wait %s finished", n)


@actor("probe.flaky")
async def flaky(n: int) -> None:
    """Fails on its first two attempts, succeeds on the third."""
    attempt = await _redis().incr(_key("flaky", n))
    if attempt <= 2:
        raise RuntimeError(f"flaky failure {attempt}")
    await _redis().rpush(_key("done"), n)


class NotWorthRetrying(Exception):
    pass


@actor("probe.broken", max_retries=2)
async def broken(n: int) -> None:
    """Fails every attempt until the test sets its fix key."""
    await _redis().incr(_key("broken", n))
    if not await _redis().exists(_key("fix", n)):
        raise RuntimeError(f"broken {n} on purpose")
    await _redis().rpush(_key("done"), n)


@actor("probe.permanent", throws=(NotWorthRetrying,))
async def permanent(n: int) -> None:
    raise NotWorthRetrying(f"permanent {n}")


@actor("probe.process_paused", time_limit_ms=120_000)
async def process_paused(document_id: int) -> None:
    """code.process_file's real work, parked inside its final transaction (chunks written,
    not committed) until the test sets the gate: a test kills the worker there."""
    from codeatlas.code.tasks import process_document

    async def park() -> None:
        await _redis().rpush(_key("parked"), document_id)
        while not await _redis().exists(_key("gate", "process", document_id)):
            await asyncio.sleep(0.05)

    await process_document(document_id, before_commit=park)


@actor("probe.slow", time_limit_ms=300, max_retries=1)
async def slow(n: int) -> None:
    """Never finishes within its time limit."""
    await asyncio.sleep(30)
    await _redis().rpush(_key("done"), n)
