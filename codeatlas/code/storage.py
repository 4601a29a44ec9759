"""Uploaded files on disk: ``UPLOAD_ROOT/<project_id>/<file_path>``, written so that a crash
never leaves a half-written file under a real name and the database and the disk agree.

Every change goes through a :class:`FileTransaction`, tied to the database transaction of
the request (:func:`bind_to_session`):

* incoming bytes are staged in ``UPLOAD_ROOT/.txn/<id>/staging/`` while the body streams;
* :meth:`FileTransaction.apply` first writes a journal of what it is about to do (fsync),
  then for each file writes a temporary file in the destination directory, fsyncs it and
  ``os.replace``\\ s it over the final name (an existing file is hard-linked into the
  transaction directory first, so it can be put back); deletions move the file into the
  transaction directory instead of unlinking it;
* when the database commits, the transaction directory (backups, staging, journal) is
  deleted; when it rolls back, every change is undone;
* a process that dies in between leaves its transaction directory behind, unlocked:
  :meth:`UploadStorage.recover` (run at start-up) asks the database which changes
  committed, keeps those, undoes the others and deletes the directory. Each live
  transaction holds an ``flock`` on its directory, so another worker's start-up never
  touches it.

All paths are opened relative to directory file descriptors with ``O_NOFOLLOW``, so even a
symlink planted after validation cannot redirect a write or a read outside the tree.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import itertools
import json
import logging
import os
import shutil
import stat
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from codeatlas.code.paths import PathNotAllowed
from codeatlas.db.session import defer_blocking
from codeatlas.errors import Conflict

logger = logging.getLogger(__name__)

TXN_DIR = ".txn"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_MODE = 0o640
_DIR_MODE = 0o750
_COPY_CHUNK = 1 << 20


class PathConflict(Conflict):
    """409: the path collides with the existing tree (a file where a directory must be)."""

    error_code = "PATH_CONFLICT"


def _opened_dir(parent_fd: int | None, name: str, *, create: bool, rel: str) -> int:
    """Open one directory component without following a symlink; create it if asked."""
    for _ in range(2):
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                raise
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, _DIR_MODE, dir_fd=parent_fd)
        except OSError as exc:
            # O_NOFOLLOW | O_DIRECTORY on a symlink fails with ELOOP or, on Linux, ENOTDIR.
            if exc.errno == errno.ELOOP or (
                exc.errno == errno.ENOTDIR
                and stat.S_ISLNK(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode)
            ):
                raise PathNotAllowed("crosses a symlink", rel) from None
            if exc.errno == errno.ENOTDIR:
                raise PathConflict(
                    f"A parent of {rel!r} is a file", details={"path": rel}
                ) from None
            raise
    return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)


def _sha256_fd(fd: int) -> str:
    digest = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, _COPY_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _sha256_at(dir_fd: int, name: str) -> str | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        return _sha256_fd(fd) if stat.S_ISREG(os.fstat(fd).st_mode) else None
    finally:
        os.close(fd)


def _exists_at(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


@dataclass
class _Op:
    kind: Literal["put", "remove", "remove_project"]
    project_id: int
    path: str = ""
    sha256: str = ""
    source: Path | None = None
    backup: str = ""
    tmp: str = ""
    # progress, for an in-process undo
    backed_up: bool = False
    tmp_created: bool = False
    replaced: bool = False
    moved: bool = False
    created_dirs: list[str] = field(default_factory=list)

    def journal(self) -> dict[str, Any]:
        return {
            "op": self.kind,
            "project": self.project_id,
            "path": self.path,
            "sha256": self.sha256,
            "backup": self.backup,
            "tmp": self.tmp,
        }


class UploadStorage:
    """The upload tree of one process (``settings.UPLOAD_ROOT``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.txn_root = self.root / TXN_DIR

    def ensure(self) -> None:
        self.txn_root.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)

    def project_dir(self, project_id: int) -> Path:
        return self.root / str(int(project_id))

    def begin(self) -> FileTransaction:
        return FileTransaction(self)

    # -- descriptors -------------------------------------------------------------------------

    def _root_fd(self) -> int:
        return os.open(self.root, _DIR_FLAGS)

    def _dir_fd(
        self, project_id: int, parts: list[str], *, create: bool, created: list[str] | None = None
    ) -> int:
        """A descriptor of ``<project>/<parts...>``, walked one ``O_NOFOLLOW`` step at a time."""
        rel = "/".join(parts)
        fd = self._root_fd()
        try:
            names = [str(int(project_id)), *parts]
            for depth, name in enumerate(names):
                existed = create and created is not None and _exists_at(fd, name)
                child = _opened_dir(fd, name, create=create, rel=rel or name)
                if create and created is not None and not existed:
                    created.append("/".join(names[1 : depth + 1]))
                os.close(fd)
                fd = child
            return fd
        except BaseException:
            os.close(fd)
            raise

    @contextlib.contextmanager
    def _parent(self, project_id: int, rel: str, *, create: bool = False) -> Iterator[int]:
        fd = self._dir_fd(project_id, rel.split("/")[:-1], create=create)
        try:
            yield fd
        finally:
            os.close(fd)

    # -- reads and checks --------------------------------------------------------------------

    def open_file(self, project_id: int, rel: str) -> int:
        """A read descriptor of a stored file; FileNotFoundError when it is not there."""
        try:
            with self._parent(project_id, rel) as dfd:
                fd = os.open(
                    rel.split("/")[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd
                )
        except (PathConflict, PathNotAllowed, NotADirectoryError) as exc:
            raise FileNotFoundError(rel) from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise FileNotFoundError(rel) from exc
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise FileNotFoundError(rel)
        return fd

    def check_placeable(self, project_id: int, rel: str) -> None:
        """Raise unless a file can be written at ``rel`` (no symlink, no file/dir clash)."""
        parts = rel.split("/")
        try:
            fd = self._root_fd()
        except FileNotFoundError:
            return
        try:
            for name in [str(int(project_id)), *parts[:-1]]:
                try:
                    child = _opened_dir(fd, name, create=False, rel=rel)
                except FileNotFoundError:
                    return  # the rest is created fresh
                os.close(fd)
                fd = child
            try:
                st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if stat.S_ISLNK(st.st_mode):
                raise PathNotAllowed("crosses a symlink", rel)
            if not stat.S_ISREG(st.st_mode):
                raise PathConflict(f"{rel!r} is a directory", details={"path": rel})
        finally:
            os.close(fd)

    # -- crash recovery ----------------------------------------------------------------------

    async def recover(
        self,
        stored_hash: Callable[[int, str], Awaitable[str | None]],
        project_exists: Callable[[int], Awaitable[bool]],
    ) -> int:
        """Finish or undo the file transactions of dead processes; returns how many.

        ``stored_hash(project, path)`` is the committed row's content hash (None: no row);
        ``project_exists(project)`` says whether the project row is committed.
        """
        if not self.txn_root.is_dir():
            return 0
        recovered = 0
        for txn_dir in sorted(self.txn_root.iterdir()):
            lock = _try_lock(txn_dir)
            if lock is None:
                continue  # a live transaction of another worker
            try:
                await self._recover_one(txn_dir, stored_hash, project_exists)
                shutil.rmtree(txn_dir, ignore_errors=True)
                recovered += 1
            finally:
                os.close(lock)
        return recovered

    async def _recover_one(
        self,
        txn_dir: Path,
        stored_hash: Callable[[int, str], Awaitable[str | None]],
        project_exists: Callable[[int], Awaitable[bool]],
    ) -> None:
        for entry in reversed(_read_journal(txn_dir / "journal.jsonl")):
            pid, rel, backup = int(entry["project"]), entry["path"], entry["backup"]
            backup_path = txn_dir / backup if backup else None
            if entry["op"] == "remove_project":
                restore = backup_path is not None and backup_path.exists()
                if restore and not self.project_dir(pid).exists() and await project_exists(pid):
                    os.rename(txn_dir / backup, self.project_dir(pid))
                continue
            committed_hash = await stored_hash(pid, rel)
            try:
                self._recover_file(entry, committed_hash, backup_path)
            except (OSError, PathNotAllowed, PathConflict) as exc:
                logger.warning("upload recovery: could not reconcile %s/%s: %s", pid, rel, exc)

    def _recover_file(
        self, entry: dict[str, Any], committed_hash: str | None, backup_path: Path | None
    ) -> None:
        pid, rel, name = int(entry["project"]), entry["path"], entry["path"].split("/")[-1]
        has_backup = backup_path is not None and backup_path.exists()
        if entry["op"] == "remove":
            if committed_hash is not None and has_backup:
                assert backup_path is not None
                with self._parent(pid, rel, create=True) as dfd:
                    if not _exists_at(dfd, name):
                        os.rename(backup_path, name, dst_dir_fd=dfd)
            return
        try:
            parent = self._dir_fd(pid, rel.split("/")[:-1], create=False)
        except FileNotFoundError:
            return  # nothing of this put reached the tree
        try:
            if entry["tmp"]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry["tmp"], dir_fd=parent)
            if committed_hash == entry["sha256"]:
                return  # committed: the new file stays
            current = _sha256_at(parent, name)
            ours = current == entry["sha256"]
            if has_backup and (current is None or ours):
                assert backup_path is not None
                os.rename(backup_path, name, dst_dir_fd=parent)
            elif not has_backup and ours:
                os.unlink(name, dir_fd=parent)
        finally:
            os.close(parent)
        self.prune_empty_dirs(pid, rel)

    def prune_empty_dirs(self, project_id: int, rel: str) -> None:
        """Remove the now-empty directories above ``rel`` (never the project directory)."""
        parts = rel.split("/")[:-1]
        while parts:
            try:
                with self._parent(project_id, "/".join(parts)) as dfd:
                    os.rmdir(parts[-1], dir_fd=dfd)
            except (OSError, PathNotAllowed, PathConflict):
                return
            parts.pop()


