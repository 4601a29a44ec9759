"""Running Dramatiq workers: a `codeatlas worker` process, or threads inside `codeatlas serve`.

We drive ``dramatiq.Worker`` ourselves instead of the ``dramatiq`` command line because the
broker is built from our settings (not from an import side effect), logs must keep our
format with the request id, each process writes a heartbeat, and the embedded default runs
the very same worker as threads of the API process.
"""

from __future__ import annotations

import asyncio
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
from codeatlas.jobs.enqueue import set_dispatcher
from codeatlas.jobs.heartbeat import WorkerHeartbeat
from codeatlas.jobs.outbox import BrokerSender, Relay
from codeatlas.jobs.runtime import JobRuntime, configure
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


class RelayThread(threading.Thread):
    """A worker process's outbox relay, on an event loop of its own (the worker's threads are
    synchronous, and Dramatiq's loop is the actors')."""

    def __init__(self, settings: Settings, runtime: JobRuntime, broker: RedisBroker) -> None:
        super().__init__(name="codeatlas-relay", daemon=True)
        self.settings = settings
        self.runtime = runtime
        self.broker = broker
        self._loop: asyncio.AbstractEventLoop | None = None
        # Not `_stop`: threading.Thread.join() calls its own `self._stop()`.
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from codeatlas.db.session import Database

        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        db = Database(self.settings)
        sender = BrokerSender(self.broker, self.settings.jobs_relay_send_timeout)
        relay = Relay(self.settings, db, self.runtime, sender, name=f"worker-{os.getpid()}")
        relay.start()
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await relay.stop()
            await self.runtime.aclose()
            await db.dispose()

    def start(self) -> None:
        super().start()
        self._ready.wait(timeout=30)

    def stop(self) -> None:
        if self._loop is not None and self._stop_event is not None:
            self._loop.call_soon_threadsafe(self._stop_event.set)
        self.join(timeout=20)


def start_worker(
    broker: RedisBroker,
    settings: Settings,
    threads: int,
    *,
    mode: str,
    queues: list[str] | None = None,
) -> RunningWorker:
    """Start ``threads`` Dramatiq worker threads in this process, consuming ``broker``
    (only ``queues`` when given)."""
    broker.emit_after("process_boot")  # starts the time-limit watchdog; Dramatiq's CLI does this
    worker = dramatiq.Worker(broker, queues=set(queues) if queues else None, worker_threads=threads)
    worker.start()
    heartbeat = WorkerHeartbeat(settings, threads=threads, mode=mode)
    heartbeat.start()
    logger.info(
        "%s worker started: pid %d, %d threads, queues %s, actors %s",
        mode,
        os.getpid(),
        threads,
        ", ".join(sorted(queues or broker.get_declared_queues())),
        ", ".join(sorted(broker.get_declared_actors())),
    )
    return RunningWorker(worker, heartbeat, settings.jobs_shutdown_timeout)


def run_worker_process(settings: Settings, threads: int, queues: list[str] | None = None) -> None:
    """The body of one `codeatlas worker` process: run until SIGTERM or SIGINT."""
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        logger.info("worker pid %d got signal %d, stopping", os.getpid(), signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runtime = configure(settings)
    broker = setup_broker(settings, runtime)
    set_dispatcher(None)  # follow-up jobs of actors go through the outbox and this relay
    relay = RelayThread(settings, runtime, broker)
    relay.start()
    running = start_worker(broker, settings, threads, mode="worker", queues=queues)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        running.stop()
        relay.stop()  # after the worker: attempt ends recorded late are written first
        close_broker(broker)
        logger.info("worker pid %d stopped", os.getpid())


def supervise(processes: int, threads: int, queues: list[str] | None = None) -> int:
    """Run ``processes`` worker processes; restart any that dies, stop all on a signal.

    Hand-written because Dramatiq's own supervisor shuts every process down when one dies;
    here a crashed process is replaced (its in-flight jobs are redelivered by the broker).
    """
    command = [sys.executable, "-m", "codeatlas", "worker", "--processes", "1"]
    command += ["--threads", str(threads)]
    if queues:
        command += ["--queues", ",".join(queues)]
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
