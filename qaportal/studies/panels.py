"""The radiologist's home-page panel: recent studies and the upload button."""

from __future__ import annotations

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.home.panels import panel
from qaportal.models import Study, User


@panel("Your studies", "studies/panel.html", ("radiologist",), order=20)
def recent_studies(user: User) -> dict:
    """Return the user's five latest studies with images (then report-only ones)."""
    total = db.session.scalar(sa.select(sa.func.count()).where(Study.owner_id == user.id))
    # Those with images, then (when fewer than five have any) the report-only ones: each
    # read newest first off an index, not one sort of every study of theirs.
    recent = list(db.session.scalars(newest_studies_stmt(user.id, images=True).limit(5)))
    if len(recent) < 5 and len(recent) < total:
        recent += db.session.scalars(
            newest_studies_stmt(user.id, images=False).limit(5 - len(recent)))
    return {"recent": recent, "total": total}


def newest_studies_stmt(owner_id: int, *, images: bool) -> sa.Select:
    """An uploader's studies with images (or only those without), newest first: the order
    of ix_studies_owner_created_at_id."""
    has = Study.instance_count > 0 if images else Study.instance_count <= 0
    return (sa.select(Study).where(Study.owner_id == owner_id, has)
            .order_by(Study.created_at.desc(), Study.id.desc()))
