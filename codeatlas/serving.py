"""What `codeatlas serve` runs around uvicorn on the embedded default.

``run_serve`` holds the data directory's lock (one embedded instance per directory), starts
the embedded Valkey when REDIS_URL is unset, and — when the embedded vector store is used
(QDRANT_URL unset) — a supervised **worker child process** (:mod:`codeatlas.worker_child`)
that owns the vector store and runs the Dramatiq worker threads. The API processes reach the
store through the child's Unix socket (:mod:`codeatlas.knowledge.vector_proxy`), so any
number of them (``--workers N``) can search, and HNSW builds and embedding never hold the
API's GIL. Why a child rather than threads: measured in ``docs/ARCHITECTURE.md``.

The child is restarted if it dies (its in-flight jobs are redelivered by the broker) and
stopped when `serve` stops; it stops by itself when `serve` is SIGKILLed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from codeatlas.settings import Settings, get_settings

logger = logging.getLogger(__name__)

#: Seconds the API waits at start-up for the worker child's vector store socket.
CHILD_START_TIMEOUT = 120.0


class ServeRefused(RuntimeError):
    """`serve` cannot run with these options; the message says what to change."""


def uses_embedded_state(settings: Settings) -> bool:
    """True when DATA_DIR holds state only one `serve` may use (SQLite, Valkey, vectors)."""
    return (
        not settings.redis_url
        or not settings.qdrant_url
        or settings.resolved_database_url.startswith("sqlite")
    )


@contextlib.contextmanager
def clean_exit_on_sigterm() -> Iterator[None]:
    """Turn the SIGTERM uvicorn re-raises after its graceful shutdown into ``SystemExit``.

    uvicorn restores the previous handler and re-raises the signal once it has shut down;
    with the default handler the process would die right there, skipping the clean-up of
    the worker child and the embedded Valkey (their watchdogs would then stop them, but
    without a graceful job shutdown). A second SIGTERM during clean-up kills as usual.
    """

    def on_sigterm(signum: int, _: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_serve_options(settings: Settings, workers: int) -> None:
    """Refuse, before anything is touched, options the embedded vector store cannot serve."""
    if workers > 1 and not settings.qdrant_url and settings.embedded_worker_mode == "threads":
        raise ServeRefused(
            f"--workers {workers} with EMBEDDED_WORKER_MODE=threads: only one process can open "
            "the embedded vector store. Use EMBEDDED_WORKER_MODE=process (the default: the "
            "worker child owns the store and every API process reaches it) or set QDRANT_URL "
            "to a Qdrant server."
        )


def socket_path(settings: Settings) -> Path:
    """Where the worker child serves the vector store (AF_UNIX paths are at most 107 bytes)."""
    path = (settings.data_dir / "run" / "vectors.sock").resolve()
    if len(os.fsencode(path)) > 100:
        import hashlib
        import tempfile

        digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"codeatlas-{digest}.sock"
    return path


def socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


class WorkerChild:
    """Starts, watches and restarts the worker child process; stops it on :meth:`stop`."""

    def __init__(self, settings: Settings, threads: int, sock: Path) -> None:
        self.settings = settings
        self.threads = threads
        self.socket = sock
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-child", daemon=True)

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["EMBEDDED_WORKER_THREADS"] = str(self.threads)
        env.pop("VECTOR_STORE_SOCKET", None)  # the child owns the store, it does not proxy
        command = [sys.executable, "-m", "codeatlas.worker_child"]
        command += [str(os.getpid()), str(self.socket)]
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
        logger.info("worker child started: pid %d (%d job threads)", proc.pid, self.threads)
        return proc

    def start(self) -> None:
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        self.proc = self._spawn()
        deadline = time.monotonic() + CHILD_START_TIMEOUT
        while not socket_answers(self.socket):
            code = self.proc.poll()
            if code is not None:
                raise ServeRefused(f"the worker child exited with {code} while starting")
            if time.monotonic() > deadline:
                self.stop()
                raise ServeRefused("the worker child did not open the vector store in time")
            time.sleep(0.1)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            proc = self.proc
            if proc is None or proc.poll() is None:
                continue
            if self._stopping.is_set():
                return
            logger.error(
                "worker child pid %d exited with %s; starting another", proc.pid, proc.returncode
            )
            time.sleep(1.0)  # a child that dies at start-up must not spin
            if not self._stopping.is_set():
                self.restarts += 1
                self.proc = self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=self.settings.jobs_shutdown_timeout + 15)
        except subprocess.TimeoutExpired:
            logger.error("worker child pid %d did not stop; killing it", proc.pid)
            proc.kill()
            proc.wait(timeout=10)
        logger.info("worker child stopped")


@contextlib.contextmanager
def worker_child_for_serve(settings: Settings, workers: int) -> Iterator[WorkerChild | None]:
    """The worker child (embedded vector store) or None (QDRANT_URL set, or threads mode)."""
    if settings.qdrant_url:
        yield None
        return
    if settings.embedded_worker_mode == "threads":
        yield None
        return
    threads = settings.in_process_worker_threads
    sock = socket_path(settings)
    child = WorkerChild(settings, threads, sock)
    try:
        child.start()
    except BaseException:  # SIGTERM (SystemExit) or a failed start: never leave it running
        child.stop()
        raise
    saved = {k: os.environ.get(k) for k in ("VECTOR_STORE_SOCKET", "EMBEDDED_WORKER_THREADS")}
    # Inherited by uvicorn's processes: they proxy the store and run no job threads.
    os.environ["VECTOR_STORE_SOCKET"] = str(sock)
    os.environ["EMBEDDED_WORKER_THREADS"] = "0"
    get_settings.cache_clear()
    try:
        yield child
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
        child.stop()
