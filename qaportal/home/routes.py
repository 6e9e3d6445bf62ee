"""Home page and health check."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from flask import current_app, jsonify, render_template
from flask_login import current_user

from qaportal import audit
from qaportal.extensions import db
from qaportal.home import bp
from qaportal.home.panels import panel, panels_for
from qaportal.models import AuditEvent, Study, User
from qaportal.models.credentials import validity_status


@bp.route("/")
def index():
    panels = panels_for(current_user)
    shown = _studies_shown(panels)
    if shown:  # panels listing studies or requests show patient data: a read to audit
        audit.record("home.viewed", studies=shown)
        db.session.commit()
    return render_template("home/index.html", panels=panels)


def _studies_shown(panels: list) -> list[int]:
    """Return the ids of the studies the panels list (as studies or as rows naming one)."""
    ids: set[int] = set()
    for _panel, context in panels:
        for value in context.values():
            if not isinstance(value, list | tuple):
                continue
            for item in value:
                if isinstance(item, Study):
                    ids.add(item.id)
                elif isinstance(getattr(item, "study_id", None), int):
                    ids.add(item.study_id)
    return sorted(ids)


@bp.route("/health")
def health():
    try:
        db.session.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        current_app.logger.warning("health check: database unreachable")
        return jsonify(status="error", database="error"), 503
    return jsonify(status="ok", database="ok")


@panel("Your credentials", "home/panel_credentials.html", ("radiologist",), order=90)
def _credentials(user: User) -> dict:
    today = date.today()
    warn = current_app.config["CREDENTIAL_EXPIRY_WARNING_DAYS"]
    items = [
        (f"Licence {lic.jurisdiction}", lic.valid_to, validity_status(lic.valid_to, today, warn))
        for lic in user.licenses
    ] + [
        (f"{c.board} {c.specialty}", c.expires_on, validity_status(c.expires_on, today, warn))
        for c in user.certifications
    ]
    return {"items": items, "attention": [i for i in items if i[2] != "valid"]}


@panel("Administration", "home/panel_admin.html", ("admin",), order=80)
def _admin(user: User) -> dict:
    total = db.session.scalar(sa.select(sa.func.count()).select_from(User))
    active = db.session.scalar(sa.select(sa.func.count()).where(User.active.is_(True)))
    return {"total": total, "active": active}


@panel("Audit log", "home/panel_audit.html", ("qa_manager", "admin"), order=85)
def _audit(user: User) -> dict:
    stmt = sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(5)
    return {"recent": db.session.scalars(stmt).all()}
