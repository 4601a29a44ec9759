"""Crash safety of the upload tree: a process killed between placing files and committing
(or between committing and cleaning up) is reconciled at the next start-up."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from codeatlas.code.storage import UploadStorage
from codeatlas.db.session import Database
from codeatlas.models import CodeDocument
from tests.code.conftest import Team
from tests.code.helpers import files_under, project_files, upload

CHILD = textwrap.dedent(
    """
    import asyncio, hashlib, os, signal, sys
    from pathlib import Path
    from sqlalchemy import select
    from codeatlas.code.storage import UploadStorage
    from codeatlas.db.session import Database, atomic
    from codeatlas.models import CodeDocument
    from codeatlas.settings import Settings

    url, data_dir, project_id, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    async def main() -> None:
        settings = Settings(database_url=url, data_dir=data_dir)
        db = Database(settings)
        storage = UploadStorage(settings.UPLOAD_ROOT)
        staging = Path(data_dir) / "src"
        staging.mkdir(exist_ok=True)
        new = {"keep.py": b"new", "fresh/f.py": b"fresh"}
        s = db.sessionmaker()
        await s.begin()
        tx = storage.begin()  # deliberately not bound: this process dies before either end
        doc = await s.scalar(select(CodeDocument).where(CodeDocument.file_path == "keep.py"))
        doc.content_hash = hashlib.sha256(new["keep.py"]).hexdigest()
        doc.version += 1
        s.add(CodeDocument(project_id=project_id, file_path="fresh/f.py", file_name="f.py",
                           size=5, content_hash=hashlib.sha256(new["fresh/f.py"]).hexdigest(),
                           parseable=True, status="pending", version=1))
        await s.flush()
        for path, data in new.items():
            src = tx.staging_path()
            src.write_bytes(data)
            tx.put(project_id, path, src, hashlib.sha256(data).hexdigest())
        await asyncio.to_thread(tx.apply)
        if mode == "commit":
            await s.commit()
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


async def _run_child(team: Team, mode: str) -> None:
    # In a thread: a blocking wait would freeze this test's event loop, where the app's job
    # relay may sit inside a SQLite write transaction the child then waits for (a deadlock
    # the test itself made, seen as "database is locked" in the child).
    proc = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-c",
            CHILD,
            team.settings.resolved_database_url,
            str(team.settings.data_dir),
            str(team.project_id),
            mode,
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


async def _restart(app_factory: object) -> None:
    app = app_factory()  # type: ignore[operator]
    async with app.router.lifespan_context(app):
        pass


async def _rows(db: Database) -> dict[str, tuple[int, str]]:
    async with db.session() as s:
        docs = await s.scalars(select(CodeDocument))
        return {d.file_path: (d.version, d.content_hash) for d in docs}


async def _seed(client: httpx.AsyncClient, team: Team) -> None:
    r = await upload(client, team.project_id, team.headers(team.owner), files=[("keep.py", b"old")])
    assert r.status_code == 201


@pytest.mark.slow
async def test_killed_before_commit_is_undone_at_startup(
    client: httpx.AsyncClient, team: Team, db: Database, app_factory: object
) -> None:
    await _seed(client, team)
    await _run_child(team, "no-commit")
    # the dead process left its placed files and its journal
    assert (team.project_dir / "keep.py").read_bytes() == b"new"
    assert (team.project_dir / "fresh/f.py").exists()
    await _restart(app_factory)
    assert project_files(team.upload_root, team.project_id) == ["keep.py"]
    assert (team.project_dir / "keep.py").read_bytes() == b"old"
    assert not (team.project_dir / "fresh").exists()
    assert files_under(team.upload_root / ".txn") == []
    assert await _rows(db) == {"keep.py": (1, hashlib.sha256(b"old").hexdigest())}


@pytest.mark.slow
async def test_killed_after_commit_keeps_the_new_files(
    client: httpx.AsyncClient, team: Team, db: Database, app_factory: object
) -> None:
    await _seed(client, team)
    await _run_child(team, "commit")
    await _restart(app_factory)
    assert (team.project_dir / "keep.py").read_bytes() == b"new"
    assert (team.project_dir / "fresh/f.py").read_bytes() == b"fresh"
    assert files_under(team.upload_root / ".txn") == []
    rows = await _rows(db)
    assert rows["keep.py"] == (2, hashlib.sha256(b"new").hexdigest())
    for path, (_, digest) in rows.items():
        assert hashlib.sha256((team.project_dir / path).read_bytes()).hexdigest() == digest


async def test_recovery_leaves_live_transactions_alone(tmp_path: Path) -> None:
    storage = UploadStorage(tmp_path)
    live = storage.begin()
    (live.staging_path()).write_bytes(b"in flight")
    dead = tmp_path / ".txn" / "dead"
    (dead / "staging").mkdir(parents=True)
    (dead / "staging" / "part-0").write_bytes(b"half")

    async def no_row(project_id: int, path: str) -> str | None:
        return None

    async def no_project(project_id: int) -> bool:
        return False

    assert await storage.recover(no_row, no_project) == 1
    assert not dead.exists()
    assert live.dir.exists()
    with open(live.dir / "lock") as f, pytest.raises(BlockingIOError):
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    live.rollback()
    assert not live.dir.exists()


def test_writes_never_follow_a_symlink_planted_after_validation(tmp_path: Path) -> None:
    """Defence in depth: even if the validator's check raced with an attacker, the storage
    layer walks directories with O_NOFOLLOW and refuses."""
    from codeatlas.code.paths import PathNotAllowed

    storage = UploadStorage(tmp_path / "root")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "root" / "1").mkdir(parents=True)
    os.symlink(outside, tmp_path / "root" / "1" / "dir")
    tx = storage.begin()
    src = tx.staging_path()
    src.write_bytes(b"x")
    tx.put(1, "dir/evil.py", src, hashlib.sha256(b"x").hexdigest())
    with pytest.raises(PathNotAllowed):
        tx.apply()
    tx.rollback()
    assert os.listdir(outside) == []
    with pytest.raises(FileNotFoundError):
        storage.open_file(1, "dir/anything")
