"""What configuration loading does after reading the settings: derive the settings that
depend on others (the database URI, cookie flags, default folders and keys under the
instance folder) and refuse those that cannot work (links, the image store, rate limits,
PDF rendering, audit anchoring; the feeds' own checks are in config_feeds.py).
qaportal.config.load calls finish and check_links once the defaults, instance/config.py,
the QAPORTAL_* variables and the overrides are in app.config."""

from __future__ import annotations

import os
import re
import secrets
from datetime import timedelta
from pathlib import Path

from qaportal.config import DEFAULT_2FA_ROLES, ConfigError

# A web origin: scheme, host name or bracketed IPv6 address, optional port.
ORIGIN_RE = re.compile(r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")


def check_links(cfg) -> None:
    """Refuse a link base that is not an absolute URL (a missing one is said when an e-mail
    is written: commands that send none must not print a warning)."""
    for key in ("BASE_URL", "SERVED_URL"):
        if cfg.get(key) and not str(cfg[key]).startswith(("http://", "https://")):
            raise ConfigError(f"QAPORTAL_{key} must be an absolute http(s):// URL")


def finish(app) -> None:
    """Derive what depends on other settings and refuse what cannot work."""
    instance = Path(app.instance_path)
    cfg = app.config
    if not cfg.get("SQLALCHEMY_DATABASE_URI"):
        instance.mkdir(parents=True, exist_ok=True)
        cfg["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'qaportal.sqlite'}"
    uri = cfg["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("postgres://"):
        uri = "postgresql://" + uri[len("postgres://"):]
    if uri.startswith("postgresql://"):
        uri = "postgresql+psycopg://" + uri[len("postgresql://"):]
    cfg["SQLALCHEMY_DATABASE_URI"] = uri
    embedded = uri.startswith("sqlite")
    if not cfg.get("SECRET_KEY"):
        if not embedded:
            raise ConfigError(
                "QAPORTAL_SECRET_KEY must be set when the database is not the embedded SQLite "
                "(every app server must share one key); generate one with "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`."
            )
        cfg["SECRET_KEY"] = instance_secret(instance)
    from qaportal.models.user import ROLES

    if cfg["REQUIRE_2FA_ROLES"] is None:
        # Accounts that can see every study or change every account need a second factor.
        cfg["REQUIRE_2FA_ROLES"] = () if cfg["LOCAL"] else DEFAULT_2FA_ROLES
    cfg["REQUIRE_2FA_ROLES"] = tuple(cfg["REQUIRE_2FA_ROLES"])
    unknown = set(cfg["REQUIRE_2FA_ROLES"]) - set(ROLES)
    if unknown:  # a typo would otherwise silently require two-factor sign-in of nobody
        raise ConfigError(
            f"QAPORTAL_REQUIRE_2FA_ROLES names unknown role(s) {', '.join(sorted(unknown))}; "
            f"use {', '.join(ROLES)}."
        )
    bad = set(cfg["REVIEW_CASE_SCORES"]) - {"2a", "2b", "3a", "3b"}
    if bad:
        raise ConfigError(f"REVIEW_CASE_SCORES may hold only 2a, 2b, 3a, 3b (not {sorted(bad)})")
    for name in ("MAX_FRAMES_PER_INSTANCE", "MAX_INFLATED_BYTES"):
        if int(cfg[name]) < 1:  # 0 would refuse every image, a negative one too
            raise ConfigError(f"QAPORTAL_{name} must be a positive number")
    cfg["SESSION_COOKIE_SECURE"] = not cfg["LOCAL"]
    cfg["REMEMBER_COOKIE_SECURE"] = not cfg["LOCAL"]
    cfg["PERMANENT_SESSION_LIFETIME"] = timedelta(minutes=cfg["IDLE_TIMEOUT_MINUTES"])
    if not 0 < float(cfg["SESSION_ABSOLUTE_HOURS"]) <= 24 * 30:
        raise ConfigError("QAPORTAL_SESSION_ABSOLUTE_HOURS must be between 0 and 720 hours")
    _check_rate_limit(cfg["SIGN_IN_RATE_LIMIT"])
    _check_rate_limit(cfg["API_TOKEN_FAILURE_RATE_LIMIT"], "API_TOKEN_FAILURE_RATE_LIMIT")
    cfg["API_PATH_PREFIXES"] = tuple(cfg["API_PATH_PREFIXES"])
    if any(not p.startswith("/") or not p.endswith("/") or p == "/"
           for p in cfg["API_PATH_PREFIXES"]):
        # "/" would let a token open every page; a prefix without the slashes, lookalikes.
        raise ConfigError("API_PATH_PREFIXES must be paths such as '/dicomweb/' "
                          "(starting and ending with '/', never '/' alone)")
    cfg["DICOMWEB_CORS_ORIGINS"] = tuple(cfg["DICOMWEB_CORS_ORIGINS"])
    for origin in cfg["DICOMWEB_CORS_ORIGINS"]:
        if not ORIGIN_RE.fullmatch(origin):
            raise ConfigError(f"DICOMWEB_CORS_ORIGINS: {origin!r} is not an origin such as "
                              "'https://viewer.example.org' (scheme, host, optional port; "
                              "no path, no '*')")
    if int(cfg["API_TOKENS_PER_USER"]) < 1:
        raise ConfigError("QAPORTAL_API_TOKENS_PER_USER must be at least 1")
    cfg.setdefault("IMAGE_ROOT", str(instance / "images"))
    _check_image_store(cfg)
    cfg.setdefault("CACHE_ROOT", str(instance / "cache"))
    cfg.setdefault("OUTBOX_DIR", str(instance / "outbox"))
    cfg.setdefault("UPLOAD_TMP", str(instance / "tmp"))
    _check_pdf(cfg, instance)
    _check_audit(cfg, instance)
    from qaportal.config_feeds import check_feeds

    check_feeds(cfg, instance, embedded)


def _check_image_store(cfg) -> None:
    """Refuse an image store that cannot work (a DICOMweb store without its archive's URL)."""
    kind = str(cfg.get("IMAGE_STORE") or "filesystem").strip().lower()
    if kind not in {"filesystem", "dicomweb"}:
        raise ConfigError("QAPORTAL_IMAGE_STORE must be 'filesystem' or 'dicomweb'")
    cfg["IMAGE_STORE"] = kind
    if kind != "dicomweb":
        return
    url = str(cfg.get("IMAGE_STORE_URL") or "")
    if not url.startswith(("http://", "https://")):
        raise ConfigError("QAPORTAL_IMAGE_STORE=dicomweb needs QAPORTAL_IMAGE_STORE_URL, the "
                          "archive's DICOMweb root (e.g. http://127.0.0.1:8042/dicom-web)")
    if cfg.get("IMAGE_STORE_DELETE", "mapping") not in {"mapping", "orthanc"}:
        raise ConfigError("QAPORTAL_IMAGE_STORE_DELETE must be 'mapping' or 'orthanc'")
    if not float(cfg.get("IMAGE_STORE_TIMEOUT", 60)) > 0:
        raise ConfigError("QAPORTAL_IMAGE_STORE_TIMEOUT must be a positive number of seconds")


def _check_audit(cfg, instance: Path) -> None:
    """Default the audit key and anchor file; refuse a key too short to resist guessing."""
    if not cfg.get("AUDIT_KEY"):
        cfg["AUDIT_KEY"] = instance_secret(instance, "audit-key")
    if len(cfg["AUDIT_KEY"]) < 32:
        raise ConfigError("QAPORTAL_AUDIT_KEY must be at least 32 characters (64 hex digits "
                          "from `python -c 'import secrets; print(secrets.token_hex(32))'`)")
    if not cfg.get("AUDIT_ANCHOR_FILE"):
        cfg["AUDIT_ANCHOR_FILE"] = str(instance / "audit-anchor.log")
    if int(cfg["AUDIT_CHECKPOINT_EVERY"]) < 1:
        raise ConfigError("QAPORTAL_AUDIT_CHECKPOINT_EVERY must be at least 1")


def _check_rate_limit(value: str, name: str = "SIGN_IN_RATE_LIMIT") -> None:
    """Refuse a rate limit that Flask-Limiter cannot read."""
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError as exc:
        raise ConfigError(
            f"QAPORTAL_{name}={value!r} is not valid (e.g. '10 per minute')"
        ) from exc


def _check_pdf(cfg, instance: Path) -> None:
    """Refuse PDF settings that cannot work; default the export folder."""
    from qaportal.pdf.render import PAGE_SIZES, PDF_VARIANTS

    if not cfg.get("EXPORT_ROOT"):
        cfg["EXPORT_ROOT"] = str(instance / "exports")
    if str(cfg["PDF_PAGE_SIZE"]).lower() not in PAGE_SIZES:
        raise ConfigError(f"QAPORTAL_PDF_PAGE_SIZE must be one of: {', '.join(PAGE_SIZES)}")
    if cfg["PDF_VARIANT"] not in PDF_VARIANTS:
        raise ConfigError(f"QAPORTAL_PDF_VARIANT must be one of: {', '.join(PDF_VARIANTS)}")
    if not 0 < float(cfg["PDF_TIMEOUT"]) <= 3600:
        raise ConfigError("QAPORTAL_PDF_TIMEOUT must be between 0 and 3600 seconds")


def instance_secret(instance: Path, name: str = "secret_key") -> str:
    """Return the key in instance/<name>, creating it (mode 0600) on first use."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / name
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    return path.read_text().strip()
