"""Unpacking uploaded ``.zip`` and ``.tar.gz`` archives into the staging directory, safely.

Nothing is extracted with ``extractall``: each entry's name goes through the caller's path
check (the same one an uploaded filename gets: zip-slip is a ``PATH_NOT_ALLOWED``), and its
bytes are copied into a staged file of our own naming. Refused outright: symlink, hardlink
and device/FIFO entries (``PATH_NOT_ALLOWED``), encrypted or sparse entries, and anything
past the limits, each with its own code, checked on the declared sizes *before* reading and
again on the bytes actually produced:

* ``FILE_TOO_LARGE``: one entry over ``upload_max_file_bytes``;
* ``TOO_MANY_FILES``: more file entries than allowed (directories count against a separate,
  larger bound so a million empty directories cannot stall us either);
* ``ARCHIVE_TOO_LARGE``: the archive itself over ``upload_max_archive_bytes`` (checked while
  it streams in), or entries adding up to more than ``upload_archive_max_total_bytes``
  (for tar.gz also the decompressed stream itself, headers included, so a giant long-name
  header is no way around it);
* ``ARCHIVE_RATIO_EXCEEDED``: uncompressed / compressed above ``upload_archive_max_ratio``
  once the output passes ``upload_archive_ratio_min_bytes``;
* ``ARCHIVE_INVALID`` / ``ARCHIVE_UNSUPPORTED``: corrupt or not zip / gzip-tar.

Nested archives are stored as ordinary (binary) files, never opened.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Self, cast

from codeatlas.code.errors import (
    ArchiveInvalid,
    ArchiveRatioExceeded,
    ArchiveTooLarge,
    FileTooLarge,
    TooManyFiles,
)
from codeatlas.code.multipart import HEAD_BYTES
from codeatlas.code.paths import PathNotAllowed

_CHUNK = 1 << 16
ArchiveKind = Literal["zip", "tar.gz"]


@dataclass(frozen=True)
class ArchiveLimits:
    max_file_bytes: int
    max_files: int
    max_total_bytes: int
    max_ratio: float
    ratio_min_bytes: int


@dataclass
class ArchiveEntry:
    """One regular file of the archive, staged at ``staged``; ``path`` is already checked."""

    name: str  # as written in the archive
    path: str
    warning: str | None
    staged: Path
    size: int
    sha256: str
    head: bytes


def archive_kind(head: bytes) -> ArchiveKind | None:
    """Decided by magic bytes, not by the name the client gave."""
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    return None


class _Budget:
    """Running totals of one archive against its limits."""

    def __init__(self, limits: ArchiveLimits, compressed: int, archive: str) -> None:
        self.limits = limits
        self.compressed = max(compressed, 1)
        self.archive = archive
        self.files = 0
        self.entries = 0
        self.total = 0

    def entry(self) -> None:
        self.entries += 1
        if self.entries > 4 * self.limits.max_files + 1000:
            raise TooManyFiles(
                f"{self.archive!r} has too many entries", details={"archive": self.archive}
            )

    def file(self, name: str, declared: int) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise TooManyFiles(
                f"{self.archive!r} has more than {self.limits.max_files} files",
                details={"archive": self.archive, "limit": self.limits.max_files},
            )
        self.check_size(name, declared)

    def check_size(self, name: str, size: int) -> None:
        if size > self.limits.max_file_bytes:
            raise FileTooLarge(
                f"{name!r} in {self.archive!r} is larger than {self.limits.max_file_bytes} bytes",
                details={
                    "archive": self.archive,
                    "entry": name,
                    "limit": self.limits.max_file_bytes,
                },
            )

    def add(self, amount: int) -> None:
        """Count ``amount`` more uncompressed bytes (declared ahead, or produced)."""
        self.total += amount
        self.check_total(self.total)

    def check_total(self, total: int) -> None:
        if total > self.limits.max_total_bytes:
            raise ArchiveTooLarge(
                f"{self.archive!r} unpacks to more than {self.limits.max_total_bytes} bytes",
                details={"archive": self.archive, "limit": self.limits.max_total_bytes},
            )
        ratio = total / self.compressed
        if total > self.limits.ratio_min_bytes and ratio > self.limits.max_ratio:
            raise ArchiveRatioExceeded(
                f"{self.archive!r} expands more than {self.limits.max_ratio:g} times",
                details={"archive": self.archive, "limit": self.limits.max_ratio},
            )


def _copy(
    src: IO[bytes], dest: Path, name: str, declared: int, budget: _Budget, produced: int
) -> tuple[int, str, bytes]:
    """Copy one entry, re-checking the limits on the bytes really produced."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    with open(dest, "wb") as out:
        while chunk := src.read(_CHUNK):
            size += len(chunk)
            if size > declared:
                raise ArchiveInvalid(f"{name!r} is longer than its header says")
            budget.check_size(name, size)
            budget.check_total(produced + size)
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            digest.update(chunk)
            out.write(chunk)
    if size != declared:
        raise ArchiveInvalid(f"{name!r} is shorter than its header says")
    return size, digest.hexdigest(), head


