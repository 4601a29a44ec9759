"""Archive uploads: bombs and over-limit archives are refused with their codes, no files left."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.code.conftest import Team
from tests.code.helpers import error_code, files_under, make_tar_gz, make_zip, tar_file, upload

KiB, MiB = 1024, 1024 * 1024


@pytest.fixture
async def limited(app_factory: object) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = app_factory(  # type: ignore[operator]
        upload_max_file_bytes=2 * MiB,
        upload_max_archive_bytes=4 * MiB,
        upload_max_files=50,
        upload_archive_max_total_bytes=8 * MiB,
        upload_archive_max_ratio=50,
        upload_archive_ratio_min_bytes=256 * KiB,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


def zeros_zip(n: int, size: int) -> bytes:
    return make_zip([(f"z/{i}.txt", b"\0" * size) for i in range(n)])


def overlapping_zip_bomb(entries: int, size: int) -> bytes:
    """Fifield's non-recursive bomb: many central-directory entries that all point at the
    same compressed kernel, each declaring the full uncompressed size."""
    kernel = make_zip([("k", b"A" * size)])
    with zipfile.ZipFile(io.BytesIO(kernel)) as zf:
        info = zf.infolist()[0]
    buf = io.BytesIO(kernel)
    with zipfile.ZipFile(buf, "a") as zf:
        for i in range(entries):
            clone = zipfile.ZipInfo(f"k{i}")
            for attr in ("compress_type", "CRC", "compress_size", "file_size", "header_offset"):
                setattr(clone, attr, getattr(info, attr))
            zf.filelist.append(clone)
            zf.NameToInfo[clone.filename] = clone
        zf._didModify = True
    return buf.getvalue()


def gzip_tar_single(size: int) -> bytes:
    return make_tar_gz([tar_file("huge.txt", b"\0" * size)])


def tar_longname_bomb(size: int) -> bytes:
    """A GNU long-name header whose 'name' is `size` bytes: tarfile would read it whole."""
    raw = io.BytesIO()
    info = tarfile.TarInfo("././@LongLink")
    info.type = tarfile.GNUTYPE_LONGNAME
    info.size = size
    raw.write(info.tobuf(format=tarfile.GNU_FORMAT))
    raw.write(b"a" * size + b"\0" * (-size % 512))
    raw.write(b"\0" * 1024)
    return gzip.compress(raw.getvalue(), 9)


CASES = {
    "entry-over-file-limit": (
        lambda: make_zip([("big.bin", b"\0" * (3 * MiB))]),
        413,
        "FILE_TOO_LARGE",
    ),
    "tar-entry-over-file-limit": (lambda: gzip_tar_single(3 * MiB), 413, "FILE_TOO_LARGE"),
    "too-many-entries": (
        lambda: make_zip([(f"f{i}.py", b"x") for i in range(51)]),
        400,
        "TOO_MANY_FILES",
    ),
    "tar-too-many-entries": (
        lambda: make_tar_gz([tar_file(f"f{i}.py", b"x") for i in range(51)]),
        400,
        "TOO_MANY_FILES",
    ),
    "total-over-limit": (
        lambda: make_zip(
            [(f"r{i}.bin", bytes(range(256)) * 7000) for i in range(5)],
            compression=zipfile.ZIP_STORED,
        ),
        413,
        "ARCHIVE_TOO_LARGE",
    ),
    "ratio-zeros": (lambda: zeros_zip(4, 1 * MiB), 400, "ARCHIVE_RATIO_EXCEEDED"),
    "tar-ratio-zeros": (
        lambda: make_tar_gz([tar_file(f"z{i}", b"\0" * MiB) for i in range(3)]),
        400,
        "ARCHIVE_RATIO_EXCEEDED",
    ),
    "overlapping-bomb": (lambda: overlapping_zip_bomb(2000, MiB), 400, "ARCHIVE_RATIO_EXCEEDED"),
    "archive-itself-too-large": (
        lambda: b"PK\x03\x04" + b"\xff" * (5 * MiB),
        413,
        "ARCHIVE_TOO_LARGE",
    ),
    "overlapping-bomb-few": (lambda: overlapping_zip_bomb(20, MiB), 400, "ARCHIVE_RATIO_EXCEEDED"),
    "tar-longname-bomb": (lambda: tar_longname_bomb(20 * MiB), 400, "ARCHIVE_INVALID"),
    "corrupt-zip": (lambda: make_zip([("a.py", b"x" * 1000)])[:-30], 400, "ARCHIVE_INVALID"),
    "corrupt-gzip": (lambda: b"\x1f\x8b" + b"not gzip at all" * 10, 400, "ARCHIVE_INVALID"),
    "not-an-archive": (lambda: b"just text", 400, "ARCHIVE_UNSUPPORTED"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
async def test_archive_limits_are_refused_and_leave_no_files(
    case: str, limited: httpx.AsyncClient, team: Team
) -> None:
    build, status, code = CASES[case]
    archive = build()
    r = await upload(
        limited,
        team.project_id,
        team.headers(team.editor),
        files=[("innocent.py", b"ok")],
        archives=[("payload.zip", archive)],
    )
    assert (r.status_code, error_code(r)) == (status, code), r.text
    assert files_under(team.upload_root) == []


async def test_an_archive_within_limits_is_unpacked(limited: httpx.AsyncClient, team: Team) -> None:
    source = make_zip(
        [(f"src/m{i}.py", f"def f{i}():\n    return {i}\n".encode() * 50) for i in range(30)]
    )
    r = await upload(
        limited, team.project_id, team.headers(team.editor), archives=[("src.zip", source)]
    )
    assert r.status_code == 201, r.text
    assert r.json()["created"] == 30
    assert len(files_under(team.project_dir)) == 30


async def test_a_nested_archive_is_stored_not_opened(
    limited: httpx.AsyncClient, team: Team
) -> None:
    inner = make_zip([("../evil.py", b"x")])
    r = await upload(
        limited,
        team.project_id,
        team.headers(team.editor),
        archives=[("o.zip", make_zip([("vendor/inner.zip", inner)]))],
    )
    assert r.status_code == 201, r.text
    f = r.json()["files"][0]
    assert (f["path"], f["parseable"]) == ("vendor/inner.zip", False)
