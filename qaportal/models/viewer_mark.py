"""What a radiologist marked in the viewer, linked to their open opinion or review.

One row per stored SR (measurements) or KOS (key images). The row names the stored
instance and keeps what was read from it: each measurement (label, concept, value, unit,
finding site, graphic type and points, the referenced image as an instance id of the
study under opinion or review, and frame) and each key image, as JSON. It holds no UID:
for a blind reviewer the document referenced remapped UIDs, mapped back to the original
instances when linked; nothing shown from a row can carry an original identifier.

Marks belong to the work they were made for: once the opinion is signed or the review
submitted they are immutable (ORM guard below; database triggers too), and no mark is
added after.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from qaportal.models.base import Base, enum_check, utcnow

if TYPE_CHECKING:
    from qaportal.models.opinion import OpinionRequest
    from qaportal.models.review import ReviewAssignment
    from qaportal.models.study import Instance
    from qaportal.models.user import User

MARK_KINDS = ("sr", "kos")
CLOSED_MESSAGE = "marks of a signed opinion or a submitted review are immutable"


class ImmutableMarksError(RuntimeError):
    """A mark of a signed opinion or submitted review was about to change."""


class ViewerMark(Base):
    """One SR or KOS saved from the viewer, linked to an opinion request or an assignment."""

    __tablename__ = "viewer_marks"
    __table_args__ = (
        enum_check("kind", MARK_KINDS),
        sa.CheckConstraint("(opinion_request_id IS NULL) <> (review_assignment_id IS NULL)",
                           name="one_parent"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    opinion_request_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("opinion_requests.id"), index=True)
    review_assignment_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("review_assignments.id"), index=True)
    # The stored SR or KOS (in the author's own copy of the study).
    instance_id: Mapped[int] = mapped_column(sa.ForeignKey("instances.id"), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(4))
    title: Mapped[str] = mapped_column(sa.String(200), default="")
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # [{label, concept, value, unit, finding, finding_site, graphic_type, points,
    #   coordinates, image_id, frame[, image_points]}, ...]; image_id: the referenced
    #   Instance.id or None. A 3D mark (points in mm) placed on the acquired image whose
    #   plane holds it also has that image's id and frame and image_points in its pixels.
    measurements: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    # [{image_id, frame}, ...]: the key images (a KOS's selection, an SR's measured images).
    key_images: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)

    opinion_request: Mapped[OpinionRequest | None] = relationship()
    review_assignment: Mapped[ReviewAssignment | None] = relationship()
    instance: Mapped[Instance] = relationship()
    author: Mapped[User] = relationship()


def _closed(session: Session, mark: ViewerMark) -> bool:
    from qaportal.models.opinion import OpinionRequest
    from qaportal.models.review import Review

    if mark.opinion_request_id is not None:
        return session.scalar(sa.select(OpinionRequest.signed_at).where(
            OpinionRequest.id == mark.opinion_request_id)) is not None
    return session.scalar(sa.select(Review.id).where(
        Review.assignment_id == mark.review_assignment_id)) is not None


@sa.event.listens_for(Session, "before_flush")
def _marks_of_signed_work_are_immutable(session: Session, flush_context, instances) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if not isinstance(obj, ViewerMark):
            continue
        state = sa.inspect(obj)
        if obj in session.dirty and not any(state.attrs[c.key].history.has_changes()
                                            for c in state.mapper.column_attrs):
            continue
        before = state.committed_state  # the previous values of changed columns
        original = ViewerMark(
            opinion_request_id=before.get("opinion_request_id", obj.opinion_request_id),
            review_assignment_id=before.get("review_assignment_id", obj.review_assignment_id))
        with session.no_autoflush:
            if _closed(session, original) or _closed(session, obj):
                raise ImmutableMarksError(f"viewer mark {obj.id}: {CLOSED_MESSAGE}")


_CLOSED_SQL = (
    "EXISTS (SELECT 1 FROM opinion_requests WHERE opinion_requests.id = {r}.opinion_request_id"
    " AND opinion_requests.signed_at IS NOT NULL) OR EXISTS (SELECT 1 FROM reviews WHERE "
    "reviews.assignment_id = {r}.review_assignment_id)"
)
IMMUTABLE_TRIGGERS = {
    "sqlite": [
        "CREATE TRIGGER viewer_marks_closed_no_insert BEFORE INSERT ON viewer_marks "
        f"WHEN {_CLOSED_SQL.format(r='NEW')} "
        f"BEGIN SELECT RAISE(ABORT, '{CLOSED_MESSAGE}'); END",
        "CREATE TRIGGER viewer_marks_closed_no_update BEFORE UPDATE ON viewer_marks "
        f"WHEN {_CLOSED_SQL.format(r='OLD')} OR {_CLOSED_SQL.format(r='NEW')} "
        f"BEGIN SELECT RAISE(ABORT, '{CLOSED_MESSAGE}'); END",
        "CREATE TRIGGER viewer_marks_closed_no_delete BEFORE DELETE ON viewer_marks "
        f"WHEN {_CLOSED_SQL.format(r='OLD')} "
        f"BEGIN SELECT RAISE(ABORT, '{CLOSED_MESSAGE}'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION viewer_marks_closed() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP <> 'INSERT' AND ({_CLOSED_SQL.format(r='OLD')}) THEN "
        f"RAISE EXCEPTION '{CLOSED_MESSAGE}'; END IF; "
        f"IF TG_OP <> 'DELETE' AND ({_CLOSED_SQL.format(r='NEW')}) THEN "
        f"RAISE EXCEPTION '{CLOSED_MESSAGE}'; END IF; "
        "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER viewer_marks_closed BEFORE INSERT OR UPDATE OR DELETE ON viewer_marks "
        "FOR EACH ROW EXECUTE FUNCTION viewer_marks_closed()",
    ],
}
DROP_IMMUTABLE_TRIGGERS = {
    "sqlite": [f"DROP TRIGGER IF EXISTS viewer_marks_closed_no_{op}"
               for op in ("insert", "update", "delete")],
    "postgresql": ["DROP TRIGGER IF EXISTS viewer_marks_closed ON viewer_marks",
                   "DROP FUNCTION IF EXISTS viewer_marks_closed()"],
}


@sa.event.listens_for(ViewerMark.__table__, "after_create")
def _add_immutable_triggers(target, connection, **kw) -> None:
    for stmt in IMMUTABLE_TRIGGERS.get(connection.dialect.name, []):
        connection.exec_driver_sql(stmt)
