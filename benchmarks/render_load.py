"""Load test of 4-A: locust (headless) → `codeatlas serve` → `codeatlas render-svc`.

Starts a real render-svc and a real API (SQLite under a temporary directory, the Redis at
--redis-url under a key prefix of its own, RENDER_ENDPOINT pointing at render-svc), warms
them up, then runs locust at a constant offered rate and prints exact p50/p95/p99 of the
requests made in the measured window, the achieved rate, which renderer answered and
the CPU each server process used.

    # the checklist's run: 100 requests/s for 30 s, every document new (no cache hits)
    python benchmarks/render_load.py --rate 100 --duration 30 --mix uncached
    # the same with every document already cached
    python benchmarks/render_load.py --rate 100 --duration 30 --mix cached
    # the highest rate held: steps until p95 >= 150 ms, failures, or < 97 % of the rate
    python benchmarks/render_load.py --find-max --mix uncached --steps 100,150,200,250,300

Only loopback addresses are used; every run is bounded by --duration and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from render_docs import make_document  # noqa: E402

LOCUSTFILE = HERE / "locustfile_render.py"
URL = "/api/v1/rendering/markdown"
CHECKLIST_P95_MS = 150.0
TARGET_P95_MS = 50.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: process exited {proc.returncode}\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout}s\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (uvicorn workers)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


async def warm_up(base: str, docs: list[str], concurrency: int = 8) -> None:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def one(doc: str) -> None:
            async with sem:
                r = await client.post(URL, json={"markdown": doc})
                r.raise_for_status()

        await asyncio.gather(*(one(d) for d in docs))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class StepResult:
    rate: float
    requests: int
    failures: int
    achieved: float
    p50: float
    p95: float
    p99: float
    max: float
    renderers: dict[str, int]
    cache: dict[str, int]
    api_cpu: float
    svc_cpu: float
    locust_cpu: float
    load: float

    @property
    def held(self) -> bool:
        return (
            self.failures == 0
            and self.achieved >= 0.97 * self.rate
            and self.p95 < CHECKLIST_P95_MS
            and self.renderers.get("local-fallback", 0) == 0
        )

    def row(self) -> str:
        renderers = ", ".join(f"{k} {v}" for k, v in sorted(self.renderers.items()))
        return (
            f"| {self.rate:.0f} | {self.achieved:.1f} | {self.requests} | {self.failures} | "
            f"{self.p50:.1f} | {self.p95:.1f} | {self.p99:.1f} | {self.max:.0f} | "
            f"{self.api_cpu:.0f} % | {self.svc_cpu:.0f} % | {self.locust_cpu:.0f} % | "
            f"{renderers} | {self.load:.1f} | {'yes' if self.held else 'no'} |"
        )


HEADER = (
    "| offered req/s | achieved req/s | requests | failures | p50 ms | p95 ms | p99 ms | "
    "max ms | API CPU | render-svc CPU | locust CPU | X-Renderer | load 1 min | held |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def run_locust(
    base: str,
    rate: float,
    duration: int,
    mix: str,
    pool: int,
    workdir: Path,
    pids: dict[str, int],
) -> StepResult:
    report = workdir / f"report-{mix}-{rate:.0f}.json"
    env = {
        **os.environ,
        "RENDER_MIX": mix,
        "RENDER_POOL": str(pool),
        "RENDER_RATE": str(rate),
        "RENDER_LOAD_REPORT": str(report),
    }
    cmd = [
        "locust", "-f", str(LOCUSTFILE), "--headless", "--host", base,
        "-u", "1", "-r", "1", "-t", f"{duration}s",
        "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    locust = psutil.Process(proc.pid)
    locust_cpu = 0.0
    while proc.poll() is None:
        try:
            t = locust.cpu_times()
            locust_cpu = t.user + t.system
        except psutil.NoSuchProcess:
            break
        time.sleep(0.5)
    output = proc.stdout.read().decode() if proc.stdout else ""
    wall = time.monotonic() - started
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    if not report.exists():
        raise SystemExit(f"locust wrote no report (exit {proc.returncode}):\n{output}")
    data: dict[str, Any] = json.loads(report.read_text())
    lat: list[float] = data["latencies_ms"]
    window = data["window_s"] or duration
    if data["failures"]:
        errors = output[output.find("Error report") :] if "Error report" in output else output
        print("  locust reported failures:\n" + errors[:3000])
    if "CPU usage above" in output:
        print("  warning: locust reported its own CPU saturated; the rate may be client-bound")
    return StepResult(
        rate=rate,
        requests=len(lat),
        failures=int(data["failures"]),
        achieved=(len(lat) + int(data["failures"])) / window,
        p50=percentile(lat, 50),
        p95=percentile(lat, 95),
        p99=percentile(lat, 99),
        max=max(lat) if lat else math.nan,
        renderers=data["renderers"],
        cache=data["cache"],
        api_cpu=100 * (after["api"] - before["api"]) / wall,
        svc_cpu=100 * (after.get("svc", 0.0) - before.get("svc", 0.0)) / wall,
        locust_cpu=100 * locust_cpu / wall,
        # The machine is shared: the 1-minute load average (ours included) says how much
        # else was running.
        load=os.getloadavg()[0],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100, help="offered requests/s")
    parser.add_argument("--duration", type=int, default=30, help="seconds per run")
    parser.add_argument("--mix", choices=["uncached", "cached", "mixed"], default="uncached")
    parser.add_argument("--pool", type=int, default=200, help="documents in the repeated pool")
    parser.add_argument("--find-max", action="store_true", help="step through --steps")
    parser.add_argument("--steps", default="100,150,200,250,300,350,400")
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--svc-workers", type=int, default=1)
    parser.add_argument("--no-svc", action="store_true", help="RENDER_ENDPOINT unset (local)")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="render-load-"))
    prefix = f"codeatlas-bench:{uuid.uuid4().hex[:8]}:"
    procs: list[subprocess.Popen[bytes]] = []
    pids: dict[str, int] = {}
    results: list[StepResult] = []
    try:
        env = {"LOG_LEVEL": "WARNING", "ENV": "development"}
        svc_url = ""
        if not args.no_svc:
            port = free_port()
            svc_url = f"http://127.0.0.1:{port}"
            log = workdir / "render-svc.log"
            svc = start(
                [sys.executable, "-m", "codeatlas", "render-svc", "--port", str(port),
                 "--workers", str(args.svc_workers)],
                env, log,
            )  # fmt: skip
            procs.append(svc)
            wait_http(f"{svc_url}/health/ready", svc, log)
            pids["svc"] = svc.pid
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        api_env = {
            **env,
            "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
            "DATA_DIR": str(workdir),
            "REDIS_URL": args.redis_url,
            "REDIS_KEY_PREFIX": prefix,
            "RENDER_ENDPOINT": svc_url,
        }
        log = workdir / "api.log"
        api = start(
            [sys.executable, "-m", "codeatlas", "serve", "--port", str(port),
             "--workers", str(args.api_workers)],
            api_env, log,
        )  # fmt: skip
        procs.append(api)
        wait_http(f"{base}/health/live", api, log)
        pids["api"] = api.pid

        # Warm-up: lexers are imported on first use; the pool is rendered once so that a
        # cached run is all hits.
        if args.mix in ("cached", "mixed"):
            asyncio.run(warm_up(base, [make_document(s) for s in range(args.pool)]))
        asyncio.run(warm_up(base, [make_document(10**9 + s) for s in range(100)]))

        rates = [float(r) for r in args.steps.split(",")] if args.find_max else [args.rate]
        print(
            f"mix={args.mix} api_workers={args.api_workers} "
            f"svc={'none' if args.no_svc else args.svc_workers} duration={args.duration}s "
            f"cores={os.cpu_count()} load before={os.getloadavg()[0]:.2f}"
        )
        print(HEADER)
        for rate in rates:
            result = run_locust(base, rate, args.duration, args.mix, args.pool, workdir, pids)
            results.append(result)
            print(result.row(), flush=True)
            if args.find_max and not result.held:
                break
        held = [r for r in results if r.held]
        if args.find_max:
            best = max((r.rate for r in held), default=None)
            fast = max((r.rate for r in held if r.p95 < TARGET_P95_MS), default=None)
            print(f"highest rate held (p95 < {CHECKLIST_P95_MS:.0f} ms, no failures): {best}")
            print(f"highest rate with p95 < {TARGET_P95_MS:.0f} ms: {fast}")
        for r in results:
            hits = r.cache.get("hit", 0)
            total = sum(r.cache.values()) or 1
            print(f"rate {r.rate:.0f}: cache hits {100 * hits / total:.0f} % of {total} answers")
        if args.json:
            args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))
    finally:
        for proc in reversed(procs):
            stop(proc)
        client = redis.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        client.close()


if __name__ == "__main__":
    main()
