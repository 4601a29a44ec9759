"""Worker heartbeats (2-B): each worker process says it is alive; readiness reads that.

A worker process writes ``<REDIS_KEY_PREFIX>worker:<host>:<pid>`` every
WORKER_HEARTBEAT_INTERVAL seconds with a TTL of WORKER_HEARTBEAT_STALE_AFTER; the API's
readiness check ``workers`` is ready while at least one heartbeat is younger than that.
A stopped worker deletes its key; a killed one simply stops writing it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
from typing import Any

import redis
import redis.asyncio as aioredis

from codeatlas.core.redis_client import key
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)


def heartbeat_key(settings: Settings, host: str | None = None, pid: int | None = None) -> str:
    return key(settings, "worker", host or socket.gethostname(), pid or os.getpid())


class WorkerHeartbeat(threading.Thread):
    """A daemon thread writing this process's heartbeat key."""

    def __init__(self, settings: Settings, *, threads: int, mode: str = "worker") -> None:
        super().__init__(name="codeatlas-heartbeat", daemon=True)
        self.settings = settings
        self.key = heartbeat_key(settings)
        self.info: dict[str, Any] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "threads": threads,
            "mode": mode,
            "started_at": time.time(),
        }
        self.client = redis.Redis.from_url(
            settings.redis_url or "",
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
        )
        self._stop_event = threading.Event()

    def beat(self) -> None:
        payload = json.dumps({**self.info, "ts": time.time()})
        ttl = max(1, math.ceil(self.settings.worker_heartbeat_stale_after))
        self.client.set(self.key, payload, ex=ttl)

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.beat()
            except redis.RedisError as exc:
                logger.warning("worker heartbeat not written: %s", exc)
            self._stop_event.wait(self.settings.worker_heartbeat_interval)

    def start(self) -> None:
        try:
            self.beat()  # before the first job, so readiness turns green at once
        except redis.RedisError as exc:
            logger.warning("worker heartbeat not written: %s", exc)
        super().start()

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=5)
        try:
            self.client.delete(self.key)
        except redis.RedisError as exc:
            logger.warning("worker heartbeat key not removed: %s", exc)
        finally:
            self.client.close()


async def live_workers(client: aioredis.Redis, settings: Settings) -> list[dict[str, Any]]:
    """Heartbeats younger than WORKER_HEARTBEAT_STALE_AFTER."""
    pattern = key(settings, "worker", "*")
    keys = [k async for k in client.scan_iter(match=pattern, count=1000)]
    if not keys:
        return []
    now = time.time()
    alive = []
    for raw in await client.mget(keys):
        if raw is None:
            continue
        try:
            beat = json.loads(raw)
            age = now - float(beat["ts"])
        except (ValueError, KeyError, TypeError):
            continue
        if age < settings.worker_heartbeat_stale_after:
            alive.append(beat)
    return alive


def workers_check(client: aioredis.Redis, settings: Settings) -> Any:
    """The readiness check ``workers``."""

    async def check() -> str:
        alive = await live_workers(client, settings)
        if not alive:
            raise RuntimeError(
                "no worker heartbeat younger than "
                f"{settings.worker_heartbeat_stale_after:g}s (start `codeatlas worker`)"
            )
        return f"{len(alive)} worker process(es), {sum(b.get('threads', 0) for b in alive)} threads"

    return check
