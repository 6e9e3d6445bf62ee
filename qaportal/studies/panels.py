"""The radiologist's home-page panel: recent studies and the upload button."""

from __future__ import annotations

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.home.panels import panel
from qaportal.models import Study, User


@panel("Your studies", "studies/panel.html", ("radiologist",), order=20)
def recent_studies(user: User) -> dict:
    """Return the user's five latest studies with images (then report-only ones)."""
    mine = sa.select(Study).where(Study.owner_id == user.id)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(mine.subquery()))
    with_images = sa.case((Study.instance_count > 0, 0), else_=1)
    recent = db.session.scalars(
        mine.order_by(with_images, Study.created_at.desc(), Study.id.desc()).limit(5)
    ).all()
    return {"recent": recent, "total": total}
