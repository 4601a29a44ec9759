"""User accounts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from codeatlas.db.base import Base, TimestampMixin


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Stored normalised (trimmed, lower-cased), so the unique index is case-insensitive.
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(200), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set once, by the first successful verification: a later (replayed) link must not
    # re-activate an account an administrator has deactivated.
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Carried in every access token as `ver`; bumping it (password change) invalidates the
    # access tokens already issued, not only the refresh tokens.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
