"""Code documents (one row per file of a project) and the search history.

The file itself lives on disk under ``UPLOAD_ROOT/<project_id>/<file_path>`` (see
:mod:`codeatlas.code.storage`); the row records what was stored there and how far its
processing got.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from codeatlas.db.base import Base, TimestampMixin, utcnow

MAX_FILE_PATH_LENGTH = 1024

# Byte-wise ordering on PostgreSQL whatever the database's locale: keyset pagination and
# the path-prefix filter compare paths with < and >, and a locale collation (en_US ignores
# punctuation) would order `src/a` after `src0`. SQLite compares bytes already.
_PATH_TYPE = String(MAX_FILE_PATH_LENGTH).with_variant(
    String(MAX_FILE_PATH_LENGTH, collation="C"), "postgresql"
)
_NAME_TYPE = String(255).with_variant(String(255, collation="C"), "postgresql")


class DocumentStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    #: Symbols and chunks stored; keyword postings and vectors still to be written.
    PARSED = "parsed"
    #: Found by keyword and semantic search (or nothing more to do for it).
    SEARCHABLE = "searchable"
    FAILED = "failed"


class CodeDocument(TimestampMixin, Base):
    __tablename__ = "code_documents"
    __table_args__ = (
        # 6-A: the (project_id, file_path) composite index; unique, so it also enforces one
        # row per path and serves keyset pagination and the path-prefix filter.
        Index("ix_code_documents_project_id_file_path", "project_id", "file_path", unique=True),
        # Exact and prefix basename matches of the filename search (ranks 0 and 1); on
        # PostgreSQL it covers the columns the search reads, so a rank is an index-only scan
        # (migration 0006).
        Index(
            "ix_code_documents_file_name_search",
            text("lower(file_name)"),
            "project_id",
            postgresql_include=["file_name", "file_path", "id", "language"],
        ),
        CheckConstraint(
            "status IN ('pending', 'processing', 'parsed', 'searchable', 'failed')", name="status"
        ),
        # The per-project indexing progress counts (migration 0010).
        Index("ix_code_documents_project_id_status", "project_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    file_path: Mapped[str] = mapped_column(_PATH_TYPE)
    # The last segment of file_path, stored so the search can rank basename matches
    # through an index instead of computing it per row.
    file_name: Mapped[str] = mapped_column(_NAME_TYPE)
    language: Mapped[str | None] = mapped_column(String(32), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(64))
    # False for binary files: stored and downloadable, never parsed.
    parseable: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default=DocumentStatus.PENDING.value)
    symbols: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    @classmethod
    def validate_file_path(cls, file_path: str, root: Path | None = None) -> str:
        """1-B: the normalised relative path, or :class:`PathNotAllowed` (400).

        ``root`` is the project's directory under ``UPLOAD_ROOT``; when given, the path must
        also resolve inside it without crossing a symlink.
        """
        from codeatlas.code.paths import validate_upload_path

        return validate_upload_path(file_path, root)


class SearchHistory(Base):
    __tablename__ = "search_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    query: Mapped[str] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(32))
    # The project the search was limited to; NULL for "all my projects".
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL"), nullable=True
    )
    result_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


# Deleted from the lower-cased path before it is split into trigrams (see below).
PATH_SEPARATORS = "/_.-"


def squashed_path(path: Any) -> Any:
    """``translate(lower(file_path), '/_.-', '')``, spelled with literals so that a query
    using it matches the index expression below whatever its parameters."""
    return func.translate(func.lower(path), text(f"'{PATH_SEPARATORS}'"), text("''"))


# 6-A, PostgreSQL only (migration 0006; pg_trgm from 0003): the trigram index that
# pre-filters the substring search. pg_trgm splits text into words at every non-alphanumeric
# character, so on the plain path `invoice_23/export` gives only trigrams common to
# thousands of paths; without separators the trigrams span them (`e23`, `3ex`) and are rare.
# The search rechecks the real `lower(file_path) LIKE` on the candidates.
Index(
    "ix_code_documents_file_path_squashed_trgm",
    squashed_path(CodeDocument.file_path).label("file_path_squashed"),
    postgresql_using="gin",
    postgresql_ops={"file_path_squashed": "gin_trgm_ops"},
).ddl_if(dialect="postgresql")

# 6-A: a user's history, newest first, is one index range scan.
Index(
    "ix_search_history_user_id_created_at", SearchHistory.user_id, SearchHistory.created_at.desc()
)
