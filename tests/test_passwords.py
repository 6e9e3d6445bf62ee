"""Password hashing (Argon2id, ASVS parameters) and the password policy."""

from __future__ import annotations

import pytest
from argon2 import extract_parameters

from qaportal.config import Defaults
from qaportal.passwords import (
    common_passwords,
    generate_password,
    hash_password,
    needs_rehash,
    policy_problems,
    verify_password,
)


def test_production_argon2_defaults_meet_asvs():
    # OWASP / ASVS 2.4: Argon2id with at least m=19 MiB, t=2, p=1.
    assert Defaults.ARGON2_MEMORY_KIB >= 19 * 1024
    assert Defaults.ARGON2_TIME_COST >= 2
    assert Defaults.ARGON2_PARALLELISM >= 1


def test_hashes_are_argon2id_with_the_configured_parameters(app):
    app.config.update(ARGON2_TIME_COST=2, ARGON2_MEMORY_KIB=19 * 1024, ARGON2_PARALLELISM=1)
    stored = hash_password("a long enough passphrase")
    assert stored.startswith("$argon2id$")
    params = extract_parameters(stored)
    assert (params.time_cost, params.memory_cost, params.parallelism) == (2, 19 * 1024, 1)
    assert verify_password(stored, "a long enough passphrase")
    assert not verify_password(stored, "a long enough passphrase!")
    assert not verify_password(None, "anything")
    assert not verify_password("not-a-hash", "anything")


def test_weaker_hashes_are_upgraded_at_sign_in(app, auth, db):
    from tests.factories import DEFAULT_PASSWORD, make_user

    user = make_user()
    db.session.commit()
    app.config.update(ARGON2_TIME_COST=2)
    assert needs_rehash(user.password_hash)
    assert auth.login(user).status_code == 302
    db.session.refresh(user)
    assert extract_parameters(user.password_hash).time_cost == 2
    assert verify_password(user.password_hash, DEFAULT_PASSWORD)


@pytest.mark.parametrize(("password", "problem"), [
    ("short-pass1", "at least 12 characters"),
    ("password1234", "commonly used"),
    ("Qwertyuiop123!", "commonly used"),
    ("aaaaaaaaaaaaaaaa", "different characters"),
    ("jane.doe-rocks-2024", "e-mail address"),
    ("mcallister-rocks-2024", "your name"),
])
def test_policy_refuses(app, password, problem):
    problems = policy_problems(password, email="jane.doe@example.test", name="Jo McAllister")
    assert any(problem in p for p in problems), problems


def test_policy_accepts_a_long_unusual_password(app):
    assert policy_problems("violet-harbour-lantern-42", email="jane.doe@example.test",
                           name="Jane Doe") == []


def test_minimum_length_is_configurable(app):
    app.config["PASSWORD_MIN_LENGTH"] = 20
    assert policy_problems("violet-harbour-42") == ["Use at least 20 characters."]


def test_common_list_is_loaded_from_the_package():
    common = common_passwords()
    assert "password" in common and "123456" in common and len(common) > 100


def test_generated_passwords_pass_the_policy(app):
    for _ in range(20):
        password = generate_password()
        assert policy_problems(password, email="x@example.test", name="X Y") == []
