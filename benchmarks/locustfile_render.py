"""Locust load for POST /api/v1/rendering/markdown (4-A); driven by benchmarks/render_load.py.

One user sends ``RENDER_RATE`` requests per second on a fixed schedule (open loop: a slow
answer does not delay the next request), each answer handled in its own greenlet, at most
``RENDER_MAX_IN_FLIGHT`` at once. Documents come from ``render_docs.make_document(seed)``
(chat-answer-like, 0.5-8 KB, with code blocks). ``RENDER_MIX`` picks how they repeat:

* ``uncached``: every request is a new document (a unique line is added): nothing hits.
* ``cached``: a pool of ``RENDER_POOL`` documents, warmed beforehand: everything hits.
* ``mixed``: 80 % from the pool, 20 % new (a chat where answers are re-shown and new ones
  arrive).

Per-request latencies (ms, after spawning completes) and the ``X-Renderer`` /
``X-Render-Cache`` header counts are written to ``RENDER_LOAD_REPORT`` (JSON) at the end, so
the runner computes exact percentiles instead of Locust's rounded ones.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, constant, events, task
from render_docs import make_document

URL = "/api/v1/rendering/markdown"
MIX = os.environ.get("RENDER_MIX", "uncached")
POOL_SIZE = int(os.environ.get("RENDER_POOL", "200"))
RATE = float(os.environ.get("RENDER_RATE", "100"))
MAX_IN_FLIGHT = int(os.environ.get("RENDER_MAX_IN_FLIGHT", "256"))
NAME = f"{URL} [{MIX}]"
REPORT = os.environ.get("RENDER_LOAD_REPORT", "")

POOL = [make_document(seed) for seed in range(POOL_SIZE)]
_unique_seeds = itertools.count(POOL_SIZE + os.getpid() * 1_000_000)

latencies_ms: list[float] = []
renderers: Counter[str] = Counter()
cache_states: Counter[str] = Counter()
failures = 0
measuring = False
in_flight = [0]
window = {"start": 0.0, "stop": 0.0}


def next_document() -> str:
    if MIX == "cached" or (MIX == "mixed" and random.random() < 0.8):
        return random.choice(POOL)
    # A new document: a pool-like body plus a line no other request has.
    return f"{make_document(next(_unique_seeds))}\n\n<!-- {uuid.uuid4().hex} -->\n"


class RenderLoad(FastHttpUser):
    """One user that sends at a fixed rate (open loop) over a shared connection pool.

    Why not many users with ``constant_throughput``: that is a closed loop (a slow answer
    delays the next request, hiding the slowness), and on this machine Locust itself added
    10-40 ms per request once each of 25-50 users had its own connection, measured against
    a trivial endpoint (an asyncio client saw 3 ms there). Sending on a schedule from one user
    and handling each answer in its own greenlet measured 2 ms on that endpoint.
    """

    wait_time = constant(0)
    concurrency = MAX_IN_FLIGHT  # connections in the user's pool

    @task
    def send_on_schedule(self) -> None:
        start = time.monotonic()
        for i in itertools.count(1):
            gevent.sleep(max(0.0, start + i / RATE - time.monotonic()))
            if in_flight[0] >= MAX_IN_FLIGHT:
                # The servers are this far behind: count the send as failed rather than queue
                # without bound (the run is over capacity either way).
                events.request.fire(
                    request_type="POST", name=NAME, response_time=0, response_length=0,
                    exception=RuntimeError("client saturated"), context={},
                )  # fmt: skip
                continue
            gevent.spawn(self.render_one)

    def render_one(self) -> None:
        in_flight[0] += 1
        try:
            with self.client.post(
                URL, json={"markdown": next_document()}, name=NAME, catch_response=True
            ) as response:
                if response.status_code != 200:
                    response.failure(f"HTTP {response.status_code}")
                    return
                if 'class="highlight"' not in response.json()["html"]:
                    response.failure("no highlighted code in the answer")
                    return
                if measuring:
                    renderers[response.headers.get("X-Renderer", "?")] += 1
                    cache_states[response.headers.get("X-Render-Cache", "?")] += 1
        finally:
            in_flight[0] -= 1


@events.spawning_complete.add_listener
def _start_measuring(user_count: int, **_: Any) -> None:
    global measuring
    measuring = True
    latencies_ms.clear()
    window["start"] = time.monotonic()


@events.test_stop.add_listener
def _stop_measuring(**_: Any) -> None:
    global measuring
    measuring = False
    window["stop"] = time.monotonic()


@events.request.add_listener
def _record(response_time: float, exception: BaseException | None, **_: Any) -> None:
    global failures
    if not measuring:
        return
    if exception is None:
        latencies_ms.append(response_time)
    else:
        failures += 1


@events.quitting.add_listener
def _write_report(**_: Any) -> None:
    if REPORT:
        Path(REPORT).write_text(
            json.dumps(
                {
                    "latencies_ms": latencies_ms,
                    "failures": failures,
                    "window_s": window["stop"] - window["start"],
                    "renderers": dict(renderers),
                    "cache": dict(cache_states),
                }
            )
        )
