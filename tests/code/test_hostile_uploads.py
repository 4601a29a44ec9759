"""1-B through HTTP: every hostile path is refused with 400 PATH_NOT_ALLOWED and nothing is
written anywhere (disk scanned before and after); good paths are stored where they should be;
warn mode stores under a sanitised path and says so."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from codeatlas.db.session import Database
from codeatlas.models import CodeDocument
from tests.code.conftest import Team
from tests.code.helpers import (
    error_code,
    make_tar_gz,
    make_zip,
    project_files,
    tar_file,
    tar_special,
    upload,
    zip_with_mode,
)

MARKER = f"ca-escape-{uuid.uuid4().hex[:8]}"
M = f"{MARKER}.py"
PAYLOAD = b"print('pwned')\n"


@dataclass(frozen=True)
class Hostile:
    files: tuple[str | bytes, ...] = ()
    archives: tuple[tuple[str, bytes], ...] = ()
    # Symlinks planted in the project directory first: name -> target ("@outside" is a
    # directory outside UPLOAD_ROOT, "@outside_file" a file there, "@inside" a real directory
    # of the project, anything else is used as is).
    links: tuple[tuple[str, str], ...] = ()


def _file(*names: str | bytes) -> Hostile:
    return Hostile(files=names)


def _zip(*names: str) -> Hostile:
    return Hostile(archives=(("bad.zip", make_zip([(n, PAYLOAD) for n in names])),))


def _tar(*names: str) -> Hostile:
    return Hostile(archives=(("bad.tar.gz", make_tar_gz([tar_file(n, PAYLOAD) for n in names])),))


def _tar_special(name: str, kind: bytes, linkname: str = "", *then: str) -> Hostile:
    members = [tar_special(name, kind, linkname)] + [tar_file(n, PAYLOAD) for n in then]
    return Hostile(archives=(("bad.tar.gz", make_tar_gz(members)),))


CASES: dict[str, Hostile] = {
    # -- traversal -----------------------------------------------------------------------------
    "dotdot": _file(f"../{M}"),
    "dotdot-2": _file(f"../../{M}"),
    "dotdot-deep": _file("../" * 12 + f"tmp/{M}"),
    "dotdot-after-dir": _file(f"a/../../{M}"),
    "dotdot-after-2-dirs": _file(f"a/b/../../../{M}"),
    "dotdot-src": _file(f"src/../../{M}"),
    "dot-dotdot": _file(f"./../{M}"),
    "dot-in-middle": _file(f"a/./../../{M}"),
    "dotdot-alone": _file(".."),
    "dotdot-slash": _file("../"),
    "dotdot-dotdot": _file("../.."),
    "dir-dotdot": _file("foo/.."),
    "dir-dotdot-dotdot": _file("foo/../.."),
    "zigzag": _file(f"a/../b/../../{M}"),
    "three-dots": _file(f".../{M}"),
    "four-dots": _file(f"..../{M}"),
    "three-dots-inner": _file(f"a/.../{M}"),
    "dot-space-dot": _file(f". ./{M}"),
    "dotdot-space": _file(f".. /{M}"),
    "dotdot-trailing-dot": _file(f"a/.. ./{M}"),
    # -- absolute ------------------------------------------------------------------------------
    "abs-tmp": _file(f"/tmp/{M}"),
    "abs-etc": _file(f"/etc/{M}"),
    "abs-root-file": _file(f"/{M}"),
    "abs-root": _file("/"),
    "abs-dot": _file(f"/./tmp/{M}"),
    "abs-dotdot": _file(f"/../tmp/{M}"),
    # -- UNC -------------------------------------------------------------------------------
    "unc-share": _file(f"//server/share/{M}"),
    "unc-device": _file(f"//?/C:/{M}"),
    "unc-pipe": _file(f"//./pipe/{M}"),
    "unc-backslash": _file(f"\\\\server\\share\\{M}"),
    "unc-backslash-device": _file(f"\\\\?\\C:\\{M}"),
    "unc-backslash-pipe": _file(f"\\\\.\\pipe\\{M}"),
    "triple-slash": _file(f"///tmp/{M}"),
    # -- backslashes -------------------------------------------------------------------------
    "bs-dotdot": _file(f"..\\{M}"),
    "bs-dotdot-2": _file(f"..\\..\\{M}"),
    "bs-dir-dotdot": _file(f"a\\..\\..\\{M}"),
    "bs-absolute": _file(f"\\tmp\\{M}"),
    "bs-plain": _file("src\\main.py"),
    "bs-nested": _file("a\\b\\c.py"),
    "bs-mixed": _file(f"..\\/{M}"),
    "bs-root": _file(f"\\{M}"),
    # -- drive letters -----------------------------------------------------------------------
    "drive-slash": _file(f"C:/{M}"),
    "drive-backslash": _file(f"C:\\{M}"),
    "drive-relative": _file(f"c:{M}"),
    "drive-alone": _file("D:"),
    "drive-lower": _file(f"z:/tmp/{M}"),
    "drive-inner": _file(f"src/C:/{M}"),
    "drive-dotdot": _file(f"C:..\\{M}"),
    "drive-windows": _file(f"C:/Windows/System32/{M}"),
    "drive-segment": _file("a/c:b.py"),
    # -- percent encodings -------------------------------------------------------------------
    "pct-dotdot-slash": _file(f"..%2f{M}"),
    "pct-dotdot-SLASH": _file(f"..%2F{M}"),
    "pct-dots": _file(f"%2e%2e/{M}"),
    "pct-all": _file(f"%2e%2e%2f{M}"),
    "pct-all-upper": _file(f"%2E%2E%2F%2E%2E%2F{M}"),
    "pct-backslash": _file(f"..%5c{M}"),
    "pct-dots-backslash": _file(f"%2e%2e%5c{M}"),
    "pct-double": _file(f"%252e%252e%252f{M}"),
    "pct-triple": _file(f"%25252e%25252e%25252f{M}"),
    "pct-double-slash": _file(f"..%252f{M}"),
    "pct-absolute": _file(f"%2fetc%2f{M}"),
    "pct-absolute-upper": _file(f"%2Ftmp%2F{M}"),
    "pct-separator": _file(f"a%2f{M}"),
    "pct-nul-lead": _file(f"%00{M}"),
    "pct-nul-tail": _file(f"{M}%00.txt"),
    "pct-crlf": _file(f"%0d%0a{M}"),
    "pct-lf": _file(f"%0a{M}"),
    "pct-esc": _file(f"%1b{M}"),
    "pct-del": _file(f"%7f{M}"),
    "pct-drive": _file(f"C%3a/{M}"),
    "pct-drive-backslash": _file(f"C%3A%5c{M}"),
    "pct-overlong-dots": _file(f"%c0%ae%c0%ae/{M}"),
    "pct-overlong-slash": _file(f"..%c0%af{M}"),
    "pct-bidi": _file(f"%e2%80%ae{M}"),
    "pct-fullwidth-dots": _file(f"%ef%bc%8e%ef%bc%8e/{M}"),
    "pct-nibbles": _file(f"%%32%65%%32%65/{M}"),
    "pct-long-chain": _file(f"%2e%2e%2f%2e%2e%2f%2e%2e%2ftmp%2f{M}"),
    "pct-unc": _file(f"%5c%5cserver%5cshare%5c{M}"),
    "pct-unc-slash": _file(f"%2f%2fserver/{M}"),
    "pct-five-times": _file(f"%252525252e{M}"),
    # -- NUL and control characters ----------------------------------------------------------
    "nul-middle": _file("a\x00.py"),
    "nul-alone": _file("\x00"),
    "nul-extension": _file(f"{M}\x00.txt"),
    "nul-after-dotdot": _file(f"../\x00{M}"),
    "ctl-01": _file("a\x01.py"),
    "ctl-1f": _file("a\x1f.py"),
    "ctl-del": _file("a\x7f.py"),
    "ctl-tab": _file("tab\tname.py"),
    "ctl-ansi": _file("esc\x1b[31m.py"),
    "ctl-bell": _file("bell\x07.py"),
    "ctl-backspace": _file("bs\x08.py"),
    "ctl-formfeed": _file("ff\x0c.py"),
    "ctl-vtab": _file("vt\x0b.py"),
    "ctl-c1-nel": _file("\x85nel.py"),
    "bidi-override": _file("evil\u202eyp.exe"),
    "bidi-isolate": _file("\u2066x.py"),
    "bidi-rlm": _file("\u200fx.py"),
    "line-separator": _file("a\u2028b.py"),
    "paragraph-separator": _file("a\u2029b.py"),
    # -- bytes that are not UTF-8 ------------------------------------------------------------
    "utf8-invalid": _file(b"\xff\xfe.py"),
    "utf8-overlong-dots": _file(b"a/\xc0\xae\xc0\xae/" + M.encode()),
    "utf8-surrogate": _file(b"\xed\xa0\x80.py"),
    "utf8-latin1": _file(b"caf\xe9.py"),
    # -- empty and over-long -----------------------------------------------------------------
    "empty": _file(""),
    "blank": _file("   "),
    "dot": _file("."),
    "dot-slash": _file("./"),
    "trailing-slash": _file("src/"),
    "too-long": _file("x" * 1025),
    "too-deep": _file("a/" * 70 + M),
    "segment-too-long": _file("y" * 256 + ".py"),
    "segment-too-long-bytes": _file("é" * 128),
    "segment-too-long-inner": _file("a/" + "z" * 300 + "/b.py"),
    # -- Unicode look-alikes -----------------------------------------------------------------
    "fullwidth-dots": _file(f"\uff0e\uff0e/{M}"),
    "fullwidth-all": _file(f"\uff0e\uff0e\uff0f{M}"),
    "fullwidth-absolute": _file(f"\uff0ftmp\uff0f{M}"),
    "two-dot-leader": _file(f"\u2025/{M}"),
    "fullwidth-traversal": _file(f"a\uff0f..\uff0f..\uff0f{M}"),
    "small-full-stops": _file(f"\ufe52\ufe52/{M}"),
    "fullwidth-drive": _file(f"\uff43:/{M}"),
    "fullwidth-colon": _file(f"C\uff1a/{M}"),
    # -- symlinks planted in the project directory -------------------------------------------
    "symlink-dir-out": Hostile(files=(f"link/{M}",), links=(("link", "@outside"),)),
    "symlink-deeper": Hostile(files=(f"link/sub/{M}",), links=(("link", "@outside"),)),
    "symlink-overwrite": Hostile(files=("link",), links=(("link", "@outside"),)),
    "symlink-file-out": Hostile(files=("existing.py",), links=(("existing.py", "@outside_file"),)),
    "symlink-inside": Hostile(files=(f"alias/{M}",), links=(("alias", "@inside"),)),
    "symlink-relative-up": Hostile(files=(f"up/{M}",), links=(("up", ".."),)),
    "symlink-relative-up-2": Hostile(files=(f"up/1/{M}",), links=(("up", "../.."),)),
    "symlink-absolute-root": Hostile(files=(f"root/tmp/{M}",), links=(("root", "/"),)),
    # -- zip entries -------------------------------------------------------------------------
    "zip-dotdot": _zip(f"../{M}"),
    "zip-dotdot-deep": _zip(f"../../tmp/{M}"),
    "zip-absolute": _zip(f"/tmp/{M}"),
    "zip-drive": _zip(f"C:/{M}"),
    "zip-backslash": _zip(f"..\\{M}"),
    "zip-inner-dotdot": _zip(f"a/../../{M}"),
    "zip-percent": _zip(f"%2e%2e/{M}"),
    "zip-unc": _zip(f"\\\\server\\{M}"),
    "zip-nul": Hostile(
        # zipfile itself cuts names at NUL when writing, so patch the bytes afterwards
        archives=(("n.zip", make_zip([(f"{M}Z.txt", PAYLOAD)]).replace(b"Z.txt", b"\x00.txt")),)
    ),
    "zip-fullwidth": _zip(f"\uff0e\uff0e/{M}"),
    "zip-good-then-bad": _zip("good.py", f"../{M}"),
    "zip-symlink-entry": Hostile(
        archives=(("l.zip", zip_with_mode("link", b"/tmp", stat.S_IFLNK | 0o777)),)
    ),
    "zip-char-device": Hostile(
        archives=(("d.zip", zip_with_mode("dev", b"", stat.S_IFCHR | 0o666)),)
    ),
    "zip-fifo": Hostile(archives=(("f.zip", zip_with_mode("fifo", b"", stat.S_IFIFO | 0o666)),)),
    # -- tar.gz members ----------------------------------------------------------------------
    "tar-dotdot": _tar(f"../{M}"),
    "tar-absolute": _tar(f"/tmp/{M}"),
    "tar-inner-dotdot": _tar(f"a/../../{M}"),
    "tar-backslash": _tar(f"..\\{M}"),
    "tar-drive": _tar(f"C:\\{M}"),
    "tar-dot-dotdot": _tar(f"./../{M}"),
    "tar-long-name": _tar("../" * 40 + M),
    "tar-symlink": _tar_special("link", tarfile.SYMTYPE, "/tmp"),
    "tar-symlink-then-write": _tar_special("link", tarfile.SYMTYPE, "/tmp", f"link/{M}"),
    "tar-hardlink": _tar_special("h", tarfile.LNKTYPE, "/etc/passwd"),
    "tar-char-device": _tar_special("dev", tarfile.CHRTYPE),
    "tar-block-device": _tar_special("blk", tarfile.BLKTYPE),
    "tar-fifo": _tar_special("fifo", tarfile.FIFOTYPE),
}


# Issue 11, finding 5: every class refused on every channel (multipart, zip, tar).
ISSUE_11_NAMES: dict[str, str] = {
    "tilde-home": f"~/.ssh/{M}",
    "tilde-user": f"~root/{M}",
    "tilde-alone": f"~/{M}",
    "dotdot-semicolon": f"..;/{M}",
    "dotdot-semicolon-inner": f"a/..;/{M}",
    "dotdot-semicolon-param": f"a/..;jsessionid=1/{M}",
    "division-slash": f"..\u2215{M}",
    "fraction-slash": f"a\u2044{M}",
    "fullwidth-solidus": f"a\uff0f{M}",
    "big-solidus": f"a\u29f8{M}",
    "small-reverse-solidus": f"a\ufe68{M}",
    "fullwidth-reverse-solidus": f"a\uff3c{M}",
    "set-minus": f"a\u2216{M}",
    "one-dot-leader": f"\u2024\u2024/{M}",
    "fullwidth-dot": f"x\uff0e{M}",
    "two-dot-leader": f"\u2025/{M}",
    "file-url": f"file:///tmp/{M}",
    "file-url-one-slash": f"file:/tmp/{M}",
    "http-url": f"http://example.com/{M}",
    "device-con": "CON",
    "device-nul-ext": "nul.txt",
    "device-aux-py": "aux.py",
    "device-in-dir": f"a/CON/{M}",
    "device-com1": "COM1.log",
    "device-lpt9": "lpt9.py",
    "device-com-superscript": "COM\u00b9.py",
    "device-trailing-space": "CON .py",
}
for _label, _name in ISSUE_11_NAMES.items():
    CASES[f"i11-file-{_label}"] = _file(_name)
    CASES[f"i11-zip-{_label}"] = _zip(_name)
    CASES[f"i11-tar-{_label}"] = _tar(_name)
CASES["i11-tar-nul-in-name"] = _tar(f"{M}\x00.txt")
CASES["i11-tar-nul-in-dir"] = _tar(f"a\x00b/{M}")
CASES["i11-zip-empty-name"] = _zip("")
CASES["i11-zip-empty-name-after-good"] = _zip("good.py", "")


def _plant(team: Team, outside: Path, links: tuple[tuple[str, str], ...]) -> None:
    team.project_dir.mkdir(parents=True, exist_ok=True)
    (team.project_dir / "real").mkdir(exist_ok=True)
    for name, target in links:
        resolved = {
            "@outside": str(outside),
            "@outside_file": str(outside / "target.txt"),
            "@inside": str(team.project_dir / "real"),
        }.get(target, target)
        os.symlink(resolved, team.project_dir / name)


def snapshot(root: Path) -> dict[str, str]:
    """Every file and symlink under root with its content hash (or link target)."""
    state: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                state[rel] = "-> " + os.readlink(full)
            elif os.path.isfile(full):
                state[rel] = hashlib.sha256(Path(full).read_bytes()).hexdigest()
    return state


def marker_files(start: Path) -> list[str]:
    """Files named with this run's marker in the directories an escape would reach."""
    places = {start, *start.parents, Path("/tmp"), Path("/etc"), Path("/")}
    return sorted(str(p / n) for p in places if p.is_dir() for n in os.listdir(p) if MARKER in n)


