"""Benchmark of the rate limiter's cost per check (checklist 1-A: well under 1 ms at p95).

Against a real Redis (default redis://127.0.0.1:6379/0, or REDIS_URL / --redis-url), one
check after another, each timed on its own:

1. ``enforce_redis_rate_limit`` (async; MULTI pipeline INCR + EXPIRE NX + TTL, one round trip)
2. ``RateLimits.enforce`` with the two failed-login rules (account + IP), still one round trip
3. the SlowAPI per-route check (``limits`` fixed window, sync redis-py, one Lua call)
4. the in-memory bucket (the fallback), for reference

Keys live under a throw-away prefix and are deleted at the end.
Run: ``python benchmarks/rate_limit.py [--n 5000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import redis
import redis.asyncio as aioredis
from limits import parse

from codeatlas.core.ratelimit import InMemoryBucket, RateLimits, Rule, enforce_redis_rate_limit
from codeatlas.core.ratelimit import limiter as route_limiter
from codeatlas.settings import Settings

TARGET_P95_MS = 1.0
BIG = 10**9  # never refused: we measure the check, not the 429


def report(name: str, samples: list[float]) -> float:
    ms = sorted(s * 1000 for s in samples)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    p50, p95, p99 = q[49], q[94], q[98]
    print(f"{name:<52} p50 {p50:6.3f} ms  p95 {p95:6.3f} ms  p99 {p99:6.3f} ms  (n={len(ms)})")
    return p95


async def time_async(n: int, check: Callable[[int], Awaitable[object]]) -> list[float]:
    for i in range(min(200, n)):  # warm-up: connections, script cache
        await check(i)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await check(i)
        samples.append(time.perf_counter() - started)
    return samples


async def main(url: str, n: int) -> None:
    prefix = f"codeatlas-bench:{uuid.uuid4().hex[:8]}:"
    client = aioredis.Redis.from_url(url)
    info = await client.info("server")
    print(f"Redis {info.get('redis_version')} at {url}, {n} sequential checks each\n")
    results: dict[str, float] = {}
    try:
        keys = [f"{prefix}k{i % 100}" for i in range(n)]
        results["enforce_redis_rate_limit"] = report(
            "1. enforce_redis_rate_limit (1 key)",
            await time_async(n, lambda i: enforce_redis_rate_limit(client, keys[i], BIG, 60)),
        )
        limits = RateLimits(client)
        pairs = [
            (Rule(f"{prefix}a{i % 100}", BIG, 900), Rule(f"{prefix}ip{i % 7}", BIG, 900))
            for i in range(n)
        ]
        results["login check"] = report(
            "2. RateLimits.enforce (account + IP rules)",
            await time_async(n, lambda i: limits.enforce(*pairs[i])),
        )

        settings = Settings(redis_url=url, redis_key_prefix=prefix)
        app_limiter = route_limiter.for_app(settings)
        item = parse(f"{BIG}/minute")
        strategy = app_limiter.limiter
        for _ in range(200):
            strategy.hit(item, "127.0.0.1", "/bench")
        samples = []
        for i in range(n):
            started = time.perf_counter()
            strategy.hit(item, f"10.0.0.{i % 50}", "/api/v1/auth/login")
            samples.append(time.perf_counter() - started)
        results["slowapi"] = report("3. SlowAPI route check (limits, sync redis-py)", samples)

        memory = InMemoryBucket()
        results["memory"] = report(
            "4. in-memory bucket (fallback)",
            await time_async(n, lambda i: memory.hit([Rule(keys[i], BIG, 60)])),
        )
    finally:
        sync = redis.Redis.from_url(url)
        doomed = list(sync.scan_iter(match=prefix + "*", count=1000))
        doomed += list(sync.scan_iter(match=f"{prefix}slowapi*", count=1000))
        if doomed:
            sync.delete(*set(doomed))
        sync.close()
        await client.aclose()
    worst = max(v for k, v in results.items() if k != "memory")
    verdict = "OK" if worst < TARGET_P95_MS else "OVER TARGET"
    print(f"\nworst Redis-backed p95: {worst:.3f} ms (target < {TARGET_P95_MS} ms): {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--n", type=int, default=5000, help="checks per scenario")
    args = parser.parse_args()
    asyncio.run(main(args.redis_url, args.n))