def _try_lock(txn_dir: Path) -> int | None:
    try:
        fd = os.open(txn_dir / "lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _read_journal(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text("utf-8").splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a torn last line: its operation never started
    return entries


class FileTransaction:
    """The file side of one database transaction; see the module docstring."""

    def __init__(self, storage: UploadStorage) -> None:
        self.storage = storage
        self.id = uuid.uuid4().hex
        storage.ensure()
        self.dir = storage.txn_root / self.id
        self.dir.mkdir(mode=_DIR_MODE)
        self._lock: int | None = os.open(
            self.dir / "lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600
        )
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.staging = self.dir / "staging"
        self.staging.mkdir(mode=_DIR_MODE)
        self.state: Literal["open", "committed", "rolled_back"] = "open"
        self._ops: list[_Op] = []
        self._applied = 0
        self._names = itertools.count()
        self._defer: Callable[[Callable[[], object]], bool] | None = None

    def staging_path(self) -> Path:
        return self.staging / f"part-{next(self._names)}"

    # -- planning ----------------------------------------------------------------------------

    def put(self, project_id: int, rel: str, source: Path, sha256: str) -> None:
        n = next(self._names)
        self._ops.append(
            _Op("put", project_id, rel, sha256, source, f"backup-{n}", f".ca-{self.id}-{n}.tmp")
        )

    def remove(self, project_id: int, rel: str) -> None:
        self._ops.append(_Op("remove", project_id, rel, backup=f"backup-{next(self._names)}"))

    def remove_project(self, project_id: int) -> None:
        self._ops.append(_Op("remove_project", project_id, backup=f"tree-{next(self._names)}"))

    # -- doing -------------------------------------------------------------------------------

    def apply(self) -> None:
        """Journal, then perform every planned change (blocking: run it in a thread)."""
        pending = self._ops[self._applied :]
        if not pending:
            return
        with open(self.dir / "journal.jsonl", "a", encoding="utf-8") as journal:
            for op in pending:
                journal.write(json.dumps(op.journal(), ensure_ascii=False) + "\n")
            journal.flush()
            os.fsync(journal.fileno())
        synced: dict[tuple[int, str], int] = {}
        try:
            for op in pending:
                if op.kind == "put":
                    self._do_put(op, synced)
                elif op.kind == "remove":
                    self._do_remove(op)
                else:
                    self._do_remove_project(op)
                self._applied += 1
            for fd in synced.values():
                os.fsync(fd)
        finally:
            for fd in synced.values():
                os.close(fd)

    def _do_put(self, op: _Op, synced: dict[tuple[int, str], int]) -> None:
        assert op.source is not None
        parts = op.path.split("/")
        key = (op.project_id, "/".join(parts[:-1]))
        if key not in synced:
            synced[key] = self.storage._dir_fd(
                op.project_id, parts[:-1], create=True, created=op.created_dirs
            )
        dfd, name = synced[key], parts[-1]
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None:
            if stat.S_ISLNK(st.st_mode):
                raise PathNotAllowed("crosses a symlink", op.path)
            if not stat.S_ISREG(st.st_mode):
                raise PathConflict(f"{op.path!r} is a directory", details={"path": op.path})
            txn_fd = os.open(self.dir, _DIR_FLAGS)
            try:
                os.link(name, op.backup, src_dir_fd=dfd, dst_dir_fd=txn_fd, follow_symlinks=False)
            finally:
                os.close(txn_fd)
            op.backed_up = True
        out = os.open(
            op.tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            _FILE_MODE,
            dir_fd=dfd,
        )
        op.tmp_created = True
        with open(out, "wb") as dst, open(op.source, "rb") as src:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(op.tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        op.replaced = True

    def _do_remove(self, op: _Op) -> None:
        with self.storage._parent(op.project_id, op.path) as dfd:
            txn_fd = os.open(self.dir, _DIR_FLAGS)
            try:
                os.rename(op.path.split("/")[-1], op.backup, src_dir_fd=dfd, dst_dir_fd=txn_fd)
                op.moved = True
            except FileNotFoundError:
                pass  # already gone: deleting the row is still right
            finally:
                os.close(txn_fd)

    def _do_remove_project(self, op: _Op) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.storage.project_dir(op.project_id), self.dir / op.backup)
            op.moved = True

    # -- ending ------------------------------------------------------------------------------

    def commit(self) -> None:
        """The database committed: keep the changes, drop backups, staging and journal."""
        if self.state != "open":
            return
        self.state = "committed"
        for op in self._ops[: self._applied]:
            if op.kind == "remove" and op.moved:
                self.storage.prune_empty_dirs(op.project_id, op.path)
        self._close()

    def rollback(self) -> None:
        """The database rolled back (or never committed): undo every change made."""
        if self.state != "open":
            return
        self.state = "rolled_back"
        for op in reversed(self._ops):
            try:
                self._undo(op)
            except (OSError, PathNotAllowed, PathConflict):
                logger.exception("could not undo %s of %s/%s", op.kind, op.project_id, op.path)
        self._close()

    def _undo(self, op: _Op) -> None:
        if op.kind == "remove_project":
            if op.moved:
                os.rename(self.dir / op.backup, self.storage.project_dir(op.project_id))
            return
        if op.kind == "remove":
            if op.moved:
                with self.storage._parent(op.project_id, op.path, create=True) as dfd:
                    os.rename(self.dir / op.backup, op.path.split("/")[-1], dst_dir_fd=dfd)
            return
        if not (op.tmp_created or op.backed_up or op.created_dirs):
            return
        name = op.path.split("/")[-1]
        with self.storage._parent(op.project_id, op.path) as dfd:
            if op.tmp_created and not op.replaced:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(op.tmp, dir_fd=dfd)
            if op.replaced:
                if op.backed_up:
                    os.rename(self.dir / op.backup, name, dst_dir_fd=dfd)
                else:
                    os.unlink(name, dir_fd=dfd)
        if op.created_dirs:
            self.storage.prune_empty_dirs(op.project_id, op.path)

    def _close(self) -> None:
        # Deleting staged bytes and backups can take long (a whole project tree); inside a
        # request it runs in a thread after the transaction ends (bind_to_session).
        if self._defer is None or not self._defer(self._close_now):
            self._close_now()

    def _close_now(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def bind_to_session(session: AsyncSession, tx: FileTransaction) -> None:
    """Commit ``tx`` when the session's current transaction commits, undo it otherwise.

    This is the "after commit" hook: it runs inside ``COMMIT`` handling, after the database
    said yes, so the files are kept exactly when the rows are.
    """
    sync_session = session.sync_session
    tx._defer = functools.partial(defer_blocking, sync_session)
    root = sync_session.get_transaction()
    if root is None:
        raise RuntimeError("file transactions need an open database transaction")

    def after_commit(_: Session) -> None:
        tx.commit()

    def after_end(_: Session, transaction: SessionTransaction) -> None:
        # Listeners stay attached (removing one while SQLAlchemy iterates them is unsafe);
        # both calls are no-ops once the transaction has ended.
        if transaction is root:
            tx.rollback()  # a no-op after a commit

    event.listen(sync_session, "after_commit", after_commit)
    event.listen(sync_session, "after_transaction_end", after_end)
