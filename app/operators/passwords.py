"""Operators' passwords: Argon2id (RFC 9106's low-memory profile, argon2-cffi's default), in
the encoded form that carries its own parameters and salt (``$argon2id$v=19$m=65536,t=3,p=4$…``).

Hashing is deliberately slow (tens of milliseconds, 64 MiB): async callers run these functions
in a thread (``asyncio.to_thread``) so the event loop keeps serving requests. Nothing here logs;
neither a password nor a hash may ever reach a log line or an audit entry.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "WeakPassword",
    "check_password_strength",
    "generate_password",
    "hash_password",
    "needs_rehash",
    "verify_password",
]

MIN_PASSWORD_LENGTH = 12
# Argon2 takes any length, but a megabyte "password" would still cost a hash of a megabyte.
MAX_PASSWORD_LENGTH = 1024

# Immutable configuration, not state: one hasher with fixed parameters serves every call.
_HASHER = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


class WeakPassword(ValueError):
    """A given password too short (or too long) to accept."""


def check_password_strength(password: str) -> str:
    """``password`` if it is acceptable, else WeakPassword saying why (never echoing it)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"password must be at least {MIN_PASSWORD_LENGTH} characters long")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"password must be at most {MAX_PASSWORD_LENGTH} characters long")
    if not password.strip():
        raise WeakPassword("password must not be only spaces")
    return password


def generate_password() -> str:
    """A new random password: 18 random bytes, 24 URL-safe characters (144 bits)."""
    return secrets.token_urlsafe(18)


def hash_password(password: str) -> str:
    """The Argon2id hash of an acceptable ``password`` (WeakPassword otherwise)."""
    return _HASHER.hash(check_password_strength(password))


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; the comparison is the library's (constant
    time). A malformed or foreign hash is a mismatch, never an exception."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether ``password_hash`` was made with other parameters than today's (rehash it at the
    next successful login)."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
