"""Small factories for tests: plain functions that write real rows."""

from __future__ import annotations

import uuid

from codeatlas.auth.passwords import hash_password
from codeatlas.auth.tokens import create_access_token
from codeatlas.db.session import Database, atomic
from codeatlas.models import User
from codeatlas.settings import Settings

DEFAULT_PASSWORD = "correct horse battery staple"


async def create_user(
    db: Database,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    *,
    is_active: bool = True,
    is_admin: bool = False,
    full_name: str = "Test User",
) -> User:
    async with db.session() as s, atomic(s):
        user = User(
            email=(email or f"user-{uuid.uuid4().hex[:8]}@example.com").strip().lower(),
            password_hash=hash_password(password),
            full_name=full_name,
            is_active=is_active,
            is_admin=is_admin,
        )
        s.add(user)
        await s.flush()
    return user


def auth_headers(user: User, settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_access_token(user.id, settings)}"}
