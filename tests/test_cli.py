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
    assert result.exit_code != 0 and "'root' is not one of" in result.output
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
