"""The notification list; opening one marks it read."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user

from qaportal.auth.forms import EmptyForm
from qaportal.extensions import db
from qaportal.models import Notification, utcnow
from qaportal.notifications import bp
from qaportal.notify import unread_count
from qaportal.paging import Key, keyset_page


@bp.app_context_processor
def _bell():
    def count() -> int:
        if not current_user.is_authenticated:
            return 0
        return unread_count(current_user)

    return {"notification_count": count}


# Newest first: the order of ix_notifications_user_created (user_id, created_at DESC, id DESC).
ORDER = (Key(Notification.created_at, desc=True), Key(Notification.id, desc=True))


def notifications_stmt(user_id: int) -> sa.Select:
    """A user's notifications, newest first."""
    return (sa.select(Notification).where(Notification.user_id == user_id)
            .order_by(*[k.order() for k in ORDER]))


@bp.route("/")
def index():
    page = keyset_page(db.session, notifications_stmt(current_user.id), ORDER, Notification.id,
                       request.args.get("cursor"), current_app.config["LIST_PAGE_SIZE"])
    return render_template("notifications/index.html", items=page.items, page=page,
                           form=EmptyForm())


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
