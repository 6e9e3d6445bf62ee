"""Configuration: defaults here; instance/config.py and QAPORTAL_* variables override."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any


class ConfigError(RuntimeError):
    """The configuration cannot work; the message says what to set."""


DEFAULT_2FA_ROLES = ("admin", "qa_manager")


class Defaults:
    """Settings every installation starts from."""

    SQLALCHEMY_DATABASE_URI: str | None = None  # instance/qaportal.sqlite when unset
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": True}
    SECRET_KEY: str | None = None
    # A plain-HTTP deployment on the loopback interface (make run); cookies lose "Secure".
    LOCAL = False
    PROXY_FIX = False  # trust one X-Forwarded-* hop (behind nginx / a load balancer)

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_NAME = "qaportal_session"
    REMEMBER_COOKIE_DURATION = timedelta(seconds=0)
    IDLE_TIMEOUT_MINUTES = 30
    # A session ends this long after sign-in however active it is (sessions are server-side).
    SESSION_ABSOLUTE_HOURS = 12
    # Per client address, on the sign-in and two-factor code POSTs (Flask-Limiter syntax).
    SIGN_IN_RATE_LIMIT = "10 per minute;100 per hour"
    # Where the rate-limit counters live: the portal's database (shared by every worker),
    # or a `limits` URI such as redis://host:6379.
    RATELIMIT_STORAGE_URI = "qaportal-db://"
    # Personal API tokens (Authorization: Bearer) open only these path prefixes; a refused
    # token counts against this per-client limit; a user holds at most this many active.
    API_PATH_PREFIXES: tuple[str, ...] = ("/dicomweb/", "/fhir/")
    API_TOKEN_FAILURE_RATE_LIMIT = "10 per minute;100 per hour"  # noqa: S105 - a limit
    API_TOKENS_PER_USER = 20
    LOCKOUT_THRESHOLD = 5
    LOCKOUT_WINDOW_MINUTES = 15
    LOCKOUT_MINUTES = 15
    PASSWORD_MIN_LENGTH = 12
    # Argon2id; OWASP/ASVS minimum is m=19 MiB, t=2, p=1: these are stronger.
    ARGON2_TIME_COST = 3
    ARGON2_MEMORY_KIB = 65536
    ARGON2_PARALLELISM = 2
    # None: admin and qa_manager outside LOCAL mode, nobody in LOCAL mode; "none" in the
    # environment turns the requirement off.
    REQUIRE_2FA_ROLES: tuple[str, ...] | None = None
    CREDENTIAL_EXPIRY_WARNING_DAYS = 60
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session (idle timeout applies)
    # One upload request (the browser sends a large upload in several requests).
    MAX_CONTENT_LENGTH = 1024**3
    UPLOAD_CHUNK_BYTES = 64 * 1024**2  # what the browser puts in one request
    UPLOAD_MAX_FILE_BYTES = 1024**3
    UPLOAD_MAX_TOTAL_BYTES = 20 * 1024**3  # per zip, unpacked
    UPLOAD_MAX_FILES = 20_000  # per zip
    # Received files (STOW-RS, browser uploads) kept by a filesystem store: their bulk is
    # written with O_DIRECT, around the page cache (qaportal.dicom.direct_write).
    RECEIVE_DIRECT_IO = True
    # Ingest guards: an instance declaring more frames is refused (NumberOfFrames must also
    # fit the pixel data present); a deflated data set inflating past this is refused.
    MAX_FRAMES_PER_INSTANCE = 20_000
    MAX_INFLATED_BYTES = 256 * 1024**2
    # Rendering guard: frames larger than this many pixels are refused before decoding.
    RENDER_MAX_PIXELS = 64 * 1024**2
    # Viewer: rendered frames kept under CACHE_ROOT/frames (oldest pruned past this size),
    # and how long a browser may keep a frame (private cache only).
    FRAME_CACHE_MAX_BYTES = 2 * 1024**3
    FRAME_MAX_AGE = 3600
    # DICOMweb metadata: each instance's DICOM JSON header kept under CACHE_ROOT/dicomjson
    # by (file SHA-256, served as stored or de-identified); oldest pruned past this size.
    METADATA_CACHE_MAX_BYTES = 512 * 1024**2
    # A stored file found to match its SHA-256 is not hashed again while its state (inode,
    # size, mtime, ctime) is unchanged, for at most this long (signed records under
    # CACHE_ROOT/verified, shared by the worker processes).
    VERIFIED_FILE_MAX_AGE_HOURS = 24.0
    # A store that is not a local folder (the DICOMweb archive) is read through local
    # copies under CACHE_ROOT/verified/copies; the oldest fetched are deleted past this size.
    STORE_COPIES_MAX_BYTES = 20 * 1024**3
    AUDIT_PAGE_SIZE = 50
    # The other keyset lists (worklists, cases, committee, feedback, notifications, opinion
    # requests): rows per page (qaportal.paging).
    LIST_PAGE_SIZE = 50
    # A peer reviewer keeps the images of a submitted review this many days; then the
    # review's access grant ends (qaportal/reviews/access.py, the worker's sweep).
    REVIEW_ACCESS_DAYS = 30.0
    # Long lists count their rows up to this many, then say "more than" (qaportal.paging).
    LIST_COUNT_CAP = 10_000
    # Long exports go to the job queue (qaportal.exports): a report over more days than
    # this, an audit CSV of more entries than this.
    REPORT_BACKGROUND_DAYS = 366
    AUDIT_CSV_DIRECT_MAX = 100_000
    EXPORT_JOB_MAX_HOURS = 6.0  # a job running longer was left by a worker that died
    # QIDO-RS: at most this many results per answer (a Warning header says when more exist).
    QIDO_MAX_RESULTS = 1000
    # DICOMweb from web pages of other origins (a viewer served elsewhere): none by default.
    # Each entry is an exact origin, e.g. "https://viewer.example.org"; never "*".
    DICOMWEB_CORS_ORIGINS: tuple[str, ...] = ()
    # HL7 v2 listener (`qaportal hl7-listen`): MLLP port and bind address, the largest
    # message accepted, and how long an idle connection stays open (seconds).
    HL7_LISTEN_PORT = 2575
    HL7_LISTEN_BIND = "127.0.0.1"
    HL7_MAX_MESSAGE_BYTES = 1024**2
    HL7_IDLE_TIMEOUT = 300.0
    # E-mail: SMTP when QAPORTAL_SMTP_HOST is set, else .eml files in instance/outbox/.
    SMTP_HOST: str | None = None
    SMTP_PORT = 587
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: str | None = None
    SMTP_STARTTLS = True
    MAIL_FROM = "qaportal@localhost"
    # Absolute base URL for links in e-mails, e.g. https://qaportal.example.org. Unset in
    # local mode: links use the address the request came to, else SERVED_URL (what
    # `make run` serves on). Outside local mode it must be set (a Host header is not trusted).
    BASE_URL: str | None = None
    SERVED_URL: str | None = None
    # Second opinions: turnaround targets by priority (hours); warn at this fraction left.
    OPINION_TARGET_HOURS: dict[str, float] = {"stat": 1, "urgent": 4, "routine": 48}
    OPINION_WARN_FRACTION = 0.25
    OPINION_AUTOSAVE_SECONDS = 5
    # PDF reports: render time limit (s), paper ("letter" or "A4"), archival variant, the
    # render process's memory cap (MiB; 0: none), and where exports are kept
    # (instance/exports when unset).
    PDF_TIMEOUT = 60.0
    PDF_PAGE_SIZE = "letter"
    PDF_VARIANT = "pdf/a-2b"
    PDF_MEMORY_MB = 2048
    EXPORT_ROOT: str | None = None
    # Peer review: RADPEER scores that open a discrepancy case (add "2a" to adjudicate it
    # too), and the days an ad-hoc review is due in.
    REVIEW_CASE_SCORES: tuple[str, ...] = ("2b", "3a", "3b")
    REVIEW_DUE_DAYS = 14
    # Audit anchoring: the MAC key (instance/audit-key when unset; never in the database),
    # the append-only checkpoint file (instance/audit-anchor.log when unset), a checkpoint
    # every this many entries, and a copy of each checkpoint to syslog (/dev/log).
    AUDIT_KEY: str | None = None
    # create_app compares the key's fingerprint with the database's and refuses another key
    # (qaportal/audit_key.py); the CLI checks in the commands that run for long (worker).
    AUDIT_KEY_CHECK = True
    # After start-up the app's own objects (modules, mappers, routes: about 200,000) are
    # moved out of the garbage collector's reach (gc.freeze, qaportal/gc_settle.py): a full
    # collection then walks only what requests left behind, not them (~100 ms each time in
    # a web worker otherwise). Off in tests, which build many apps in one process.
    GC_FREEZE = True
    # Key of the DICOM peers' credentials at rest (see qaportal/feeds/secrets.py).
    FEEDS_KEY: str | None = None
    AUDIT_ANCHOR_FILE: str | None = None
    AUDIT_CHECKPOINT_EVERY = 100
    # audit-verify checks a pass of this many entries or more in worker processes, one
    # range of seq each (0: one per CPU): CPU-bound, 2M entries take 78 s in one process.
    AUDIT_VERIFY_WORKERS = 0
    AUDIT_VERIFY_PARALLEL_MIN = 200_000
    AUDIT_SYSLOG = True
    # Results sent back to a peer: the portal's calling AE title (DICOM_LISTEN_AE, else
    # "QAPORTAL", when unset) and the time limit (s) of each step of a C-STORE or STOW-RS.
    DICOM_SEND_AE: str | None = None
    DICOM_SEND_TIMEOUT = 30.0
    # A frame or thumbnail of a series the user viewed this recently writes no new entry.
    AUDIT_SERIES_VIEW_MINUTES = 30
    # Job queue (huey): unset keeps it in instance/jobs.sqlite (one machine); a
    # redis://host:6379/N URL shares it between machines. Jobs of one portal share the name.
    JOB_QUEUE_URL: str | None = None
    JOB_QUEUE_NAME = "qaportal"
    # Deliveries of signed results to the requesting site: attempts before "failed", the
    # delay before the second attempt (doubled for each further one, capped at
    # DELIVERY_RETRY_MAX_SECONDS), and how long one attempt may hold its delivery before a
    # sweep hands it to another worker.
    DELIVERY_MAX_ATTEMPTS = 5
    DELIVERY_RETRY_BASE_SECONDS = 30.0
    DELIVERY_RETRY_MAX_SECONDS = 3600.0
    DELIVERY_LEASE_SECONDS = 600.0
    # DICOM listener (`qaportal dicom-listen`): its AE title, port and bind address; DICOM
    # TLS when a certificate and key (PEM files) are set, and client certificates required
    # (verified against this CA bundle) when DICOM_TLS_CA is set too.
    DICOM_LISTEN_AE = "QAPORTAL"
    DICOM_LISTEN_PORT = 11112
    DICOM_LISTEN_BIND = "127.0.0.1"
    DICOM_TLS_CERT: str | None = None
    DICOM_TLS_KEY: str | None = None
    DICOM_TLS_CA: str | None = None

    # Where image files are kept: "filesystem" (under IMAGE_ROOT) or "dicomweb" (a PACS at
    # IMAGE_STORE_URL, STOW-RS/WADO-RS; docs/deployment.md section 8). VERIFY_WRITES reads
    # each file back after storing it; DELETE "orthanc" also removes deleted files from an
    # Orthanc archive (DICOMweb has no deletion; "mapping" only forgets them).
    IMAGE_STORE = "filesystem"
    IMAGE_STORE_URL: str | None = None
    IMAGE_STORE_USERNAME: str | None = None
    IMAGE_STORE_PASSWORD: str | None = None
    IMAGE_STORE_TIMEOUT = 60.0
    IMAGE_STORE_VERIFY_WRITES = False
    IMAGE_STORE_DELETE = "mapping"


# Variables read from the environment, with their parsers.
def _bool(v: str) -> bool:
    return v.strip().lower() in {"1", "true", "yes", "on"}


def _roles(v: str) -> tuple[str, ...]:
    if v.strip().lower() == "none":
        return ()
    return tuple(r.strip() for r in v.split(",") if r.strip())


def _targets(v: str) -> dict[str, float]:
    """Parse "stat=1,urgent=4,routine=48" (hours per priority)."""
    result = dict(Defaults.OPINION_TARGET_HOURS)
    for part in v.split(","):
        if not part.strip():
            continue
        key, sep, hours = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in result:
            raise ValueError(f"expected priority=hours with priority in {sorted(result)}")
        value = float(hours)
        if not 0 < value <= 24 * 365:
            raise ValueError(f"{key}: hours must be positive")
        result[key] = value
    return result


ENV_SETTINGS: dict[str, Any] = {
    "DATABASE_URL": ("SQLALCHEMY_DATABASE_URI", str),
    "SECRET_KEY": ("SECRET_KEY", str),
    "LOCAL": ("LOCAL", _bool),
    "GC_FREEZE": ("GC_FREEZE", _bool),
    "PROXY_FIX": ("PROXY_FIX", _bool),
    "IDLE_TIMEOUT_MINUTES": ("IDLE_TIMEOUT_MINUTES", int),
    "SESSION_ABSOLUTE_HOURS": ("SESSION_ABSOLUTE_HOURS", float),
    "SIGN_IN_RATE_LIMIT": ("SIGN_IN_RATE_LIMIT", str),
    "RATELIMIT_STORAGE_URI": ("RATELIMIT_STORAGE_URI", str),
    "API_TOKEN_FAILURE_RATE_LIMIT": ("API_TOKEN_FAILURE_RATE_LIMIT", str),
    "API_TOKENS_PER_USER": ("API_TOKENS_PER_USER", int),
    "LOCKOUT_THRESHOLD": ("LOCKOUT_THRESHOLD", int),
    "LOCKOUT_WINDOW_MINUTES": ("LOCKOUT_WINDOW_MINUTES", int),
    "LOCKOUT_MINUTES": ("LOCKOUT_MINUTES", int),
    "REQUIRE_2FA_ROLES": ("REQUIRE_2FA_ROLES", _roles),
    "MAX_CONTENT_LENGTH": ("MAX_CONTENT_LENGTH", int),
    "UPLOAD_CHUNK_BYTES": ("UPLOAD_CHUNK_BYTES", int),
    "UPLOAD_MAX_FILE_BYTES": ("UPLOAD_MAX_FILE_BYTES", int),
    "UPLOAD_MAX_TOTAL_BYTES": ("UPLOAD_MAX_TOTAL_BYTES", int),
    "UPLOAD_MAX_FILES": ("UPLOAD_MAX_FILES", int),
    "IMAGE_ROOT": ("IMAGE_ROOT", str),
    "IMAGE_STORE": ("IMAGE_STORE", str),
    "IMAGE_STORE_URL": ("IMAGE_STORE_URL", str),
    "IMAGE_STORE_USERNAME": ("IMAGE_STORE_USERNAME", str),
    "IMAGE_STORE_PASSWORD": ("IMAGE_STORE_PASSWORD", str),
    "IMAGE_STORE_TIMEOUT": ("IMAGE_STORE_TIMEOUT", float),
    "IMAGE_STORE_VERIFY_WRITES": ("IMAGE_STORE_VERIFY_WRITES", _bool),
    "IMAGE_STORE_DELETE": ("IMAGE_STORE_DELETE", str),
    "CACHE_ROOT": ("CACHE_ROOT", str),
    "UPLOAD_TMP": ("UPLOAD_TMP", str),
    "RECEIVE_DIRECT_IO": ("RECEIVE_DIRECT_IO", _bool),
    "OHIF_DIR": ("OHIF_DIR", str),
    "OHIF_PRECOMPRESS": ("OHIF_PRECOMPRESS", _bool),
    "RENDER_MAX_PIXELS": ("RENDER_MAX_PIXELS", int),
    "MAX_FRAMES_PER_INSTANCE": ("MAX_FRAMES_PER_INSTANCE", int),
    "MAX_INFLATED_BYTES": ("MAX_INFLATED_BYTES", int),
    "FRAME_CACHE_MAX_BYTES": ("FRAME_CACHE_MAX_BYTES", int),
    "METADATA_CACHE_MAX_BYTES": ("METADATA_CACHE_MAX_BYTES", int),
    "VERIFIED_FILE_MAX_AGE_HOURS": ("VERIFIED_FILE_MAX_AGE_HOURS", float),
    "STORE_COPIES_MAX_BYTES": ("STORE_COPIES_MAX_BYTES", int),
    "SMTP_HOST": ("SMTP_HOST", str),
    "SMTP_PORT": ("SMTP_PORT", int),
    "SMTP_USERNAME": ("SMTP_USERNAME", str),
    "SMTP_PASSWORD": ("SMTP_PASSWORD", str),
    "SMTP_STARTTLS": ("SMTP_STARTTLS", _bool),
    "MAIL_FROM": ("MAIL_FROM", str),
    "BASE_URL": ("BASE_URL", str),
    "SERVED_URL": ("SERVED_URL", str),
    "OPINION_TARGET_HOURS": ("OPINION_TARGET_HOURS", _targets),
    "OPINION_WARN_FRACTION": ("OPINION_WARN_FRACTION", float),
    "PDF_TIMEOUT": ("PDF_TIMEOUT", float),
    "PDF_PAGE_SIZE": ("PDF_PAGE_SIZE", str),
    "PDF_VARIANT": ("PDF_VARIANT", str),
    "PDF_MEMORY_MB": ("PDF_MEMORY_MB", int),
    "EXPORT_ROOT": ("EXPORT_ROOT", str),
    "REVIEW_CASE_SCORES": ("REVIEW_CASE_SCORES", _roles),  # comma-separated, e.g. 2a,2b,3a,3b
    "REVIEW_DUE_DAYS": ("REVIEW_DUE_DAYS", int),
    "REVIEW_ACCESS_DAYS": ("REVIEW_ACCESS_DAYS", float),
    "LIST_PAGE_SIZE": ("LIST_PAGE_SIZE", int),
    "AUDIT_KEY": ("AUDIT_KEY", str),
    "AUDIT_ANCHOR_FILE": ("AUDIT_ANCHOR_FILE", str),
    "AUDIT_CHECKPOINT_EVERY": ("AUDIT_CHECKPOINT_EVERY", int),
    "AUDIT_SYSLOG": ("AUDIT_SYSLOG", _bool),
    "AUDIT_VERIFY_WORKERS": ("AUDIT_VERIFY_WORKERS", int),
    "AUDIT_VERIFY_PARALLEL_MIN": ("AUDIT_VERIFY_PARALLEL_MIN", int),
    "DICOMWEB_CORS_ORIGINS": ("DICOMWEB_CORS_ORIGINS", _roles),  # comma-separated origins
    "JOB_QUEUE_URL": ("JOB_QUEUE_URL", str),
    "JOB_QUEUE_NAME": ("JOB_QUEUE_NAME", str),
    "DELIVERY_MAX_ATTEMPTS": ("DELIVERY_MAX_ATTEMPTS", int),
    "DELIVERY_RETRY_BASE_SECONDS": ("DELIVERY_RETRY_BASE_SECONDS", float),
    "DELIVERY_RETRY_MAX_SECONDS": ("DELIVERY_RETRY_MAX_SECONDS", float),
    "DELIVERY_LEASE_SECONDS": ("DELIVERY_LEASE_SECONDS", float),
    "DICOM_SEND_AE": ("DICOM_SEND_AE", str),
    "DICOM_SEND_TIMEOUT": ("DICOM_SEND_TIMEOUT", float),
    "HL7_LISTEN_PORT": ("HL7_LISTEN_PORT", int),
    "HL7_LISTEN_BIND": ("HL7_LISTEN_BIND", str),
    "HL7_MAX_MESSAGE_BYTES": ("HL7_MAX_MESSAGE_BYTES", int),
    "HL7_IDLE_TIMEOUT": ("HL7_IDLE_TIMEOUT", float),
    "DICOM_LISTEN_AE": ("DICOM_LISTEN_AE", str),
    "DICOM_LISTEN_PORT": ("DICOM_LISTEN_PORT", int),
    "DICOM_LISTEN_BIND": ("DICOM_LISTEN_BIND", str),
    "DICOM_TLS_CERT": ("DICOM_TLS_CERT", str),
    "DICOM_TLS_KEY": ("DICOM_TLS_KEY", str),
    "DICOM_TLS_CA": ("DICOM_TLS_CA", str),
    "FEEDS_KEY": ("FEEDS_KEY", str),
}


def load(app, overrides: dict[str, Any] | None) -> None:
    """Fill app.config from defaults, instance/config.py, the environment and overrides."""
    app.config.from_object(Defaults)
    app.config.from_pyfile("config.py", silent=True)
    for name, (key, parse) in ENV_SETTINGS.items():
        raw = os.environ.get(f"QAPORTAL_{name}")
        if raw is not None and raw != "":
            try:
                app.config[key] = parse(raw)
            except ValueError as exc:
                raise ConfigError(f"QAPORTAL_{name}={raw!r} is not valid: {exc}") from exc
    if overrides:
        app.config.update(overrides)
    # Imported here: config_checks imports ConfigError from this module.
    from qaportal.config_checks import check_links, finish

    finish(app)
    check_links(app.config)
