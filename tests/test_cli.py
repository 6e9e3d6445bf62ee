"""The `qaportal` command: create-user, demo, audit-verify (see test_audit.py)."""

from __future__ import annotations

import sqlalchemy as sa

from qaportal.demo.accounts import DEMO_ACCOUNTS
from qaportal.models import AuditEvent, License, User
from qaportal.passwords import verify_password

STRONG = "violet-harbour-lantern-42"


def _run(app, *args, stdin: str | None = None):
    return app.test_cli_runner().invoke(args=list(args), input=stdin)


def _user(db, email):
    return db.session.scalar(sa.select(User).where(User.email == email))


def test_create_user_with_password_from_stdin(app, db):
    result = _run(app, "create-user", "Jo@Example.org", "--name", "Jo Doe", "--role", "admin",
                  "--role", "qa_manager", "--password-stdin", stdin=STRONG + "\n")
    assert result.exit_code == 0, result.output
    assert "created user" in result.output and "admin, qa_manager" in result.output
    assert STRONG not in result.output
    user = _user(db, "jo@example.org")
    assert user.role_names == {"admin", "qa_manager"} and user.full_name == "Jo Doe"
    assert verify_password(user.password_hash, STRONG)
    assert user.must_change_password is False
    ev = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "user.created"))
    assert ev.actor_label == "cli" and ev.actor_id is None


def test_create_user_without_stdin_prints_a_temporary_password(app, db):
    result = _run(app, "create-user", "temp@example.org", "--name", "Temp", "--role",
                  "reviewer")
    assert result.exit_code == 0
    temp = result.output.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    user = _user(db, "temp@example.org")
    assert verify_password(user.password_hash, temp) and user.must_change_password


def test_weak_password_is_refused_with_one_line(app, db):
    result = _run(app, "create-user", "weak@example.org", "--name", "Weak", "--role",
                  "radiologist", "--password-stdin", stdin="password123\n")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: password refused:")
    assert _user(db, "weak@example.org") is None


def test_duplicate_email_is_refused_with_one_line(app, db):
    args = ["create-user", "dup@example.org", "--name", "Dup", "--role", "reviewer",
            "--password-stdin"]
    assert _run(app, *args, stdin=STRONG).exit_code == 0
    result = _run(app, *args[:1], "DUP@example.org", *args[2:], stdin=STRONG)
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: An account with the e-mail dup@example.org already exists.")


def test_invalid_email_is_refused(app, db):
    result = _run(app, "create-user", "not-an-address", "--name", "X", "--role", "admin",
                  "--password-stdin", stdin=STRONG)
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "not a valid e-mail address" in result.output


def test_unknown_role_is_refused(app, db):
    result = _run(app, "create-user", "r@example.org", "--name", "X", "--role", "root",
                  "--password-stdin", stdin=STRONG)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: unknown role 'root'; the roles are radiologist, reviewer, qa_manager, admin"]
    assert _user(db, "r@example.org") is None


def test_demo_seeds_every_role_and_is_idempotent(app, db, monkeypatch):
    monkeypatch.setenv("QAPORTAL_DEMO_PASSWORD", STRONG)
    first = _run(app, "demo")
    assert first.exit_code == 0, first.output
    assert f"password for all: {STRONG}" in first.output
    users = db.session.scalars(sa.select(User)).all()
    # The peer-review demo step adds reader1..6@demo.qaportal.test (its statistics need them).
    emails = {u.email for u in users} - {f"reader{i}@demo.qaportal.test" for i in range(1, 7)}
    assert emails == {spec[0] for spec in DEMO_ACCOUNTS.values()}
    roles = set().union(*(u.role_names for u in users))
    assert roles == {"radiologist", "reviewer", "qa_manager", "admin"}
    counts = (db.session.scalar(sa.select(sa.func.count()).select_from(User)),
              db.session.scalar(sa.select(sa.func.count()).select_from(License)))
    second = _run(app, "demo")
    assert second.exit_code == 0
    db.session.expire_all()
    assert counts == (db.session.scalar(sa.select(sa.func.count()).select_from(User)),
                      db.session.scalar(sa.select(sa.func.count()).select_from(License)))
    rad = _user(db, DEMO_ACCOUNTS["radiologist"][0])
    assert verify_password(rad.password_hash, STRONG) and not rad.must_change_password


def test_demo_generates_a_password_once_and_keeps_it_private(app, db, monkeypatch):
    import os
    import stat
    from pathlib import Path

    monkeypatch.delenv("QAPORTAL_DEMO_PASSWORD", raising=False)
    first = _run(app, "demo").output
    path = Path(app.instance_path) / "demo-password"
    password = path.read_text().strip()
    assert f"password for all: {password}" in first
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert f"password for all: {password}" in _run(app, "demo").output


def test_demo_never_seeds_an_instance_that_holds_real_accounts(app, db, monkeypatch):
    from tests.factories import make_user

    monkeypatch.setenv("QAPORTAL_DEMO_PASSWORD", STRONG)
    make_user(roles=("radiologist",), email="real@hospital.example")
    db.session.commit()
    result = _run(app, "demo")
    assert result.exit_code == 0, result.output  # `make run` goes on serving
    assert result.output.strip().splitlines() == [
        "This instance holds accounts of its own and no demo accounts: no demo data seeded."]
    db.session.expire_all()
    assert [u.email for u in db.session.scalars(sa.select(User))] == ["real@hospital.example"]
    # An instance the demo seeded before is still topped up, real accounts added or not.
    db.session.delete(_user(db, "real@hospital.example"))
    db.session.commit()
    assert _run(app, "demo").exit_code == 0
    make_user(roles=("admin",), email="real@hospital.example")
    db.session.commit()
    again = _run(app, "demo")
    assert again.exit_code == 0 and f"password for all: {STRONG}" in again.output


def test_demo_prints_the_password_the_accounts_really_have(app, db, monkeypatch):
    from qaportal.auth.service import change_password

    monkeypatch.delenv("QAPORTAL_DEMO_PASSWORD", raising=False)
    generated = _run(app, "demo").output.split("password for all: ", 1)[1].split(")")[0]
    rad = _user(db, DEMO_ACCOUNTS["radiologist"][0])
    change_password(rad, "my-own-password-99")
    db.session.commit()
    # Unset: nothing is reset, and the account whose password changed is marked.
    output = _run(app, "demo").output
    assert f"password: {generated}; accounts marked * keep a password" in output
    marked = [line.split()[0] for line in output.splitlines() if line.startswith(" *")]
    assert marked == ["*radiologist"]
    db.session.expire_all()
    assert verify_password(_user(db, DEMO_ACCOUNTS["radiologist"][0]).password_hash,
                           "my-own-password-99")
    # Set on a later run: every demo account gets it (audited), and later runs print it.
    monkeypatch.setenv("QAPORTAL_DEMO_PASSWORD", STRONG)
    output = _run(app, "demo").output
    assert f"password for all: {STRONG}" in output and " *" not in output
    db.session.expire_all()
    for email, *_ in DEMO_ACCOUNTS.values():
        assert verify_password(_user(db, email).password_hash, STRONG), email
    resets = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "user.password_reset")).all()
    assert len(resets) == len(DEMO_ACCOUNTS)
    assert {e.actor_label for e in resets} == {"cli"}
    monkeypatch.delenv("QAPORTAL_DEMO_PASSWORD")
    assert f"password for all: {STRONG}" in _run(app, "demo").output
