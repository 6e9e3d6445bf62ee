"""Notify users: an in-app notification, and an e-mail (SMTP, or an .eml in the outbox).

Messages name no patient: only what happened and a link to the object in the portal.
"""

from __future__ import annotations

import os
import smtplib
import tempfile
import unicodedata
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import sqlalchemy as sa
from flask import current_app, has_request_context, request

from qaportal.extensions import db
from qaportal.models import Notification, User


def notify(user: User, kind: str, message: str, link: str = "", *,
           dedupe_key: str | None = None, email: bool = True) -> Notification | None:
    """Create a notification (once per dedupe_key) and queue its e-mail; the caller commits."""
    if dedupe_key is not None:
        exists = db.session.scalar(
            sa.select(Notification.id).where(Notification.dedupe_key == dedupe_key)
        )
        if exists is not None:
            return None
        note = _insert_once(user_id=user.id, kind=kind, message=message[:300], link=link,
                            dedupe_key=dedupe_key)
        if note is None:
            return None  # another run sent it a moment ago
    else:
        note = Notification(user_id=user.id, kind=kind, message=message[:300], link=link)
        db.session.add(note)
        db.session.flush()
    if email and user.active:
        # Sent only once the transaction commits: a rolled-back action mails nobody.
        pending = db.session.info.setdefault(PENDING_KEY, [])
        subject = one_line(f"[qaportal] {message[:120]}")
        pending.append((user.email, subject, _body(message, link)))
    return note


PENDING_KEY = "qaportal_pending_mail"


def one_line(text: str) -> str:
    """Return text with control characters (CR/LF would break a mail header) as spaces."""
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cf") else c for c in text).strip()


def _insert_once(**values) -> Notification | None:
    """Insert a notification unless its dedupe_key exists; None when it did.

    INSERT ... ON CONFLICT DO NOTHING, so that two overlapping runs (sla-check from cron)
    never fail on the unique key: the later one waits for the earlier one and skips.
    """
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the portal runs on SQLite or PostgreSQL
        raise RuntimeError(f"unsupported database: {dialect}")
    stmt = (insert(Notification).values(**values)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(Notification.id))
    new_id = db.session.execute(stmt).scalar_one_or_none()
    return None if new_id is None else db.session.get(Notification, new_id)


@sa.event.listens_for(sa.orm.Session, "after_commit")
def _send_pending(session) -> None:
    pending = session.info.pop(PENDING_KEY, None)
    for to, subject, body in pending or ():
        try:
            send_email(to, subject, body)
        except Exception as exc:  # the action is saved: a failed mail must not undo it
            # Logged without recipient or subject (they may name a patient's case).
            current_app.logger.error("e-mail after commit failed (%s); the saved action stands",
                                     type(exc).__name__)


@sa.event.listens_for(sa.orm.Session, "after_rollback")
def _drop_pending(session) -> None:
    session.info.pop(PENDING_KEY, None)


def link_base() -> str:
    """Return the absolute base of e-mail links ("" when none can be trusted).

    QAPORTAL_BASE_URL when set. In local mode otherwise the address the request came to,
    else the one `make run` serves on (QAPORTAL_SERVED_URL): never a guessed port. Outside
    local mode the Host header is never used (anyone can send one).
    """
    cfg = current_app.config
    if cfg.get("BASE_URL"):
        return str(cfg["BASE_URL"]).rstrip("/")
    if cfg.get("LOCAL"):
        if has_request_context():
            return request.host_url.rstrip("/")
        if cfg.get("SERVED_URL"):
            return str(cfg["SERVED_URL"]).rstrip("/")
    return ""


def _body(message: str, link: str) -> str:
    base = link_base() if link.startswith("/") else ""
    if link.startswith("/") and not base and not current_app.extensions.get("qaportal.no_base"):
        current_app.extensions["qaportal.no_base"] = True  # said once per process
        current_app.logger.warning(
            "QAPORTAL_BASE_URL is not set: e-mail links carry no host name")
    url = f"{base}{link}"
    return (
        f"{message}\n\nOpen it in qaportal: {url}\n\n"
        "This message contains no patient information; sign in to see the case.\n"
    )


def unread_count(user: User) -> int:
    """Return how many notifications the user has not read."""
    return db.session.scalar(
        sa.select(sa.func.count()).where(
            Notification.user_id == user.id, Notification.read_at.is_(None)
        )
    ) or 0


def send_email(to: str, subject: str, body: str) -> None:
    """Send by SMTP when configured; otherwise write an .eml file to the outbox."""
    cfg = current_app.config
    msg = EmailMessage()
    msg["From"] = cfg["MAIL_FROM"]
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="qaportal")
    msg.set_content(body)
    if cfg.get("SMTP_HOST"):
        try:
            with smtplib.SMTP(cfg["SMTP_HOST"], cfg["SMTP_PORT"], timeout=10) as smtp:
                if cfg["SMTP_STARTTLS"]:
                    smtp.starttls()
                if cfg.get("SMTP_USERNAME"):
                    smtp.login(cfg["SMTP_USERNAME"], cfg["SMTP_PASSWORD"] or "")
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            # The in-app notification stands; the mail is kept in the outbox for a resend.
            current_app.logger.warning(
                "SMTP delivery failed (%s); kept in outbox", type(exc).__name__
            )
            _write_outbox(msg)
        return
    _write_outbox(msg)


def _write_outbox(msg: EmailMessage) -> Path:
    outbox = Path(current_app.config["OUTBOX_DIR"])
    outbox.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=outbox, prefix=".tmp-", suffix=".eml")
    with os.fdopen(fd, "wb") as fh:
        fh.write(bytes(msg))
        fh.flush()
        os.fsync(fh.fileno())
    final = outbox / (msg["Message-ID"].strip("<>").replace("@", "_") + ".eml")
    os.replace(tmp, final)
    return final
