"""Configuration checks of the hospital feeds: the job queue, deliveries, the calling AE
title of results sent back, and the key of the peers' credentials at rest."""

from __future__ import annotations

import re
from pathlib import Path

from qaportal.config import ConfigError
from qaportal.config_checks import instance_secret


def check_feeds(cfg, instance: Path, embedded: bool) -> None:
    """Refuse a feeds setting that cannot work; derive the credentials key where unset."""
    check_send(cfg)
    check_jobs(cfg)
    check_feeds_key(cfg, instance, embedded)


def check_jobs(cfg) -> None:
    """Refuse a job queue or delivery setting that cannot work."""
    url = cfg.get("JOB_QUEUE_URL")
    if url and not str(url).startswith(("redis://", "rediss://", "unix://", "sqlite:///")):
        raise ConfigError("QAPORTAL_JOB_QUEUE_URL must be a redis://host:port/db URL (or "
                          "sqlite:///path for a queue file elsewhere than the instance folder)")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", str(cfg["JOB_QUEUE_NAME"])):
        raise ConfigError("QAPORTAL_JOB_QUEUE_NAME must be 1-64 letters, digits, '.', '_', '-'")
    if int(cfg["DELIVERY_MAX_ATTEMPTS"]) < 1:
        raise ConfigError("QAPORTAL_DELIVERY_MAX_ATTEMPTS must be at least 1")
    for name in ("DELIVERY_RETRY_BASE_SECONDS", "DELIVERY_RETRY_MAX_SECONDS",
                 "DELIVERY_LEASE_SECONDS"):
        if not 0 < float(cfg[name]) <= 7 * 86400:
            raise ConfigError(f"QAPORTAL_{name} must be between 0 and 604800 seconds")


def check_send(cfg) -> None:
    """Refuse a calling AE title DICOM forbids and a time limit that cannot work."""
    title = cfg.get("DICOM_SEND_AE")
    if title is not None and not (0 < len(title.strip()) <= 16 and title.isascii()
                                  and "\\" not in title):
        raise ConfigError("QAPORTAL_DICOM_SEND_AE must be 1 to 16 ASCII characters, "
                          "without a backslash")
    if not 0 < float(cfg["DICOM_SEND_TIMEOUT"]) <= 3600:
        raise ConfigError("QAPORTAL_DICOM_SEND_TIMEOUT must be between 0 and 3600 seconds")


def check_feeds_key(cfg, instance: Path, embedded: bool) -> None:
    """Key of the peers' credentials at rest (qaportal/feeds/secrets.py): the setting, else
    an instance file on the embedded database, else derived there from SECRET_KEY."""
    if cfg.get("FEEDS_KEY"):
        if len(cfg["FEEDS_KEY"]) < 32:
            raise ConfigError("QAPORTAL_FEEDS_KEY must be at least 32 characters (64 hex digits "
                              "from `python -c 'import secrets; print(secrets.token_hex(32))'`)")
    elif embedded:
        cfg["FEEDS_KEY"] = instance_secret(instance, "feeds-key")
        cfg["FEEDS_KEY_FILE"] = str(instance / "feeds-key")
