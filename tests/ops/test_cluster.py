"""The 2-B DoD as Kubernetes sees it through the chart's probe settings: two API processes,
two `codeatlas worker` processes and a render-svc on real PostgreSQL (or SQLite) and a Redis
this test owns. Kill one worker: every API stays ready. Kill both: readiness answers 503
naming `workers`. Stop Redis: 503 naming `redis` — each within the time the chart's
readiness probe needs to mark the pod un-ready (period times failure threshold)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import free_port
from tests.ops.tools import CHART
from tests.platform.throwaway import ThrowawayRedis

PROBE = yaml.safe_load((CHART / "values.yaml").read_text())["probes"]["readiness"]
# Kubernetes turns a pod un-ready after failureThreshold failed probes, periodSeconds apart.
UNREADY_WITHIN = PROBE["periodSeconds"] * PROBE["failureThreshold"] + PROBE["timeoutSeconds"]


class Cluster:
    def __init__(self, database_url: str, redis: ThrowawayRedis, root: Path) -> None:
        self.database_url = database_url
        self.redis = redis
        self.root = root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.api_ports: list[int] = []
        self.render_port = free_port()

    def env(self, name: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_", "REDIS_", "JOBS_", "WORKER_", "RENDER_", "QDRANT_"))
        }
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis.url,
            DATA_DIR=str(self.root / name),
            UPLOAD_ROOT=str(self.root / "uploads"),
            SECRET_KEY="cluster-test-secret-0123456789abcdefghijklmn",
            ENV="test",
            MIGRATE_ON_START="false",
            JOBS_WORKERS_REQUIRED="true",
            WORKER_HEARTBEAT_INTERVAL="1",
            WORKER_HEARTBEAT_STALE_AFTER="4",
            RENDER_ENDPOINT=f"http://127.0.0.1:{self.render_port}",
            KNOWLEDGE_EMBED_CODE="false",
            # No worker child or job threads in the API processes: like pods, only the two
            # `codeatlas worker` processes run jobs (and heartbeat).
            EMBEDDED_WORKER_MODE="threads",
            EMBEDDED_WORKER_THREADS="0",
            PYTHONUNBUFFERED="1",
        )
        return env

    def spawn(self, name: str, *args: str) -> None:
        log = (self.root / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "codeatlas", *args],
            env=self.env(name),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start(self) -> None:
        self.spawn("render", "render-svc", "--port", str(self.render_port))
        for n in (1, 2):
            self.spawn(f"worker{n}", "worker", "--threads", "1")
        for n in (1, 2):
            port = free_port()
            self.api_ports.append(port)
            self.spawn(f"api{n}", "serve", "--port", str(port))

    def ready(self, port: int) -> tuple[int, list[str]]:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=PROBE["timeoutSeconds"])
        except httpx.TransportError:
            return 0, []
        failed = r.json().get("details", {}).get("failed", []) if r.status_code == 503 else []
        return r.status_code, failed

    def wait_all(self, want: int, naming: str | None, within: float) -> float:
        started = time.monotonic()
        while True:
            states = [self.ready(port) for port in self.api_ports]
            if all(
                code == want and (naming is None or naming in failed) for code, failed in states
            ):
                return time.monotonic() - started
            for name, proc in self.procs.items():
                assert proc.poll() is None or name.startswith("worker"), self.log(name)
            assert time.monotonic() - started < within, (states, self.log("api1"))
            time.sleep(0.25)

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(timeout=30)

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def cluster(migrated_url: str, tmp_path: Path) -> Iterator[Cluster]:
    redis = ThrowawayRedis()
    redis.start()
    nodes = Cluster(migrated_url, redis, tmp_path)
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()
        redis.remove()


@pytest.mark.slow
def test_readiness_follows_workers_and_redis_within_the_charts_probe_period(
    cluster: Cluster,
) -> None:
    cluster.wait_all(200, None, within=240)  # cold start: models, migrations, workers

    cluster.kill("worker1")
    time.sleep(UNREADY_WITHIN)  # long enough for the dead worker's heartbeat to go stale
    assert all(cluster.ready(p)[0] == 200 for p in cluster.api_ports), "one worker is enough"

    cluster.kill("worker2")
    took = cluster.wait_all(503, "workers", within=UNREADY_WITHIN + 5)
    print(f"both workers dead: un-ready after {took:.1f} s (probe allows {UNREADY_WITHIN} s)")

    cluster.redis.stop()
    took = cluster.wait_all(503, "redis", within=UNREADY_WITHIN)
    print(f"Redis down: un-ready after {took:.1f} s (probe allows {UNREADY_WITHIN} s)")