async def _document_count(db: Database) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(CodeDocument)) or 0)


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_hostile_path_is_refused_and_nothing_is_written(
    case: Hostile, client: httpx.AsyncClient, team: Team, db: Database, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.txt").write_text("original")
    _plant(team, outside, case.links)
    before = snapshot(tmp_path)

    r = await upload(
        client,
        team.project_id,
        team.headers(team.editor),
        files=[(name, PAYLOAD) for name in case.files],
        archives=case.archives,
    )

    assert r.status_code == 400, r.text
    assert error_code(r) == "PATH_NOT_ALLOWED", r.text
    assert r.json()["details"]["reason"]
    assert snapshot(tmp_path) == before
    assert marker_files(tmp_path) == []
    assert await _document_count(db) == 0


def test_at_least_100_hostile_cases() -> None:
    assert len(CASES) >= 100


@pytest.mark.slow
def test_no_file_named_with_the_marker_anywhere_on_disk() -> None:
    """Run after the cases above: one scan of the whole root file system."""
    proc = subprocess.run(
        ["find", "/", "-xdev", "-name", f"*{MARKER}*", "-print"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.stdout.strip() == ""


GOOD = [
    "main.py",
    "src/app/models/user.py",
    "a..b.py",
    "..hidden-ish.py",
    ".github/workflows/ci.yml",
    "src/模块/ünïcödé.py",
    "docs/émoji 👩‍💻 notes.md",
    "deep/" * 20 + "leaf.go",
    "100%.txt",
    "weird name (1).txt",
]


async def test_good_paths_are_stored_where_they_say(client: httpx.AsyncClient, team: Team) -> None:
    files = [(p, f"content of {p}\n".encode()) for p in GOOD]
    r = await upload(client, team.project_id, team.headers(team.editor), files=files)
    assert r.status_code == 201, r.text
    assert [f["path"] for f in r.json()["files"]] == GOOD
    assert all(f["original_path"] is None and f["path_warning"] is None for f in r.json()["files"])
    for path, content in files:
        assert (team.project_dir / path).read_bytes() == content
    assert project_files(team.upload_root, team.project_id) == sorted(GOOD)


async def test_good_archive_entries_are_stored(client: httpx.AsyncClient, team: Team) -> None:
    archives = [
        ("src.zip", make_zip([("pkg/a..b.py", b"a"), ("pkg/ü.py", b"u"), ("pkg/sub/", b"")])),
        ("more.tar.gz", make_tar_gz([tar_file("./lib/x.rs", b"x"), tar_file("lib/y.rs", b"y")])),
    ]
    r = await upload(client, team.project_id, team.headers(team.editor), archives=archives)
    assert r.status_code == 201, r.text
    assert {f["path"]: f["archive"] for f in r.json()["files"]} == {
        "pkg/a..b.py": "src.zip",
        "pkg/ü.py": "src.zip",
        "lib/x.rs": "more.tar.gz",
        "lib/y.rs": "more.tar.gz",
    }
    assert (team.project_dir / "lib/x.rs").read_bytes() == b"x"


async def test_warn_mode_stores_under_a_sanitised_path_and_says_so(
    app_factory: object, team: Team, tmp_path: Path
) -> None:
    app = app_factory(upload_path_validation="warn")  # type: ignore[operator]
    before_outside = marker_files(tmp_path)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await upload(
                client,
                team.project_id,
                team.headers(team.editor),
                files=[(f"../../{M}", PAYLOAD), ("C:\\src\\win.py", b"w"), ("ok.py", b"ok")],
            )
    assert r.status_code == 201, r.text
    body = r.json()
    stored = {f["original_path"] or f["path"]: f for f in body["files"]}
    assert stored[f"../../{M}"]["path"] == M
    assert stored[f"../../{M}"]["path_warning"] == "parent-directory segment '..'"
    assert stored["C:\\src\\win.py"]["path"] == "src/win.py"
    assert stored["ok.py"]["path_warning"] is None
    assert len(body["warnings"]) == 2 and M in body["warnings"][0]
    assert project_files(team.upload_root, team.project_id) == sorted([M, "ok.py", "src/win.py"])
    assert marker_files(tmp_path) == before_outside


async def test_warn_mode_still_refuses_a_symlink_escape(
    app_factory: object, team: Team, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    _plant(team, outside, (("link", "@outside"),))
    app = app_factory(upload_path_validation="warn")  # type: ignore[operator]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await upload(
                client, team.project_id, team.headers(team.editor), files=[(f"link/{M}", PAYLOAD)]
            )
    assert r.status_code == 400
    assert error_code(r) == "PATH_NOT_ALLOWED"
    assert os.listdir(outside) == []
