"""Password hashing with Argon2id (pwdlib), and the dummy hash that hides unknown users."""

from __future__ import annotations

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

MIN_PASSWORD_LENGTH = 8
# Checked before hashing, so a 1 MB password costs nothing (Argon2 would hash it all).
MAX_PASSWORD_LENGTH = 256

_hasher = PasswordHash((Argon2Hasher(),))

# Verifying a login for an unknown e-mail against this takes as long as a real check,
# so response time does not reveal which e-mails have accounts.
DUMMY_HASH = _hasher.hash("codeatlas-dummy-password-for-timing")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> tuple[bool, str | None]:
    """(valid, new_hash): new_hash is set when the stored hash's parameters are outdated."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False, None
    return _hasher.verify_and_update(password, password_hash)