PathCheck = Callable[[str], tuple[str, str | None]]


def expand_archive(
    archive: Path,
    display_name: str,
    kind: ArchiveKind,
    new_path: Callable[[], Path],
    check_path: PathCheck,
    limits: ArchiveLimits,
) -> list[ArchiveEntry]:
    """Stage every regular file of ``archive``; blocking, so run it in a thread.

    ``check_path(name)`` returns ``(path, warning)`` or raises ``PathNotAllowed``.
    """
    budget = _Budget(limits, archive.stat().st_size, display_name)
    try:
        if kind == "zip":
            return list(_expand_zip(archive, new_path, check_path, budget))
        return list(_expand_tar_gz(archive, new_path, check_path, budget))
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, gzip.BadGzipFile) as exc:
        raise ArchiveInvalid(
            f"{display_name!r} is not a valid {kind} archive: {exc}",
            details={"archive": display_name},
        ) from exc
    except (NotImplementedError, RuntimeError) as exc:  # unsupported method, encryption
        raise ArchiveInvalid(f"{display_name!r}: {exc}", details={"archive": display_name}) from exc


def _refuse(reason: str, name: str, archive: str) -> PathNotAllowed:
    return PathNotAllowed(reason, name, archive=archive)


def _checked(check_path: PathCheck, name: str, archive: str) -> tuple[str, str | None]:
    try:
        return check_path(name)
    except PathNotAllowed as exc:
        raise PathNotAllowed(exc.reason, name, archive=archive) from None


def _expand_zip(
    archive: Path, new_path: Callable[[], Path], check_path: PathCheck, budget: _Budget
) -> Iterator[ArchiveEntry]:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        files = []
        for info in infos:  # every check that needs no decompression, first
            budget.entry()
            # orig_filename: zipfile cuts `filename` at a NUL, hiding it from the validator.
            name = info.orig_filename
            if not name:  # ZipInfo.is_dir() would fail on it (was a 500)
                raise _refuse("empty path", name, budget.archive)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise _refuse("symlink entry", name, budget.archive)
            if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise _refuse("device or special-file entry", name, budget.archive)
            if info.is_dir():
                continue
            if info.flag_bits & 0x1:
                raise ArchiveInvalid(f"{name!r} is encrypted", details={"archive": budget.archive})
            budget.file(name, info.file_size)
            budget.add(info.file_size)
            files.append((info, name, *_checked(check_path, name, budget.archive)))
        produced = 0
        for info, name, path, warning in files:
            dest = new_path()
            with zf.open(info) as src:
                size, sha, head = _copy(src, dest, name, info.file_size, budget, produced)
            produced += size
            yield ArchiveEntry(name, path, warning, dest, size, sha, head)


class _NulInName(Exception):
    pass


