"""Every ORM model, imported in one place so Alembic sees the whole schema."""

from codeatlas.db.base import Base
from codeatlas.models.auth import RefreshToken
from codeatlas.models.user import User

__all__ = ["Base", "RefreshToken", "User"]
