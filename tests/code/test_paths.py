"""1-B: the path validator itself (run with --cov=codeatlas.code.paths: ≥ 90 %)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from codeatlas.code.paths import (
    MAX_DEPTH,
    MAX_PATH_CHARS,
    PathNotAllowed,
    check_inside,
    normalise_upload_path,
    resolve_upload_path,
    sanitise_upload_path,
    validate_upload_path,
)
from codeatlas.models import CodeDocument

GOOD = {
    "main.py": "main.py",
    "src/app/main.py": "src/app/main.py",
    "a..b.py": "a..b.py",
    "..a.py": "..a.py",
    "a../b.py": "a../b.py",
    ".gitignore": ".gitignore",
    "./src/x.py": "src/x.py",
    "src//x.py": "src/x.py",
    "src/./x.py": "src/x.py",
    "100%.txt": "100%.txt",
    "%41.py": "%41.py",
    "src/模块/ünïcödé.py": "src/模块/ünïcödé.py",
    "emoji/👩‍💻.md": "emoji/👩‍💻.md",
    "cafe\u0301.py": "caf\u00e9.py",  # NFD in, NFC stored
    "with space/a b.py": "with space/a b.py",
    "time:12.log": "time:12.log",
    "x" * 255: "x" * 255,
    "/".join(["d"] * (MAX_DEPTH - 1) + ["f.py"]): "/".join(["d"] * (MAX_DEPTH - 1) + ["f.py"]),
}


@pytest.mark.parametrize("raw", list(GOOD))
def test_good_paths_are_normalised(raw: str) -> None:
    assert normalise_upload_path(raw) == GOOD[raw]


BAD = {
    "": "empty path",
    "   ": "empty path",
    ".": "empty path",
    "./": "empty path",
    "x" * (MAX_PATH_CHARS + 1): "longer than",
    "a/" + "y" * 256: "segment longer than",
    "é" * 128: "segment longer than",
    "/".join(["d"] * (MAX_DEPTH + 1)): "deeper than",
    "a\x00b": "NUL byte",
    "a\x01b": "control character",
    "a\nb": "control character",
    "a\u2028b": "control character",
    "evil\u202etxt.py": "control character",
    "bad\udcffname": "not valid UTF-8",
    "a\\b": "backslash separator",
    "//host/share": "UNC path",
    "/etc/passwd": "absolute path",
    "src/": "names a directory",
    "../x": "parent-directory segment",
    "a/../../x": "parent-directory segment",
    "...": "dot-only segment",
    "a/. ./b": "dot-only segment",
    "C:x": "drive letter",
    "src/d:/x": "drive letter",
    "%2e%2e/x": "percent-encoded parent-directory segment",
    "%252e%252e/x": "percent-encoded parent-directory segment",
    "a%2fb": "percent-encoded separator",
    "%00": "percent-encoded NUL byte",
    "%2525252525": "percent-encoded more than 4 times",
    "\uff0e\uff0e/x": "Unicode look-alike of",
    "a\uff0fb": "Unicode look-alike of",
}


@pytest.mark.parametrize("raw", list(BAD))
def test_bad_paths_are_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(PathNotAllowed) as info:
        normalise_upload_path(raw)
    assert BAD[raw] in info.value.reason
    assert info.value.error_code == "PATH_NOT_ALLOWED"
    assert info.value.status_code == 400
    assert info.value.details["reason"] == info.value.reason


def test_non_string_is_refused() -> None:
    with pytest.raises(PathNotAllowed, match="not a string"):
        normalise_upload_path(b"a.py")  # type: ignore[arg-type]


def test_long_paths_are_shortened_in_the_error_details() -> None:
    with pytest.raises(PathNotAllowed) as info:
        normalise_upload_path("../" + "x" * 1000)
    assert len(info.value.details["path"]) <= 301


def test_model_classmethod_is_the_validator(tmp_path: Path) -> None:
    assert CodeDocument.validate_file_path("src/a.py") == "src/a.py"
    assert CodeDocument.validate_file_path("src/a.py", tmp_path / "1") == "src/a.py"
    with pytest.raises(PathNotAllowed):
        CodeDocument.validate_file_path("../a.py", tmp_path / "1")


def test_is_relative_to_not_string_prefix(tmp_path: Path) -> None:
    """/srv/uploads-evil starts with the string /srv/uploads but is not inside it."""
    root = tmp_path / "uploads"
    (tmp_path / "uploads-evil").mkdir(parents=True)
    root.mkdir()
    with pytest.raises(PathNotAllowed, match="outside"):
        check_inside("../uploads-evil/x.py", root)
    assert check_inside("x.py", root) == root.resolve() / "x.py"


def test_symlink_inside_the_tree_is_refused_even_pointing_inside(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "real").mkdir(parents=True)
    os.symlink(root / "real", root / "alias")
    with pytest.raises(PathNotAllowed, match="symlink"):
        validate_upload_path("alias/x.py", root)


def test_symlink_escape_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "link")
    with pytest.raises(PathNotAllowed, match="symlink"):
        validate_upload_path("link/evil.py", root)
    with pytest.raises(PathNotAllowed, match="symlink"):
        validate_upload_path("link", root)


def test_project_directory_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "7")
    with pytest.raises(PathNotAllowed, match="project directory is a symlink"):
        validate_upload_path("x.py", tmp_path / "7")


SANITISED = {
    "../../etc/passwd": "etc/passwd",
    "C:\\Windows\\system32\\x.dll": "Windows/system32/x.dll",
    "c:d:x.py": "x.py",
    "//host/share/a.py": "host/share/a.py",
    "%2e%2e%2fsecret.py": "secret.py",
    "a\x00b.py": "a_b.py",
    "\uff0e\uff0e\uff0fetc/x": "etc/x",
    "50%25off.md": "50_off.md",
    "src/": "src",
}


@pytest.mark.parametrize("raw", list(SANITISED))
def test_sanitiser_keeps_what_is_safe(raw: str) -> None:
    assert sanitise_upload_path(raw) == SANITISED[raw]


@pytest.mark.parametrize("raw", ["..", "../..", "...", "", " / ", "C:"])
def test_sanitiser_always_leaves_a_name(raw: str) -> None:
    safe = sanitise_upload_path(raw)
    assert safe.startswith("unnamed-")
    assert normalise_upload_path(safe) == safe


def test_sanitiser_shortens_what_is_too_long() -> None:
    safe = sanitise_upload_path("/".join(["d" * 300] * 100))
    assert normalise_upload_path(safe) == safe
    assert len(safe) <= MAX_PATH_CHARS
    assert all(len(s) <= 255 for s in safe.split("/"))


def test_resolve_enforce_raises_and_warn_sanitises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "p"
    with pytest.raises(PathNotAllowed):
        resolve_upload_path("../x.py", root, "enforce")
    with caplog.at_level(logging.WARNING, logger="codeatlas.code.paths"):
        path, reason = resolve_upload_path("../x.py", root, "warn")
    assert (path, reason) == ("x.py", "parent-directory segment '..'")
    assert "UPLOAD_PATH_VALIDATION=warn" in caplog.text
    assert resolve_upload_path("ok.py", root, "warn") == ("ok.py", None)


def test_warn_mode_still_refuses_a_symlink(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "link")
    with pytest.raises(PathNotAllowed, match="symlink"):
        resolve_upload_path("link/../link/x.py", root, "warn")
