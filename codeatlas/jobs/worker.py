"""Running Dramatiq workers: a `codeatlas worker` process, or threads inside `codeatlas serve`.

We drive ``dramatiq.Worker`` ourselves instead of the ``dramatiq`` command line because the
broker is built from our settings (not from an import side effect), logs must keep our
format with the request id, each process writes a heartbeat, and the embedded default runs
the very same worker as threads of the API process.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from codeatlas.jobs.broker import close_broker, setup_broker
from codeatlas.jobs.enqueue import BrokerDispatcher, set_dispatcher
from codeatlas.jobs.heartbeat import WorkerHeartbeat
from codeatlas.jobs.runtime import configure
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class RunningWorker:
    worker: dramatiq.Worker
    heartbeat: WorkerHeartbeat
    timeout: float

    def stop(self) -> None:
        """Finish running jobs (up to JOBS_SHUTDOWN_TIMEOUT); the rest are redelivered."""
        self.heartbeat.stop()
        self.worker.stop(timeout=int(self.timeout * 1000))


def start_worker(
    broker: RedisBroker, settings: Settings, threads: int, *, mode: str
) -> RunningWorker:
    """Start ``threads`` Dramatiq worker threads in this process, consuming ``broker``."""
    broker.emit_after("process_boot")  # starts the time-limit watchdog; Dramatiq's CLI does this
    worker = dramatiq.Worker(broker, worker_threads=threads)
    worker.start()
    heartbeat = WorkerHeartbeat(settings, threads=threads, mode=mode)
    heartbeat.start()
    logger.info(
        "%s worker started: pid %d, %d threads, actors %s",
        mode,
        os.getpid(),
        threads,
        ", ".join(sorted(broker.get_declared_actors())),
    )
    return RunningWorker(worker, heartbeat, settings.jobs_shutdown_timeout)


def run_worker_process(settings: Settings, threads: int) -> None:
    """The body of one `codeatlas worker` process: run until SIGTERM or SIGINT."""
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        logger.info("worker pid %d got signal %d, stopping", os.getpid(), signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runtime = configure(settings)
    broker = setup_broker(settings, runtime)
    set_dispatcher(BrokerDispatcher(broker))  # actors may enqueue follow-up jobs
    running = start_worker(broker, settings, threads, mode="worker")
    try:
        while not stop.wait(1.0):
            pass
    finally:
        running.stop()
        close_broker(broker)
        logger.info("worker pid %d stopped", os.getpid())


def supervise(processes: int, threads: int) -> int:
    """Run ``processes`` worker processes; restart any that dies, stop all on a signal.

    Hand-written because Dramatiq's own supervisor shuts every process down when one dies;
    here a crashed process is replaced (its in-flight jobs are redelivered by the broker).
    """
    command = [sys.executable, "-m", "codeatlas", "worker", "--processes", "1"]
    command += ["--threads", str(threads)]
    stopping = threading.Event()
    children: list[subprocess.Popen[bytes]] = []

    def on_signal(signum: int, _: FrameType | None) -> None:
        stopping.set()
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    children.extend(subprocess.Popen(command) for _ in range(processes))
    logger.info("supervising %d worker processes: %s", processes, [c.pid for c in children])
    while not stopping.is_set():
        for i, child in enumerate(children):
            code = child.poll()
            if code is not None and not stopping.is_set():
                logger.error("worker pid %d exited with %s; starting another", child.pid, code)
                time.sleep(1.0)  # a process that dies at start-up must not spin
                children[i] = subprocess.Popen(command)
        stopping.wait(0.5)
    for child in children:
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0
