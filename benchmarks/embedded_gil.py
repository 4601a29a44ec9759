"""Does an HNSW build stall an event loop in the same process? (issue 10, finding 7)

Builds an embedded Qdrant (qdrant-edge) collection of N random 384-d vectors and runs its
HNSW optimisation, either in a thread of this process (what worker threads inside the API
process do) or in a child process (what the supervised worker child of `codeatlas serve`
does), while an asyncio ticker in this process sleeps 10 ms in a loop and records how late
each wake-up is. Prints the ticker's lateness p50/p95/p99/max per mode::

    python benchmarks/embedded_gil.py --points 20000

A stall of the ticker is a stall of every request the API process would serve.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeatlas.knowledge.vector_store import EdgeVectorStore, VectorPoint  # noqa: E402

DIM = 384


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def build(path: str, points: int) -> float:
    """Fill a collection and build its HNSW index; seconds the optimisation took."""

    async def main() -> float:
        rng = random.Random(7)
        store = EdgeVectorStore(path, optimize_threshold=None, indexing_threshold_kb=1)
        await store.create_index_if_missing("bench", DIM, model_name="bench")
        for start in range(0, points, 1000):
            batch = [
                VectorPoint(i, [rng.random() for _ in range(DIM)], {"project_id": 1})
                for i in range(start, min(points, start + 1000))
            ]
            await store.upsert("bench", batch)
        started = time.perf_counter()
        await store.optimize("bench")
        took = time.perf_counter() - started
        await store.close()
        return took

    return asyncio.run(main())


def _child(path: str, points: int, out: multiprocessing.Queue[float]) -> None:
    out.put(build(path, points))


async def measure(mode: str, points: int, tmp: Path) -> tuple[list[float], float]:
    late: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            late.append((time.perf_counter() - started - 0.01) * 1000)

    tick = asyncio.create_task(ticker())
    path = str(tmp / mode)
    if mode == "thread":
        took = await asyncio.to_thread(build, path, points)
    else:
        ctx = multiprocessing.get_context("spawn")
        queue: multiprocessing.Queue[float] = ctx.Queue()
        proc = ctx.Process(target=_child, args=(path, points, queue))
        proc.start()
        while proc.is_alive() and queue.empty():
            await asyncio.sleep(0.05)
        took = queue.get(timeout=60)
        proc.join()
    done.set()
    await tick
    return late, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--points", type=int, default=20_000)
    args = parser.parse_args()
    print(f"{args.points} random {DIM}-d vectors, HNSW build; ticker lateness in ms")
    print(
        f"{'build in':<9} {'ticks':>6} {'p50':>7} {'p95':>7} {'p99':>8} {'max':>8} {'build s':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="codeatlas-gil-") as tmp:
        for mode in ("thread", "process"):
            late, took = asyncio.run(measure(mode, args.points, Path(tmp)))
            print(
                f"{mode:<9} {len(late):>6} {pct(late, 50):>7.1f} {pct(late, 95):>7.1f} "
                f"{pct(late, 99):>8.1f} {max(late):>8.1f} {took:>8.1f}"
            )


if __name__ == "__main__":
    main()
