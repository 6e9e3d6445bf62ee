"""Password hashing (Argon2id) and the password policy."""

from __future__ import annotations

import secrets
from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

# Verified against when the account does not exist, so both paths take as long.
_DUMMY_PASSWORD = "not-a-password-of-anyone"  # noqa: S105


def _hasher() -> PasswordHasher:
    cfg = current_app.config
    return _cached_hasher(
        cfg["ARGON2_TIME_COST"], cfg["ARGON2_MEMORY_KIB"], cfg["ARGON2_PARALLELISM"]
    )


@lru_cache(maxsize=4)
def _cached_hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )


def hash_password(password: str) -> str:
    """Return an Argon2id hash of the password."""
    return _hasher().hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Return True when the password matches; spends the same time when there is no hash."""
    hasher = _hasher()
    try:
        return hasher.verify(stored_hash or _dummy_hash(hasher), password) and bool(stored_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Return True when the hash was made with weaker parameters than configured."""
    return _hasher().check_needs_rehash(stored_hash)


_dummy_cache: dict[int, str] = {}


def _dummy_hash(hasher: PasswordHasher) -> str:
    key = id(hasher)
    if key not in _dummy_cache:
        _dummy_cache[key] = hasher.hash(_DUMMY_PASSWORD)
    return _dummy_cache[key]


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """Return the list of passwords too common to accept, lower-cased."""
    text = resources.files("qaportal.data").joinpath("common-passwords.txt").read_text()
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip()
        and not line.startswith("#")
    )


def policy_problems(password: str, *, email: str = "", name: str = "") -> list[str]:
    """Return why a password is refused, or an empty list when it is acceptable."""
    problems = []
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    if len(password) < minimum:
        problems.append(f"Use at least {minimum} characters.")
    lowered = password.lower()
    if lowered in common_passwords() or lowered.rstrip("0123456789!") in common_passwords():
        problems.append("This password is on the list of commonly used passwords.")
    if len(set(password)) < 4:
        problems.append("Use more than a few different characters.")
    local = email.split("@")[0].lower()
    if len(local) >= 4 and local in lowered:
        problems.append("Do not use your e-mail address in your password.")
    for part in name.lower().split():
        if len(part) >= 4 and part in lowered:
            problems.append("Do not use your name in your password.")
            break
    return problems


def generate_password() -> str:
    """Return a random password that satisfies the policy (about 100 bits)."""
    alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    groups = ["".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4)]
    return "-".join(groups)
