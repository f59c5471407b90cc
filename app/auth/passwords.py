"""Password hashing with argon2id.

argon2-cffi's defaults are RFC 9106's low-memory profile (t=3, m=64 MiB, p=4),
above OWASP's minimum for argon2id (m=19 MiB, t=2, p=1). The hash string
stores its own parameters, so raising them later still verifies old hashes and
``needs_rehash`` upgrades them at the next login.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


@cache
def _dummy_hash() -> str:
    return _hasher.hash("not a real password")


def burn_verification_time(password: str) -> None:
    """Spend a verification's time for an unknown user, so that timing does not
    reveal which user names exist."""
    verify_password(_dummy_hash(), password)


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of passwords attackers try first."""
    text = resources.files("app").joinpath("data/common-passwords.txt").read_text()
    return frozenset(
        line.strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


def password_problem(
    password: str, username: str, min_length: int, max_length: int
) -> str | None:
    """Why a new password is refused, or None. No truncation: every character
    counts (argon2 hashes the whole string)."""
    if not min_length <= len(password) <= max_length:
        return f"Use a password of {min_length} to {max_length} characters."
    lowered = password.lower()
    if lowered in common_passwords():
        return "That password is on the list of the most common ones; pick another."
    if username and lowered == username.lower():
        return "The password must not be your username."
    return None
