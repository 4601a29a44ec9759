"""One embedded `codeatlas serve` per data directory, enforced by ``DATA_DIR/serve.lock``.

The running `serve` holds an exclusive ``flock`` on the file for its whole life and writes
its pid into it. The kernel drops the lock when the process dies, however it dies (SIGKILL
included), so a free lock proves that no `serve` is using the directory: only then may the
embedded Valkey, the worker child or the vector store of an earlier run be touched.

A second `serve` on the same directory fails at once with :class:`InstanceLocked` (naming
the pid and the directory) before it starts, stops or opens anything.

The descriptor is not inherited by child processes (Python's default), so the lock is not
held on by an orphaned child after `serve` was killed; the children notice their parent
is gone and stop by themselves.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = "serve.lock"


class InstanceLocked(RuntimeError):
    """Another `codeatlas serve` holds the data directory."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        self.directory = directory
        self.pid = pid
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"another `codeatlas serve` ({who}) is already running on data directory "
            f"{directory}; stop it first, or give this one its own DATA_DIR"
        )


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        raw = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(raw.split()[0]) if raw else None
    return None


@contextlib.contextmanager
def hold_data_dir(data_dir: Path) -> Iterator[Path]:
    """Hold the data directory's lock for the duration of the block (non-blocking)."""
    directory = data_dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InstanceLocked(directory, _read_pid(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            # Empty the pid before letting go: a reader never sees a stale pid as the holder.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_held(data_dir: Path) -> bool:
    """True while a `serve` holds ``data_dir`` (probed without taking the lock for long)."""
    path = data_dir.resolve() / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
