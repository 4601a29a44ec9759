"""Helpers of the code tests: raw multipart bodies, archives built in memory, projects."""

from __future__ import annotations

import io
import os
import tarfile
import time
import uuid
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from codeatlas.db.session import Database, atomic
from codeatlas.models import Project, ProjectMembership, ProjectRole, User

Part = tuple[str, str | bytes, bytes]  # (field, filename exactly as sent, content)


def multipart(parts: Iterable[Part], boundary: str | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body written byte by byte, so filenames arrive exactly as given
    (httpx would percent-encode control characters and quotes)."""
    boundary = boundary or "codeatlas-" + uuid.uuid4().hex
    out = io.BytesIO()
    for field, filename, content in parts:
        raw = filename.encode("utf-8", "surrogateescape") if isinstance(filename, str) else filename
        raw = raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        out.write(f"--{boundary}\r\n".encode())
        out.write(b'Content-Disposition: form-data; name="' + field.encode() + b'"; filename="')
        out.write(raw + b'"\r\nContent-Type: application/octet-stream\r\n\r\n')
        out.write(content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


async def upload(
    client: httpx.AsyncClient,
    project_id: int,
    headers: dict[str, str],
    files: Iterable[tuple[str | bytes, bytes]] = (),
    archives: Iterable[tuple[str, bytes]] = (),
) -> httpx.Response:
    parts: list[Part] = [("files", name, data) for name, data in files]
    parts += [("archives", name, data) for name, data in archives]
    body, content_type = multipart(parts)
    return await client.post(
        f"/api/v1/projects/{project_id}/files",
        content=body,
        headers={**headers, "Content-Type": content_type},
    )


def make_zip(
    entries: Iterable[tuple[str, bytes]], *, compression: int = zipfile.ZIP_DEFLATED
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = compression
            zf.writestr(info, data)
    return buf.getvalue()


def zip_with_mode(name: str, data: bytes, mode: int) -> bytes:
    """A zip with one entry whose Unix mode says symlink/device/...: what `zip -y` writes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
        info.create_system = 3
        info.external_attr = mode << 16
        zf.writestr(info, data)
    return buf.getvalue()


def make_tar_gz(members: Iterable[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.GNU_FORMAT) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue()


def tar_file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mtime = int(time.time())
    return info, data


def tar_special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


async def make_user(db: Database, email: str | None = None) -> User:
    """A user without an Argon2 hash (these tests never log in by password)."""
    async with db.session() as s, atomic(s):
        user = User(
            email=email or f"u-{uuid.uuid4().hex[:10]}@example.com",
            password_hash="!",
            full_name="Code Tester",
            is_active=True,
        )
        s.add(user)
        await s.flush()
    return user


async def make_project(db: Database, members: dict[User, ProjectRole], name: str = "demo") -> int:
    async with db.session() as s, atomic(s):
        project = Project(name=name, description="")
        s.add(project)
        await s.flush()
        for user, role in members.items():
            s.add(ProjectMembership(project_id=project.id, user_id=user.id, role=role.value))
        await s.flush()
        return project.id


def files_under(root: Path) -> list[str]:
    """Every non-directory entry under root (symlinks included), relative, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(found)


def project_files(upload_root: Path, project_id: int) -> list[str]:
    return files_under(upload_root / str(project_id))


def error_code(response: httpx.Response) -> Any:
    return response.json().get("error_code")
