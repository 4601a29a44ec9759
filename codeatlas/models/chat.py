"""Chats and their messages (the assistant's conversations).

A chat belongs to one user and optionally to one project (its code and entries are the
answer's context). An assistant message is written as ``pending`` when the question is
accepted, becomes ``streaming`` while tokens arrive (its content saved periodically), and
ends ``complete``, ``stopped`` (partial answer kept) or ``error`` (with ``error_code``).
``user_id`` is repeated on messages so the daily token budget is one indexed sum.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from codeatlas.db.base import Base, TimestampMixin

MESSAGE_STATUSES = ("pending", "streaming", "complete", "stopped", "error")
ACTIVE_STATUSES = ("pending", "streaming")


class Chat(TimestampMixin, Base):
    __tablename__ = "chats"
    __table_args__ = (Index("ix_chats_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True, index=True
    )
    title: Mapped[str] = mapped_column(String(200))


class ChatMessage(TimestampMixin, Base):
    __tablename__ = "chat_messages"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'assistant')", name="role"),
        CheckConstraint(
            "status IN ('pending', 'streaming', 'complete', 'stopped', 'error')", name="status"
        ),
        # History pages of one chat, newest first.
        Index("ix_chat_messages_chat_id_id", "chat_id", "id"),
        # The daily token budget: one user's messages since midnight.
        Index("ix_chat_messages_user_id_created_at", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="complete")
    citations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # True when the server reported no usage and the counts are estimates (chars / 4).
    usage_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
