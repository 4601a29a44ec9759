"""Knowledge-base entries and the pieces of them that are embedded (checklist 4-B).

An entry is global (``project_id`` NULL: every user may read it) or belongs to one project
(its members may read it). Its content is cut into :class:`KbEntryChunk` rows in the same
transaction that writes the entry; the ``knowledge.embed_entry`` job turns those rows into
vectors, so search results are always read back from these rows, never from the vector
store's payload alone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from codeatlas.db.base import Base, TimestampMixin


class KbEntry(TimestampMixin, Base):
    __tablename__ = "kb_entries"
    __table_args__ = (
        # The entry list of one scope, newest first.
        Index("ix_kb_entries_project_id_updated_at", "project_id", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # NULL: a global entry.
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True
    )
    title: Mapped[str] = mapped_column(String(300))
    content: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Kept when the author's account is deleted.
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # Bumped by every write; the embedding job only stores vectors of the version it read.
    version: Mapped[int] = mapped_column(Integer, default=1)


class KbEntryChunk(Base):
    __tablename__ = "kb_entry_chunks"
    __table_args__ = (Index("ix_kb_entry_chunks_entry_id_index", "entry_id", "index", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("kb_entries.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    start_line: Mapped[int] = mapped_column(Integer)
    end_line: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    # sha256 of exactly what is embedded (title + piece): part of the point id, so a changed
    # piece gets a new point and an unchanged one is never embedded twice.
    content_hash: Mapped[str] = mapped_column(String(64))
