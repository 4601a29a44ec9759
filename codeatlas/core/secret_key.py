"""The instance's signing key when ``SECRET_KEY`` is not set: generated once, kept in DATA_DIR.

Every process of one data dir (``codeatlas serve`` workers, the worker child, the CLI) reads
the same file, so tokens signed by one are accepted by the others and survive restarts. The
file is created with mode 0600 and published with ``os.link`` from a fully written temporary
file: of two processes starting at once, exactly one wins and the other reads the winner's
key, and no reader ever sees a half-written key.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

FILE_NAME = "secret_key"
MIN_LENGTH = 32


def key_file(data_dir: Path) -> Path:
    return Path(data_dir) / FILE_NAME


def _read(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # tighten a copy restored with a lax umask instead of serving a world-readable key
        os.chmod(path, 0o600)
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < MIN_LENGTH:
        raise ValueError(f"{path} holds a key shorter than {MIN_LENGTH} characters; remove it")
    return key


def load_or_create(data_dir: Path) -> str:
    """The key stored under `data_dir`, generated (and logged) the first time."""
    path = key_file(data_dir)
    if path.exists():
        return _read(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(48) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if another process published first: read theirs
        except FileExistsError:
            return _read(path)
        _fsync_dir(path.parent)
        logger.warning(
            "SECRET_KEY is not set: generated a random signing key in %s (keep this file "
            "private; set SECRET_KEY to share one key between hosts)",
            path,
        )
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
