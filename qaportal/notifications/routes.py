"""The notification list; opening one marks it read."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, redirect, render_template, url_for
from flask_login import current_user

from qaportal.auth.forms import EmptyForm
from qaportal.extensions import db
from qaportal.models import Notification, utcnow
from qaportal.notifications import bp
from qaportal.notify import unread_count

PAGE_SIZE = 100


@bp.app_context_processor
def _bell():
    def count() -> int:
        if not current_user.is_authenticated:
            return 0
        return unread_count(current_user)

    return {"notification_count": count}


@bp.route("/")
def index():
    items = db.session.scalars(
        sa.select(Notification).where(Notification.user_id == current_user.id)
        .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(PAGE_SIZE)
    ).all()
    return render_template("notifications/index.html", items=items, form=EmptyForm())


def _safe_link(link: str) -> str:
    """Follow only links inside the portal."""
    if link.startswith("/") and not link.startswith("//") and "\\" not in link:
        return link
    return url_for("notifications.index")


@bp.route("/<int:note_id>/open", methods=["POST"])
def open_(note_id: int):
    note = db.session.get(Notification, note_id)
    if note is None or note.user_id != current_user.id:
        abort(404)
    if not EmptyForm().validate_on_submit():
        abort(400)
    if note.read_at is None:
        note.read_at = utcnow()
        db.session.commit()
    return redirect(_safe_link(note.link))


@bp.route("/read-all", methods=["POST"])
def read_all():
    if not EmptyForm().validate_on_submit():
        abort(400)
    db.session.execute(
        sa.update(Notification)
        .where(Notification.user_id == current_user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )
    db.session.commit()
    return redirect(url_for("notifications.index"))
