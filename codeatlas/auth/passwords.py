"""Password hashing with Argon2id (pwdlib), and the dummy hash that hides unknown users.

Argon2 is CPU- and memory-bound (~0.1 s): the async helpers run it in a worker thread
(argon2-cffi releases the GIL), so one login never stalls the event loop for everyone else.
"""

from __future__ import annotations

import asyncio

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

MIN_PASSWORD_LENGTH = 8
# Checked before hashing, so a 1 MB password costs nothing (Argon2 would hash it all).
MAX_PASSWORD_LENGTH = 256

_hasher = PasswordHash((Argon2Hasher(),))

# Verifying a login for an unknown e-mail against this takes as long as a real check,
# so response time does not reveal which e-mails have accounts.
DUMMY_HASH = _hasher.hash("codeatlas-dummy-password-for-timing")


class PasswordTooLong(ValueError):
    """Refused before hashing: longer than MAX_PASSWORD_LENGTH characters."""


def hash_password(password: str) -> str:
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordTooLong(f"password longer than {MAX_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> tuple[bool, str | None]:
    """(valid, new_hash): new_hash is set when the stored hash's parameters are outdated."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False, None
    return _hasher.verify_and_update(password, password_hash)


async def hash_password_async(password: str) -> str:
    if len(password) > MAX_PASSWORD_LENGTH:  # refuse without paying for a thread hop
        raise PasswordTooLong(f"password longer than {MAX_PASSWORD_LENGTH} characters")
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password: str, password_hash: str) -> tuple[bool, str | None]:
    return await asyncio.to_thread(verify_password, password, password_hash)
