"""Search-ready pieces of a code document, cut by :func:`codeatlas.code.parsing.parse_source`.

A document has exactly one set of chunks: ``code.process_file`` replaces them in one
transaction, and ``(document_id, index)`` is unique, so a second set can never be stored.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from codeatlas.db.base import Base, TimestampMixin


class CodeChunk(TimestampMixin, Base):
    __tablename__ = "code_chunks"
    __table_args__ = (
        Index("ix_code_chunks_document_id_index", "document_id", "index", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("code_documents.id", ondelete="CASCADE"))
    # Denormalised from the document so a project's chunks are one index scan.
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    index: Mapped[int] = mapped_column(Integer)
    start_line: Mapped[int] = mapped_column(Integer)
    end_line: Mapped[int] = mapped_column(Integer)
    # Dotted qualified name of the symbol the chunk belongs to (None for header/window).
    symbol: Mapped[str | None] = mapped_column(String(512), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    # sha256 of `text`: lets the embedding step skip chunks whose text did not change.
    content_hash: Mapped[str] = mapped_column(String(64))
