"""Configuration: defaults, instance/config.py, QAPORTAL_* variables, the secret key."""

from __future__ import annotations

import os
import stat

import pytest

from qaportal import create_app
from qaportal.config import ConfigError


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("QAPORTAL_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults_without_any_configuration(tmp_path, clean_env):
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    cfg = app.config
    assert cfg["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'qaportal.sqlite'}"
    assert cfg["IDLE_TIMEOUT_MINUTES"] == 30
    assert (cfg["LOCKOUT_THRESHOLD"], cfg["LOCKOUT_WINDOW_MINUTES"]) == (5, 15)
    assert cfg["PASSWORD_MIN_LENGTH"] == 12
    assert cfg["SESSION_COOKIE_SECURE"] is True  # only QAPORTAL_LOCAL=1 drops it
    assert cfg["SESSION_COOKIE_HTTPONLY"] is True
    assert cfg["SESSION_COOKIE_SAMESITE"] == "Lax"
    # Outside local mode, accounts that see or change everything need a second factor.
    assert cfg["REQUIRE_2FA_ROLES"] == ("admin", "qa_manager")
    assert cfg["SESSION_ABSOLUTE_HOURS"] == 12
    assert cfg["RATELIMIT_STORAGE_URI"] == "qaportal-db://"


def test_local_mode_requires_no_second_factor_unless_set(tmp_path, clean_env):
    clean_env.setenv("QAPORTAL_LOCAL", "1")
    assert create_app({"INSTANCE_PATH": str(tmp_path)}).config["REQUIRE_2FA_ROLES"] == ()
    clean_env.delenv("QAPORTAL_LOCAL")
    clean_env.setenv("QAPORTAL_REQUIRE_2FA_ROLES", "none")
    assert create_app({"INSTANCE_PATH": str(tmp_path)}).config["REQUIRE_2FA_ROLES"] == ()


def test_secret_key_is_generated_once_with_mode_0600(tmp_path, clean_env):
    first = create_app({"INSTANCE_PATH": str(tmp_path)}).config["SECRET_KEY"]
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 64 and path.read_text().strip() == first
    assert create_app({"INSTANCE_PATH": str(tmp_path)}).config["SECRET_KEY"] == first


def test_non_sqlite_database_without_secret_key_refuses_to_start(tmp_path, clean_env):
    clean_env.setenv("QAPORTAL_DATABASE_URL", "postgresql://qaportal@db.example.test/qaportal")
    with pytest.raises(ConfigError, match="QAPORTAL_SECRET_KEY must be set"):
        create_app({"INSTANCE_PATH": str(tmp_path)})
    assert not (tmp_path / "secret_key").exists()


def test_environment_overrides_defaults(tmp_path, clean_env):
    clean_env.setenv("QAPORTAL_DATABASE_URL", "postgres://u:p@db.example.test/q")
    clean_env.setenv("QAPORTAL_SECRET_KEY", "from-the-environment")
    clean_env.setenv("QAPORTAL_IDLE_TIMEOUT_MINUTES", "10")
    clean_env.setenv("QAPORTAL_LOCKOUT_THRESHOLD", "3")
    clean_env.setenv("QAPORTAL_REQUIRE_2FA_ROLES", "admin, qa_manager")
    clean_env.setenv("QAPORTAL_LOCAL", "1")
    cfg = create_app({"INSTANCE_PATH": str(tmp_path)}).config
    assert cfg["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db.example.test/q"
    assert cfg["SECRET_KEY"] == "from-the-environment"
    assert cfg["IDLE_TIMEOUT_MINUTES"] == 10
    assert cfg["PERMANENT_SESSION_LIFETIME"].total_seconds() == 600
    assert cfg["LOCKOUT_THRESHOLD"] == 3
    assert cfg["REQUIRE_2FA_ROLES"] == ("admin", "qa_manager")
    assert cfg["SESSION_COOKIE_SECURE"] is False


def test_the_folders_a_server_keeps_to_itself_can_be_set(tmp_path, clean_env):
    """Several servers: the instance folder local, images and exports shared (README)."""
    assert create_app({"INSTANCE_PATH": str(tmp_path)}).config["UPLOAD_TMP"] == str(
        tmp_path / "tmp")
    for name, folder in (("UPLOAD_TMP", "/srv/upload-tmp"), ("CACHE_ROOT", "/var/cache/qp"),
                         ("IMAGE_ROOT", "/mnt/shared/images"),
                         ("EXPORT_ROOT", "/mnt/shared/exports")):
        clean_env.setenv(f"QAPORTAL_{name}", folder)
    cfg = create_app({"INSTANCE_PATH": str(tmp_path)}).config
    assert (cfg["UPLOAD_TMP"], cfg["CACHE_ROOT"], cfg["IMAGE_ROOT"], cfg["EXPORT_ROOT"]) == (
        "/srv/upload-tmp", "/var/cache/qp", "/mnt/shared/images", "/mnt/shared/exports")


def test_instance_config_file_overrides_defaults_and_env_wins(tmp_path, clean_env):
    (tmp_path / "config.py").write_text(
        "SECRET_KEY = 'from-the-file'\nIDLE_TIMEOUT_MINUTES = 12\nLOCKOUT_THRESHOLD = 7\n"
    )
    clean_env.setenv("QAPORTAL_LOCKOUT_THRESHOLD", "4")
    cfg = create_app({"INSTANCE_PATH": str(tmp_path)}).config
    assert cfg["SECRET_KEY"] == "from-the-file"
    assert cfg["IDLE_TIMEOUT_MINUTES"] == 12
    assert cfg["LOCKOUT_THRESHOLD"] == 4
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize(("name", "value", "message"), [
    ("QAPORTAL_LOCKOUT_THRESHOLD", "five", "QAPORTAL_LOCKOUT_THRESHOLD='five' is not valid"),
    ("QAPORTAL_REQUIRE_2FA_ROLES", "admin,superuser", "unknown role"),
])
def test_invalid_settings_fail_with_a_clear_message(tmp_path, clean_env, name, value, message):
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        create_app({"INSTANCE_PATH": str(tmp_path)})
