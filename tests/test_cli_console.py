"""The console script: configuration and database errors are one line and exit 3."""

from __future__ import annotations

import pytest

from tests.console import console_env, qaportal

# Runs its own SQLite instance in subprocesses: the SQLite pass of `make test` runs it and the
# PostgreSQL pass leaves it out (-m "not slow").
pytestmark = pytest.mark.slow


def _one_line_error(result, code: int = 3) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def instance(tmp_path):
    path = tmp_path / "instance"
    path.mkdir()
    return path


def test_another_database_without_secret_key_is_one_line(instance):
    env = console_env(instance, QAPORTAL_DATABASE_URL="postgresql://qa@127.0.0.1:1/qaportal")
    line = _one_line_error(qaportal(env, "audit-verify"))
    assert line.startswith("error: configuration: QAPORTAL_SECRET_KEY must be set")


def test_a_setting_that_is_not_a_number_is_one_line_naming_it(instance):
    env = console_env(instance, QAPORTAL_LOCKOUT_THRESHOLD="five")
    for args in (["audit-verify"], ["--help"]):
        line = _one_line_error(qaportal(env, *args))
        assert "QAPORTAL_LOCKOUT_THRESHOLD='five' is not valid" in line


def test_an_unmigrated_database_is_one_line_saying_what_to_run(instance):
    env = console_env(instance)
    line = _one_line_error(qaportal(env, "audit-verify"))
    assert line.startswith("error: database error: no such table")
    assert "qaportal db upgrade" in line


def test_an_unreachable_database_is_one_line(instance):
    env = console_env(instance, QAPORTAL_DATABASE_URL="postgresql://qa@127.0.0.1:1/qaportal",
                      QAPORTAL_SECRET_KEY="k" * 32)
    line = _one_line_error(qaportal(env, "audit-verify"))
    assert line.startswith("error: database error: ") and "port 1 failed" in line


def test_commands_keep_their_own_exit_codes(instance):
    env = console_env(instance)
    assert qaportal(env, "db", "upgrade").returncode == 0
    intact = qaportal(env, "audit-verify")
    assert intact.returncode == 0 and intact.stdout.startswith("audit log intact: 0 entries")
    nobody = qaportal(env, "import-study", str(instance), "--owner", "nobody@example.org")
    assert _one_line_error(nobody, 2) == "error: no active account with the e-mail " \
                                         "nobody@example.org"
    usage = qaportal(env, "create-user", "x@example.org")  # Click's usage errors stay 2
    assert usage.returncode == 2 and "Missing option '--name'" in usage.stderr