class _StrictTarInfo(tarfile.TarInfo):
    """A tar header whose name field has bytes after a NUL is refused: tarfile cuts the name
    at the first NUL, so `x.py\\0.txt` would be stored as `x.py` without the validator ever
    seeing the NUL (the name and ustar prefix fields; pax names keep their NUL and reach the
    validator)."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        fields = [buf[0:100], buf[157:257]]  # name, linkname
        if buf[257:265] == b"ustar\x0000":  # POSIX ustar: the prefix field
            fields.append(buf[345:500])
        for field in fields:
            cut = field.find(b"\0")
            if cut != -1 and field[cut:].strip(b"\0"):
                shown = field.rstrip(b"\0").decode("utf-8", "backslashreplace")
                raise _NulInName(shown.replace("\0", "\\x00"))
        return super().frombuf(buf, encoding, errors)


class _CappedReader:
    """The decompressed tar stream, refusing to go past ``cap`` bytes (read or skipped).

    tarfile reads long-name and pax headers whole into memory and skips member data by
    seeking, which on a gzip stream means decompressing: both are bounded here. Member
    data itself is read by :func:`_copy` in small chunks.
    """

    MAX_READ = 16 << 20  # no tar header is this long; member data comes in 64 KiB reads

    def __init__(self, raw: gzip.GzipFile, budget: _Budget, cap: int) -> None:
        self.raw, self.budget, self.cap = raw, budget, cap

    def tell(self) -> int:
        return self.raw.tell()

    def _guard(self, target: int) -> None:
        if target > self.cap:
            raise ArchiveTooLarge(
                f"{self.budget.archive!r} unpacks to more than {self.cap} bytes",
                details={
                    "archive": self.budget.archive,
                    "limit": self.budget.limits.max_total_bytes,
                },
            )

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > self.MAX_READ:
            raise ArchiveInvalid(
                f"{self.budget.archive!r} has an oversized tar header",
                details={"archive": self.budget.archive},
            )
        self._guard(self.raw.tell() + size)
        return self.raw.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            raise io.UnsupportedOperation("seek from end")
        target = offset if whence == io.SEEK_SET else self.raw.tell() + offset
        self._guard(target)
        return self.raw.seek(target)


def _expand_tar_gz(
    archive: Path, new_path: Callable[[], Path], check_path: PathCheck, budget: _Budget
) -> Iterator[ArchiveEntry]:
    limits = budget.limits
    # Member data is bounded by max_total; headers (512 bytes each, plus long names) get
    # generous room on top, and the end-of-archive padding.
    cap = limits.max_total_bytes + (4 * limits.max_files + 1000) * 2048 + (1 << 20)
    with gzip.open(archive, "rb") as gz:
        reader = cast(IO[bytes], _CappedReader(gz, budget, cap))
        try:
            yield from _tar_members(reader, new_path, check_path, budget)
        except _NulInName as exc:
            raise _refuse("NUL byte", str(exc), budget.archive) from None


def _tar_members(
    reader: IO[bytes], new_path: Callable[[], Path], check_path: PathCheck, budget: _Budget
) -> Iterator[ArchiveEntry]:
    with tarfile.open(fileobj=reader, mode="r:", tarinfo=_StrictTarInfo) as tf:
        produced = 0
        # Iterate member by member: getmembers() would skip (decompress) every
        # member's data before we could look at its declared size.
        while (member := tf.next()) is not None:
            budget.entry()
            name = member.name
            if member.issym() or member.islnk():
                raise _refuse("link entry", name, budget.archive)
            if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
                raise _refuse("device or special-file entry", name, budget.archive)
            if member.isdir():
                continue
            if not member.isreg():
                raise _refuse("unsupported entry type", name, budget.archive)
            if member.issparse():
                raise ArchiveInvalid(
                    f"{name!r} is a sparse file", details={"archive": budget.archive}
                )
            budget.file(name, member.size)
            budget.add(member.size)
            path, warning = _checked(check_path, name, budget.archive)
            src = tf.extractfile(member)
            if src is None:
                raise ArchiveInvalid(f"{name!r} cannot be read")
            dest = new_path()
            with src:
                size, sha, head = _copy(src, dest, name, member.size, budget, produced)
            produced += size
            yield ArchiveEntry(name, path, warning, dest, size, sha, head)
