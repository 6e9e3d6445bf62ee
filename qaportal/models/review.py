"""Peer review: sampling rules and runs, assignments, submitted reviews and amendments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from qaportal.models.base import Base, enum_check, utcnow

if TYPE_CHECKING:
    from qaportal.models.discrepancy import DiscrepancyCase
    from qaportal.models.study import OriginalRead
    from qaportal.models.user import User

# RADPEER 2016: 1 concur; 2/3 discrepancy (3: should be made most of the time);
# suffix a: unlikely clinically significant, b: likely.
RADPEER_SCORES = ("1", "2a", "2b", "3a", "3b")
REVIEW_SCORES = (*RADPEER_SCORES, "unable")
SCORE_LABELS = {
    "1": "1 — concur with interpretation",
    "2a": "2a — discrepancy, not ordinarily expected; unlikely clinically significant",
    "2b": "2b — discrepancy, not ordinarily expected; likely clinically significant",
    "3a": "3a — discrepancy, should be made most of the time; unlikely significant",
    "3b": "3b — discrepancy, should be made most of the time; likely significant",
    "unable": "Unable to assess",
}
DISCREPANCY_SCORES = ("2a", "2b", "3a", "3b")  # need a category and a comment
SIGNIFICANT_SCORES = ("2b", "3a", "3b")
CATEGORIES = ("perceptual", "interpretive", "communication", "technical")
CATEGORY_LABELS = {
    "perceptual": "Perceptual (missed finding)",
    "interpretive": "Interpretive (seen, misinterpreted)",
    "communication": "Communication / recommendation",
    "technical": "Technical / procedural",
}
# The 2009 four-point scale, optionally suffixed, as imported from older programmes.
LEGACY_SCORES = ("1", "2", "2a", "2b", "3", "3a", "3b", "4", "4a", "4b")
SAMPLING_METHODS = ("percent", "every_nth", "per_reader_month")
METHOD_LABELS = {
    "percent": "A percentage of eligible reads",
    "every_nth": "Every Nth exam",
    "per_reader_month": "N per reader per month",
}
ASSIGNMENT_SOURCES = ("sample", "adhoc", "legacy")
ASSIGNMENT_STATUSES = ("assigned", "submitted", "cancelled")

_DISC = ", ".join(f"'{s}'" for s in DISCREPANCY_SCORES)
_EXPLAINED = f"score NOT IN ({_DISC}) OR (category IS NOT NULL AND comment <> '')"
# Legacy imports keep what the old programme recorded; they are labelled, not completed.
_EXPLAINED_OR_LEGACY = f"legacy_score IS NOT NULL OR {_EXPLAINED}"


class ImmutableReviewError(RuntimeError):
    """A submitted review or an amendment was about to be changed in place."""


class SamplingRule(Base):
    """Which finalized reads are eligible, how many to sample, and who reviews them."""

    __tablename__ = "sampling_rules"
    __table_args__ = (
        enum_check("method", SAMPLING_METHODS),
        sa.CheckConstraint("percent IS NULL OR (percent > 0 AND percent <= 100)",
                           name="percent_range"),
        sa.CheckConstraint("every_n IS NULL OR every_n >= 1", name="every_n_positive"),
        sa.CheckConstraint("per_reader IS NULL OR per_reader >= 1", name="per_reader_positive"),
        sa.CheckConstraint("due_days >= 1", name="due_days_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    modality: Mapped[str | None] = mapped_column(sa.String(16))
    reader_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    period_start: Mapped[date | None]
    period_end: Mapped[date | None]
    method: Mapped[str] = mapped_column(sa.String(20), default="percent")
    percent: Mapped[float | None]
    every_n: Mapped[int | None]
    per_reader: Mapped[int | None]
    subspecialty: Mapped[str | None] = mapped_column(sa.String(20))  # preferred reviewers
    deidentify: Mapped[bool] = mapped_column(default=True)
    due_days: Mapped[int] = mapped_column(default=14)
    active: Mapped[bool] = mapped_column(default=True)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    reader: Mapped[User | None] = relationship(foreign_keys=[reader_id])
    runs: Mapped[list[SamplingRun]] = relationship(back_populates="rule",
                                                   order_by="SamplingRun.id.desc()")

    def params(self) -> dict[str, Any]:
        """Return the rule's parameters as a snapshot kept with each run."""
        return {
            "modality": self.modality, "reader_id": self.reader_id,
            "period_start": self.period_start.isoformat() if self.period_start else None,
            "period_end": self.period_end.isoformat() if self.period_end else None,
            "method": self.method, "percent": self.percent, "every_n": self.every_n,
            "per_reader": self.per_reader, "subspecialty": self.subspecialty,
            "deidentify": self.deidentify, "due_days": self.due_days,
        }


