"""Study list and study page."""

from __future__ import annotations

import sqlalchemy as sa
from flask import render_template, request
from flask_login import current_user

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import Study
from qaportal.permissions import can_edit_study, read_blinded, role_required
from qaportal.studies import bp
from qaportal.studies.actions import actions_for
from qaportal.studies.presenter import present
from qaportal.studies.queries import study_for, visible_studies

PAGE_SIZE = 50


@bp.route("/")
@role_required("radiologist", "reviewer", "qa_manager", "admin")
def index():
    page = max(1, request.args.get("page", 1, type=int))
    stmt = visible_studies(current_user).order_by(Study.created_at.desc(), Study.id.desc())
    total = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery()))
    studies = db.session.scalars(stmt.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    from qaportal.permissions import study_access_mode

    rows = [(s, present(s, study_access_mode(current_user, s))) for s in studies]
    audit.record("study.list_viewed", page=page, count=len(rows))
    db.session.commit()
    return render_template("studies/index.html", rows=rows, total=total, page=page,
                           pages=max(1, -(-total // PAGE_SIZE)))


@bp.route("/<int:study_id>")
def detail(study_id: int):
    study, mode = study_for(current_user, study_id)
    view = present(study, mode)
    audit.record("study.viewed", study, mode=mode)
    db.session.commit()
    # Blind peer review: a reviewer's or committee member's access never shows the reader.
    show_read = (mode == "full" and study.read is not None
                 and not read_blinded(current_user, study))
    return render_template(
        "studies/detail.html", study=study, view=view, mode=mode,
        actions=actions_for(current_user, study, mode),
        can_edit=can_edit_study(current_user, study), show_read=show_read,
    )
