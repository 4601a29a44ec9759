"""Refresh tokens: opaque, stored hashed, rotated on every use, revoked by family."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from codeatlas.db.base import Base, utcnow


class RefreshToken(Base):
    """One issued refresh token.

    A login starts a family; each refresh marks the presented token `rotated_at` and issues a
    successor in the same family. Presenting a rotated token again means it was copied, so the
    whole family is revoked (the thief's and the owner's successors alike).
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    # SHA-256 hex of the token: the database never holds a usable token.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