class SamplingRun(Base):
    """One committed run of a rule: the seed, the candidates it saw, what it selected."""

    __tablename__ = "sampling_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(sa.ForeignKey("sampling_rules.id"), index=True)
    seed: Mapped[int] = mapped_column(sa.BigInteger)
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    # [[read_id, reader_id, "YYYY-MM"], ...] in candidate order: enough to replay the draw.
    candidates: Mapped[list] = mapped_column(sa.JSON, default=list)
    selected: Mapped[list] = mapped_column(sa.JSON, default=list)  # read ids
    run_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    run_at: Mapped[datetime] = mapped_column(default=utcnow)

    rule: Mapped[SamplingRule] = relationship(back_populates="runs")
    assignments: Mapped[list[ReviewAssignment]] = relationship(back_populates="run")


class ReviewAssignment(Base):
    """A read given to a reviewer: sampled, ad hoc, or imported from a legacy programme."""

    __tablename__ = "review_assignments"
    __table_args__ = (
        # Never the same case twice to the same reviewer.
        sa.UniqueConstraint("read_id", "reviewer_id"),
        enum_check("source", ASSIGNMENT_SOURCES),
        enum_check("status", ASSIGNMENT_STATUSES),
        sa.CheckConstraint("source <> 'sample' OR run_id IS NOT NULL", name="sample_has_run"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    read_id: Mapped[int] = mapped_column(sa.ForeignKey("original_reads.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    source: Mapped[str] = mapped_column(sa.String(10), default="sample")
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sampling_runs.id"), index=True)
    deidentified: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(sa.String(12), default="assigned", index=True)
    due_at: Mapped[datetime | None]
    assigned_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)
    impression: Mapped[str] = mapped_column(sa.Text, default="")
    impression_at: Mapped[datetime | None]
    revealed_at: Mapped[datetime | None]
    submitted_at: Mapped[datetime | None]

    read: Mapped[OriginalRead] = relationship()
    reviewer: Mapped[User] = relationship(foreign_keys=[reviewer_id])
    run: Mapped[SamplingRun | None] = relationship(back_populates="assignments")
    review: Mapped[Review | None] = relationship(back_populates="assignment", uselist=False)

    def is_overdue(self, now: datetime) -> bool:
        """Return True when the review is still open past its due date."""
        return self.status == "assigned" and self.due_at is not None and self.due_at < now


# A reviewer's worklist: their assignments in one state, the submitted ones newest first.
sa.Index("ix_review_assignments_reviewer_status_submitted", ReviewAssignment.reviewer_id,
         ReviewAssignment.status, ReviewAssignment.submitted_at.desc(),
         ReviewAssignment.id.desc())
# ...the open ones by due date (NULLs last, PostgreSQL's default for ASC) (0020).
sa.Index("ix_review_assignments_reviewer_status_due", ReviewAssignment.reviewer_id,
         ReviewAssignment.status, ReviewAssignment.due_at, ReviewAssignment.id)


@dataclass(frozen=True)
class EffectiveScore:
    """A review's score as it stands after any amendments."""

    score: str
    category: str | None
    comment: str
    learning_case: bool
    amended: bool


class Review(Base):
    """A submitted peer review; immutable (amendments are separate rows)."""

    __tablename__ = "reviews"
    __table_args__ = (
        enum_check("score", REVIEW_SCORES),
        enum_check("category", CATEGORIES),
        enum_check("legacy_score", LEGACY_SCORES),
        sa.CheckConstraint(_EXPLAINED_OR_LEGACY, name="discrepancy_explained"),
        sa.CheckConstraint("score <> 'unable' OR unable_reason <> ''", name="unable_explained"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(sa.ForeignKey("review_assignments.id"),
                                               unique=True)
    score: Mapped[str] = mapped_column(sa.String(8))
    unable_reason: Mapped[str] = mapped_column(sa.Text, default="")
    category: Mapped[str | None] = mapped_column(sa.String(20))
    comment: Mapped[str] = mapped_column(sa.Text, default="")
    learning_case: Mapped[bool] = mapped_column(default=False)
    legacy_score: Mapped[str | None] = mapped_column(sa.String(4))  # 2009 scale, as imported
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    assignment: Mapped[ReviewAssignment] = relationship(back_populates="review")
    amendments: Mapped[list[ReviewAmendment]] = relationship(
        back_populates="review", order_by="ReviewAmendment.id"
    )
    case: Mapped[DiscrepancyCase | None] = relationship(back_populates="review", uselist=False)

    @property
    def effective(self) -> EffectiveScore:
        """Return the score as amended last, or as submitted."""
        if self.amendments:
            a = self.amendments[-1]
            return EffectiveScore(a.score, a.category, a.comment, a.learning_case, True)
        return EffectiveScore(self.score, self.category, self.comment, self.learning_case,
                              False)


class ReviewAmendment(Base):
    """A QA manager's correction of a review, with the reason; the original stays."""

    __tablename__ = "review_amendments"
    __table_args__ = (
        enum_check("score", REVIEW_SCORES),
        enum_check("category", CATEGORIES),
        sa.CheckConstraint(_EXPLAINED, name="discrepancy_explained"),
        sa.CheckConstraint("reason <> ''", name="reason_given"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(sa.ForeignKey("reviews.id"), index=True)
    amended_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    amended_at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(sa.Text)
    score: Mapped[str] = mapped_column(sa.String(8))
    category: Mapped[str | None] = mapped_column(sa.String(20))
    comment: Mapped[str] = mapped_column(sa.Text, default="")
    learning_case: Mapped[bool] = mapped_column(default=False)

    review: Mapped[Review] = relationship(back_populates="amendments")
    amended_by: Mapped[User] = relationship()


@sa.event.listens_for(Session, "before_flush")
def _reviews_are_immutable(session: Session, flush_context, instances) -> None:
    for obj in session.dirty:
        if isinstance(obj, Review | ReviewAmendment):
            state = sa.inspect(obj)
            changed = [c.key for c in state.mapper.column_attrs
                       if state.attrs[c.key].history.has_changes()]
            if changed:
                raise ImmutableReviewError(
                    f"{type(obj).__name__} {obj.id} cannot be changed ({', '.join(changed)})")
    for obj in session.deleted:
        if isinstance(obj, Review | ReviewAmendment):
            raise ImmutableReviewError(f"{type(obj).__name__} {obj.id} cannot be deleted")


# Submitted reviews and amendments are immutable in the database too: raw SQL cannot edit
# or delete them (the ORM guard above gives the clear error first).
IMMUTABLE_TRIGGERS = {
    "sqlite": [
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} rows are immutable'); END"
        for table in ("reviews", "review_amendments") for op in ("UPDATE", "DELETE")
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION review_rows_immutable() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' rows are immutable'; END $$",
        *[
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION review_rows_immutable()"
            for table in ("reviews", "review_amendments")
        ],
    ],
}
DROP_IMMUTABLE_TRIGGERS = {
    "sqlite": [
        f"DROP TRIGGER IF EXISTS {table}_no_{op.lower()}"
        for table in ("reviews", "review_amendments") for op in ("UPDATE", "DELETE")
    ],
    "postgresql": [
        "DROP TRIGGER IF EXISTS reviews_immutable ON reviews",
        "DROP TRIGGER IF EXISTS review_amendments_immutable ON review_amendments",
        "DROP FUNCTION IF EXISTS review_rows_immutable()",
    ],
}


@sa.event.listens_for(ReviewAmendment.__table__, "after_create")
def _add_immutable_triggers(target, connection, **kw) -> None:
    # reviews is created before review_amendments (foreign key order): both exist now.
    for stmt in IMMUTABLE_TRIGGERS.get(connection.dialect.name, []):
        connection.exec_driver_sql(stmt)
