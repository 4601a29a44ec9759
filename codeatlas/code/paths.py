"""1-B: the upload path validator, and the sanitiser used by the ``warn`` roll-back.

Every path a client names (a multipart filename, an archive entry) comes through
:func:`validate_upload_path` before anything touches the disk. It returns the normalised
relative POSIX path, or raises :class:`PathNotAllowed` (400 ``PATH_NOT_ALLOWED``) with the
reason in ``details``. It rejects:

* empty names, names over :data:`MAX_PATH_CHARS` characters, segments over 255 bytes,
  more than :data:`MAX_DEPTH` segments, and a trailing ``/`` (a directory, not a file);
* NUL, control characters, Unicode line separators and bidi overrides; lone surrogates
  (bytes that were not UTF-8);
* backslashes, absolute paths, UNC paths (``//host/share``), drive letters (``C:``);
* ``..`` segments and dot-only segments (``...``, which Windows reads as ``..``);
* the same tricks hidden behind percent-encoding (``..%2F``, ``%2e%2e``, ``%252e``: decoded
  repeatedly) or Unicode compatibility forms (fullwidth dots and solidus, U+FF0E and U+FF0F);
* (issue 11) a leading ``~`` segment (``~/.ssh/id_rsa``, ``~root/x``: a shell or client
  expands it to a home directory); ``..;`` and other dot-only segments carrying a ``;``
  path parameter (Tomcat and some proxies strip it); a URL scheme prefix (``file:///etc``);
  Windows device names (``CON``, ``nul.txt``, ``a/COM1/b.py``: opening one on Windows opens
  the device); Unicode look-alikes of ``/``, ``\\`` and ``.`` (U+2215, U+2044, U+FF0F,
  U+2024, U+FF0E, U+29F8, U+FE68, U+FF3C …), whether or not NFKC folds them;
* when the project's directory is given, any path whose resolved location is not inside it
  (``Path.is_relative_to``, never a string prefix: ``/srv/uploads-evil`` is not inside
  ``/srv/uploads``), and any path that crosses an existing symlink, wherever it points.

The checks are hand-written because no library we know covers this list; werkzeug's
``secure_filename`` flattens directories away, which an upload of a source tree needs.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import unquote

from codeatlas.errors import BadRequest

logger = logging.getLogger(__name__)

MAX_PATH_CHARS = 1024
MAX_SEGMENT_BYTES = 255  # the file-name limit of ext4, XFS, APFS and NTFS
MAX_DEPTH = 64
# Enough rounds for any realistic double/triple encoding; a path still changing after
# this many decodes is refused outright.
MAX_DECODE_ROUNDS = 4

_DRIVE = re.compile(r"^[A-Za-z]:")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
# Explicit bidi embedding/override/isolate marks: they make `evil‮yp.exe` display as
# something else. (Zero-width joiners stay allowed: emoji in names use them.)
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_BAD_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})

# Look-alikes of '/', '\\' and '.' that NFKC leaves alone (the ones it folds, like U+FF0F
# and U+FF0E, are caught by comparing the NFKC form): they display as separators or dots.
_LOOKALIKES = frozenset(
    "\u2215\u2044\u29f8\u2571\u29f6\u29c4\u2afd\u1735\u2cc1\u3033"  # slashes
    "\u29f5\u29f9\u2216\u2572\u29c5\u3035"  # backslashes
    "\u2024\u2027\u2219\u22c5\u16eb\u0701\u0702\ua4f8"  # dots
)
_SEPARATORS_AND_DOTS = "/\\."
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:$")
_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"}
    | {f"{p}{n}" for p in ("COM", "LPT") for n in [*"123456789", "\u00b9", "\u00b2", "\u00b3"]}
)

PathMode = Literal["enforce", "warn"]


class PathNotAllowed(BadRequest):
    """400 ``PATH_NOT_ALLOWED``; ``details`` carries the reason and the offending path."""

    error_code = "PATH_NOT_ALLOWED"

    def __init__(self, reason: str, path: str, **extra: object) -> None:
        self.reason = reason
        # Bytes that were not UTF-8 arrive as lone surrogates: show them as \xNN escapes.
        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        shown = shown if len(shown) <= 300 else shown[:300] + "…"
        super().__init__(
            f"Path not allowed: {reason}",
            details={"reason": reason, "path": shown, **extra},
        )


def _check_characters(path: str) -> None:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise PathNotAllowed("not valid UTF-8", path) from None
    for ch in path:
        if ch == "\x00":
            raise PathNotAllowed("NUL byte", path)
        if unicodedata.category(ch) in _BAD_CATEGORIES or ch in _BIDI:
            raise PathNotAllowed("control character", path)


def _check_shape(path: str) -> list[str]:
    """Checks that need no decoding; returns the segments ('.' and empty ones dropped)."""
    if not path.strip():
        raise PathNotAllowed("empty path", path)
    if len(path) > MAX_PATH_CHARS:
        raise PathNotAllowed(f"longer than {MAX_PATH_CHARS} characters", path)
    _check_characters(path)
    if "\\" in path:
        raise PathNotAllowed("backslash separator", path)
    if path.startswith("//"):
        raise PathNotAllowed("UNC path", path)
    if path.startswith("/"):
        raise PathNotAllowed("absolute path", path)
    segments = [s for s in path.split("/") if s not in ("", ".")]
    if not segments:
        raise PathNotAllowed("empty path", path)
    if len(segments) > MAX_DEPTH:
        raise PathNotAllowed(f"deeper than {MAX_DEPTH} directories", path)
    if segments[0].startswith("~"):
        raise PathNotAllowed("home-directory segment '~'", path)
    if _SCHEME.match(segments[0]) and len(segments[0]) > 2:  # `C:` is a drive letter, below
        raise PathNotAllowed("URL scheme prefix", path)
    for segment in segments:
        if segment == "..":
            raise PathNotAllowed("parent-directory segment '..'", path)
        if ";" in segment and not segment.split(";", 1)[0].rstrip(". "):
            raise PathNotAllowed("dot segment with a ';' parameter", path)
        if segment.split(".", 1)[0].rstrip(" ").upper() in _DEVICE_NAMES:
            raise PathNotAllowed("Windows device name", path)
        if not segment.rstrip(". "):
            # Windows drops trailing dots and spaces, so `...` and `.. ` mean `..` there.
            raise PathNotAllowed("dot-only segment", path)
        if _DRIVE.match(segment):
            raise PathNotAllowed("drive letter", path)
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise PathNotAllowed(f"segment longer than {MAX_SEGMENT_BYTES} bytes", path)
    if path.endswith("/"):
        raise PathNotAllowed("names a directory (trailing '/')", path)
    return segments


def _check_lookalikes(path: str) -> None:
    if any(ch in _LOOKALIKES for ch in path):
        raise PathNotAllowed("Unicode look-alike of '/', '\\' or '.'", path)
    folded = unicodedata.normalize("NFKC", path)
    if any(folded.count(ch) != path.count(ch) for ch in _SEPARATORS_AND_DOTS):
        raise PathNotAllowed("Unicode look-alike of '/', '\\' or '.'", path)


def _check_hidden_forms(path: str, segments: list[str]) -> None:
    """Reject traversal or separators that appear only once the path is decoded."""
    _check_lookalikes(path)
    forms = [path]
    for _ in range(MAX_DECODE_ROUNDS):
        if not _PERCENT.search(forms[-1]):
            break
        forms.append(unquote(forms[-1], errors="surrogateescape"))
    else:
        if _PERCENT.search(forms[-1]):
            raise PathNotAllowed("percent-encoded more than 4 times", path)
    variants: list[tuple[str, str]] = [("percent-encoded", form) for form in forms[1:]]
    for depth, form in enumerate(forms):
        folded = unicodedata.normalize("NFKC", form)
        if folded != form:
            label = "percent-encoded Unicode look-alike" if depth else "Unicode look-alike"
            variants.append((label, folded))
    for label, variant in variants:
        try:
            hidden = _check_shape(variant)
        except PathNotAllowed as exc:
            raise PathNotAllowed(f"{label} {exc.reason}", path) from None
        if len(hidden) != len(segments):
            raise PathNotAllowed(f"{label} separator", path)


def normalise_upload_path(path: str) -> str:
    """The lexical checks only: the normalised relative path (NFC), or PathNotAllowed."""
    if not isinstance(path, str):
        raise PathNotAllowed("not a string", repr(path))
    segments = _check_shape(path)
    _check_hidden_forms(path, segments)
    normalised = PurePosixPath(*segments).as_posix()
    # One spelling per name: macOS sends NFD, everyone else NFC.
    return unicodedata.normalize("NFC", normalised)


def check_inside(relative: str, root: Path) -> Path:
    """The absolute target of ``relative`` under ``root``, refusing symlinks and escapes.

    ``root`` is a project's directory under UPLOAD_ROOT. No existing component of the path
    may be a symlink (even one pointing inside: the tree is ours, links in it are foreign),
    and the fully resolved target must be inside the resolved root.
    """
    if root.is_symlink():
        raise PathNotAllowed("the project directory is a symlink", relative)
    base = root.resolve()
    target = base.joinpath(*relative.split("/"))
    current = base
    for part in relative.split("/"):
        current = current / part
        if current.is_symlink():
            raise PathNotAllowed("crosses a symlink", relative)
        if not current.exists():
            break
    if not target.resolve().is_relative_to(base):
        raise PathNotAllowed("resolves outside the upload root", relative)
    return target


def validate_upload_path(path: str, root: Path | None = None) -> str:
    """1-B: normalise ``path`` and check it stays inside ``root`` (when given)."""
    relative = normalise_upload_path(path)
    if root is not None:
        check_inside(relative, root)
    return relative


def sanitise_upload_path(path: str) -> str:
    """A safe relative path made from a rejected one (the ``warn`` roll-back).

    Decodes percent-escapes and compatibility forms, turns backslashes into separators,
    drops control characters, drive letters, ``.``/``..``/dot-only segments, and shortens
    what is too long. Something is always left: ``unnamed-<hash>`` if nothing else.
    """
    text = path if isinstance(path, str) else repr(path)
    text = text.encode("utf-8", "replace").decode("utf-8")
    for _ in range(MAX_DECODE_ROUNDS):
        if not _PERCENT.search(text):
            break
        text = unquote(text, errors="replace")
    text = text.replace("%", "_")
    text = unicodedata.normalize("NFKC", text).replace("\\", "/")
    text = "".join(
        "_" if unicodedata.category(c) in _BAD_CATEGORIES or c in _BIDI else c for c in text
    )
    segments: list[str] = []
    for raw in text.split("/"):
        segment = raw.strip()
        while _DRIVE.match(segment):
            segment = segment[2:].strip()
        if not segment.rstrip(". "):
            continue
        while len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            segment = segment[:-1]
        segments.append(segment)
    segments = segments[-MAX_DEPTH:]
    while segments and len("/".join(segments)) > MAX_PATH_CHARS:
        segments.pop(0)
    if segments:
        try:
            return normalise_upload_path("/".join(segments))
        except PathNotAllowed:
            pass  # nothing salvageable: fall through to a generated name
    digest = hashlib.sha256(path.encode("utf-8", "replace")).hexdigest()[:12]
    return f"unnamed-{digest}"


def resolve_upload_path(path: str, root: Path, mode: PathMode) -> tuple[str, str | None]:
    """The path to store under ``root`` and, in ``warn`` mode, why the original was refused.

    ``enforce`` raises :class:`PathNotAllowed`. ``warn`` logs the reason and returns a
    sanitised path instead, which must itself pass every check: even in warn mode nothing
    is written outside ``root`` (a symlink in the way is still a 400).
    """
    try:
        return validate_upload_path(path, root), None
    except PathNotAllowed as exc:
        if mode != "warn":
            raise
        safe = sanitise_upload_path(path)
        logger.warning(
            "upload path refused (%s), stored as %r instead (UPLOAD_PATH_VALIDATION=warn): %r",
            exc.reason,
            safe,
            path,
        )
        check_inside(safe, root)
        return safe, exc.reason
