"""`codeatlas backup` / `codeatlas restore` for the embedded default's data directory.

What is copied is the truth, consistently, while `codeatlas serve` keeps running:

* the SQLite database, through SQLite's online backup API (a transactionally consistent copy
  even while other connections write);
* the uploaded files the copied rows point at (files are only ever replaced atomically, so a
  copy of each is whole); a file deleted between the two steps is reported, never invented;
* the instance's secret key file, so tokens stay valid.

The vector store is *derived* data (embeddings of those rows and files). Copying the
in-process engine's segments while its owner writes them cannot be made consistent from
outside that process, so restore rebuilds it with the configured model (`codeatlas reindex`
in-process): the restored instance answers searches exactly from the restored rows. With
PostgreSQL or a Qdrant server, use their own tools (pg_dump, Qdrant snapshots):
docs/OPERATIONS.md says how.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from codeatlas.settings import Settings

FORMAT = 1
SECRET_FILES = ("secret_key",)


class BackupError(Exception):
    """The backup or restore cannot be done as asked; the message says why."""


@dataclass
class BackupReport:
    path: Path
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    missing_files: list[str] = field(default_factory=list)


def sqlite_path(settings: Settings) -> Path:
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise BackupError(
            "backup/restore cover the embedded default (SQLite); for PostgreSQL use pg_dump "
            "and pg_restore (docs/OPERATIONS.md, 'Backup and restore')"
        )
    return Path(url.database)


def _copy_database(source: Path, target: Path) -> dict[str, int]:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)  # consistent snapshot; concurrent writers are not blocked for long
    finally:
        src.close()
    try:
        tables = [r[0] for r in dst.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: dst.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        dst.close()


def _document_paths(database: Path) -> list[tuple[int, str]]:
    con = sqlite3.connect(database)
    try:
        return [
            (int(p), str(f))
            for p, f in con.execute("SELECT project_id, file_path FROM code_documents ORDER BY id")
        ]
    finally:
        con.close()


def backup(settings: Settings, out: Path) -> BackupReport:
    """Write a .tar.gz of the data directory's truth to ``out`` (refuses to overwrite)."""
    database = sqlite_path(settings)
    if not database.exists():
        raise BackupError(f"no database at {database}")
    if out.exists():
        raise BackupError(f"{out} exists; choose a new file name")
    report = BackupReport(out)
    with tempfile.TemporaryDirectory(prefix="codeatlas-backup-") as tmp:
        stage = Path(tmp)
        report.rows = _copy_database(database, stage / "codeatlas.db")
        uploads = settings.UPLOAD_ROOT
        for project_id, file_path in _document_paths(stage / "codeatlas.db"):
            source = uploads / str(project_id) / file_path
            target = stage / "uploads" / str(project_id) / file_path
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copy2(source, target, follow_symlinks=False)
                report.files += 1
            except FileNotFoundError:
                report.missing_files.append(f"{project_id}/{file_path}")
        for name in SECRET_FILES:
            secret = Path(settings.data_dir) / name
            if secret.exists():
                shutil.copy2(secret, stage / name)
        manifest = {
            "format": FORMAT,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "rows": report.rows,
            "files": report.files,
            "missing_files": report.missing_files,
        }
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2))
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            for item in sorted(stage.iterdir()):
                tar.add(item, arcname=item.name)
        partial.replace(out)  # a backup file is whole or absent
    return report


def restore(settings: Settings, archive: Path) -> dict[str, int]:
    """Unpack ``archive`` into an empty DATA_DIR, then rebuild the vector store."""
    data_dir = Path(settings.data_dir)
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty; restore into a new DATA_DIR")
    database = sqlite_path(settings)
    if not archive.is_file():
        raise BackupError(f"no backup at {archive}")
    with tempfile.TemporaryDirectory(prefix="codeatlas-restore-") as tmp:
        stage = Path(tmp)
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(stage, filter="data")  # refuses absolute paths, .., links out
        manifest = json.loads((stage / "manifest.json").read_text())
        if manifest.get("format") != FORMAT:
            raise BackupError(f"unknown backup format {manifest.get('format')!r}")
        data_dir.mkdir(parents=True, exist_ok=True)
        database.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(stage / "codeatlas.db", database)
        uploads = settings.UPLOAD_ROOT
        if (stage / "uploads").exists():
            uploads.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(stage / "uploads", uploads)
        for name in SECRET_FILES:
            if (stage / name).exists():
                shutil.move(stage / name, data_dir / name)
                (data_dir / name).chmod(0o600)
    rows: dict[str, int] = manifest["rows"]
    return rows
