"""Staff passwords: hashed with a slow, memory-hard KDF, never stored or compared in clear."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


# argon2id with OWASP's minimum profile (m=19 MiB, t=2, p=1): still a slow, memory-hard KDF,
# but a sign-in no longer lifts a worker's memory by the library default's 64 MiB.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
