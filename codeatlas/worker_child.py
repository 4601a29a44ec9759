"""The worker child of `codeatlas serve` (embedded default): jobs + the vector store owner.

Started and supervised by :class:`codeatlas.serving.WorkerChild` as
``python -m codeatlas.worker_child SERVE_PID SOCKET``. It

* opens the embedded vector store (qdrant-edge: one process per data directory) and serves
  it on ``SOCKET`` (:mod:`codeatlas.knowledge.vector_proxy`) for the API processes;
* runs EMBEDDED_WORKER_THREADS Dramatiq worker threads (parse, embed, …) with a heartbeat,
  so the `workers` readiness check of the API sees it;
* runs the socket server on Dramatiq's own event loop, so the store (and its per-collection
  ``asyncio.Lock``) is only ever used from one loop;
* stops on SIGTERM/SIGINT (running jobs get JOBS_SHUTDOWN_TIMEOUT, the rest are
  redelivered), and by itself within a second when its `serve` is gone (SIGKILL).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Coroutine
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")

logger = logging.getLogger("codeatlas.worker_child")


def _watch_parent(parent_pid: int, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        if os.getppid() != parent_pid:
            logger.error("serve (pid %d) is gone: the worker child stops", parent_pid)
            stop.set()


def run(parent_pid: int, sock: Path) -> None:
    from codeatlas.core.logging import configure_logging
    from codeatlas.jobs import runtime as jobs_runtime
    from codeatlas.jobs.broker import close_broker, setup_broker
    from codeatlas.jobs.enqueue import set_dispatcher
    from codeatlas.jobs.worker import RelayThread, start_worker
    from codeatlas.knowledge import runtime as knowledge_runtime
    from codeatlas.knowledge.vector_proxy import start_vector_server
    from codeatlas.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.embedded_worker_nice:
        # Background work yields the CPU to the API process (inherited by nothing else).
        os.nice(settings.embedded_worker_nice)
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        logger.info("worker child pid %d got signal %d, stopping", os.getpid(), signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=_watch_parent, args=(parent_pid, stop), daemon=True).start()

    runtime = jobs_runtime.configure(settings)
    knowledge = knowledge_runtime.configure(settings)
    threads = settings.in_process_worker_threads
    broker = None
    running = None
    relay = None
    own_loop: asyncio.AbstractEventLoop | None = None
    if threads > 0 and settings.redis_url:
        broker = setup_broker(settings, runtime)
        set_dispatcher(None)  # follow-up jobs of actors go through the outbox and this relay
        relay = RelayThread(settings, runtime, broker)
        relay.start()
        running = start_worker(broker, settings, threads, mode="embedded")
        import dramatiq.asyncio

        loop = dramatiq.asyncio.get_event_loop_thread().loop  # type: ignore[union-attr]
    else:  # the store owner only (jobs run elsewhere)
        own_loop = loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="vector-store", daemon=True).start()

    def on_loop(coro: Coroutine[Any, Any, T], timeout: float = 300.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    async def open_store() -> asyncio.AbstractServer:
        await knowledge.ensure_collections(force=True)
        return await start_vector_server(knowledge.store, sock)

    server = on_loop(open_store())
    logger.info("worker child pid %d ready (%d job threads)", os.getpid(), threads)
    try:
        stop.wait()
    finally:
        loop.call_soon_threadsafe(server.close)  # new calls are refused from now on
        if running is not None:
            running.stop()  # finishes running jobs, then stops Dramatiq's loop
        if relay is not None:
            relay.stop()  # after the worker: attempt ends recorded late are written first
        if broker is not None:
            close_broker(broker)
        if own_loop is not None:
            own_loop.call_soon_threadsafe(own_loop.stop)
        try:
            # Flush and close the shards; the store's calls are synchronous underneath, so a
            # fresh loop in this thread is fine now that the jobs' loop has stopped.
            asyncio.run(knowledge.aclose())
        except Exception:  # shutting down: log whatever it was, never mask the exit
            logger.exception("closing the vector store")
        sock.unlink(missing_ok=True)
        logger.info("worker child pid %d stopped", os.getpid())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m codeatlas.worker_child SERVE_PID SOCKET")
    run(int(sys.argv[1]), Path(sys.argv[2]))
