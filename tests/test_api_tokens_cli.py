"""`qaportal token create|revoke|list`: the token alone on stdout, one-line errors, audit."""

from __future__ import annotations

import getpass
from datetime import timedelta

import pytest
import sqlalchemy as sa

from qaportal.auth import tokens
from qaportal.models import ApiToken, AuditEvent, utcnow
from tests.console import console_env, qaportal
from tests.factories import make_user


def _run(app, *args):
    return app.test_cli_runner().invoke(args=["token", *args])


def _one_line_error(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def test_create_prints_the_token_alone_on_stdout(app, db):
    user = make_user(email="pacs@example.test")
    db.session.commit()
    result = _run(app, "create", "PACS@example.test")
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert result.stdout == secret + "\n" and secret.startswith("qap_")
    verdict = tokens.verify(secret)
    token = verdict.token
    assert verdict.refused is None and token.user_id == user.id
    assert token.scopes == "read" and token.label == "command line"
    assert timedelta(days=89) < token.expires_at - utcnow() <= timedelta(days=90)
    assert f"token {token.id} for pacs@example.test: scopes read" in result.stderr
    assert secret not in result.stderr
    ev = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "api_token.created"))
    assert ev.actor_id is None and ev.actor_label == f"command line ({getpass.getuser()})"
    assert ev.details["owner_id"] == user.id and ev.object_id == str(token.id)


def test_create_with_both_scopes_an_expiry_and_a_label(app, db):
    make_user(email="ris@example.test")
    db.session.commit()
    result = _run(app, "create", "ris@example.test", "--scope", "read", "--scope", "write",
                  "--expires-days", "7", "--label", "RIS bridge")
    assert result.exit_code == 0, result.output
    token = tokens.verify(result.stdout.strip()).token
    assert token.scope_set == {"read", "write"} and token.label == "RIS bridge"
    assert timedelta(days=6) < token.expires_at - utcnow() <= timedelta(days=7)
    never = _run(app, "create", "ris@example.test", "--scope", "write", "--never-expires")
    assert never.exit_code == 0 and "expires never" in never.stderr
    assert tokens.verify(never.stdout.strip()).token.expires_at is None


def test_create_refuses_with_one_line(app, db):
    make_user(email="gone@example.test", active=False)
    make_user(email="here@example.test")
    db.session.commit()
    assert _one_line_error(_run(app, "create", "nobody@example.test")) == \
        "error: no account with the e-mail nobody@example.test"
    assert "deactivated" in _one_line_error(_run(app, "create", "gone@example.test"))
    bad_label = _run(app, "create", "here@example.test", "--label", "two\tparts")
    assert "no line breaks, tabs" in _one_line_error(bad_label)
    assert _run(app, "create", "here@example.test", "--scope", "admin").exit_code == 2
    assert _run(app, "create", "here@example.test", "--expires-days", "0").exit_code == 2
    both = _run(app, "create", "here@example.test", "--expires-days", "5", "--never-expires")
    assert _one_line_error(both, 2) == "error: give either --expires-days or --never-expires"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


def test_revoke_and_list(app, db):
    user = make_user(email="lab@example.test")
    other = make_user(email="other@example.test")
    mine = tokens.create(user, label="lab script", scopes=("read",), expires_days=30, by=user)
    theirs = tokens.create(other, label="viewer", scopes=("read",), expires_days=None, by=other)
    db.session.commit()
    listing = _run(app, "list", "lab@example.test")
    assert listing.exit_code == 0
    lines = listing.stdout.strip().splitlines()
    assert lines[0].startswith("id\tuser\tprefix") and len(lines) == 2
    assert lines[1].split("\t")[:5] == [str(mine.token.id), "lab@example.test",
                                        mine.token.token_prefix, "read", "active"]
    assert mine.secret not in listing.stdout
    everyone = _run(app, "list").stdout
    assert "other@example.test" in everyone and theirs.secret not in everyone

    result = _run(app, "revoke", str(mine.token.id))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"revoked token {mine.token.id}")
    assert tokens.verify(mine.secret).refused == "revoked"
    ev = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "api_token.revoked"))
    assert ev.actor_label.startswith("command line (") and ev.details["reason"] == \
        "revoked on the command line"
    assert "\trevoked\t" in _run(app, "list", "lab@example.test").stdout

    again = _run(app, "revoke", str(mine.token.id))
    assert _one_line_error(again) == f"error: token {mine.token.id} was revoked already"
    assert _one_line_error(_run(app, "revoke", "987654")) == \
        "error: no API token with the id 987654"
    assert _run(app, "revoke", "abc").exit_code == 2
    assert _one_line_error(_run(app, "list", "nobody@example.test")).startswith("error: no acc")


@pytest.mark.slow
def test_the_console_script_gives_a_token_a_shell_can_capture(tmp_path):
    """As in `TOKEN=$(qaportal token create EMAIL)`: stdout is the token and nothing else."""
    instance = tmp_path / "instance"
    instance.mkdir()
    env = console_env(instance)
    assert qaportal(env, "db", "upgrade").returncode == 0
    created = qaportal(env, "create-user", "pacs@example.test", "--name", "PACS Robot",
                       "--role", "radiologist")
    assert created.returncode == 0, created.stderr
    result = qaportal(env, "token", "create", "pacs@example.test", "--scope", "write")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("qap_")
    assert "scopes write" in result.stderr
    missing = qaportal(env, "token", "create", "nobody@example.test")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip() == "error: no account with the e-mail nobody@example.test"
