"""Second opinions: the request, its thread, the signed opinion and its addenda."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qaportal.models.base import Base, enum_check, utcnow
from qaportal.models.credentials import SUBSPECIALTIES

if TYPE_CHECKING:
    from qaportal.models.study import Study
    from qaportal.models.user import User

PRIORITIES = ("stat", "urgent", "routine")
PRIORITY_LABELS = {"stat": "STAT", "urgent": "urgent", "routine": "routine"}
REQUEST_TYPES = ("opinion", "coverage_review")
REQUEST_TYPE_LABELS = {"opinion": "Second opinion", "coverage_review": "Coverage review"}
# open: waiting for a pool member to claim it or the named colleague to accept it;
# accepted: a consultant works on it; declined: the named colleague declined, back with
# the requester; signed and cancelled are final.
STATUSES = ("open", "accepted", "declined", "signed", "cancelled")
ACTIVE_STATUSES = ("open", "accepted", "declined")
AGREEMENTS = ("agree", "minor", "major")
AGREEMENT_LABELS = {"agree": "Agree", "minor": "Minor disagreement",
                    "major": "Major disagreement"}
COVERAGE_ANSWERS = ("supported", "not_supported", "indeterminate")
COVERAGE_LABELS = {"supported": "Supported", "not_supported": "Not supported",
                   "indeterminate": "Indeterminate"}
SIGNATURE_METHODS = ("password", "totp")


_UNCLAIMED = "status = 'open' AND consultant_id IS NULL"
_HELD = "status IN ('open', 'accepted')"  # a consultant's worklist by default


class OpinionRequest(Base):
    """A radiologist's request for a second opinion on one study."""

    __tablename__ = "opinion_requests"
    __table_args__ = (
        enum_check("priority", PRIORITIES),
        enum_check("status", STATUSES),
        enum_check("request_type", REQUEST_TYPES),
        sa.CheckConstraint("pool IS NULL OR pool IN ("
                           + ", ".join(f"'{s}'" for s in SUBSPECIALTIES) + ")",
                           name="pool_valid"),
        # Sent to exactly one of: a named colleague, a subspecialty pool.
        sa.CheckConstraint("(pool IS NULL) <> (named_consultant_id IS NULL)",
                           name="one_recipient"),
        sa.CheckConstraint("status <> 'accepted' OR consultant_id IS NOT NULL",
                           name="accepted_has_consultant"),
        sa.Index("ix_opinion_requests_status_due", "status", "due_at"),
        # The worklist's lists by due time (0020): assigned to me (what I hold; one state),
        # sent by me, every request,
        # and the unclaimed ones of a pool (partial: open and unclaimed only).
        sa.Index("ix_opinion_requests_consultant_active", "consultant_id", "due_at", "id",
                 postgresql_where=sa.text(_HELD), sqlite_where=sa.text(_HELD)),
        sa.Index("ix_opinion_requests_consultant_status_due", "consultant_id", "status",
                 "due_at", "id"),
        sa.Index("ix_opinion_requests_requester_due", "requester_id", "due_at", "id"),
        sa.Index("ix_opinion_requests_due", "due_at", "id"),
        sa.Index("ix_opinion_requests_pool_unclaimed", "pool", "due_at", "id",
                 postgresql_where=sa.text(_UNCLAIMED), sqlite_where=sa.text(_UNCLAIMED)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id"), index=True)
    requester_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    request_type: Mapped[str] = mapped_column(sa.String(20), default="opinion")
    clinical_question: Mapped[str] = mapped_column(sa.Text)
    clinical_history: Mapped[str] = mapped_column(sa.Text, default="")
    preliminary_read: Mapped[str] = mapped_column(sa.Text, default="")
    payer_criteria: Mapped[str] = mapped_column(sa.Text, default="")
    priority: Mapped[str] = mapped_column(sa.String(10))
    pool: Mapped[str | None] = mapped_column(sa.String(20), index=True)
    named_consultant_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    # Who holds it now: the named colleague, or the pool member who claimed it.
    consultant_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    deidentified: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(sa.String(12), default="open")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    first_viewed_at: Mapped[datetime | None]
    signed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str] = mapped_column(sa.Text, default="")
    breached_at: Mapped[datetime | None]
    turnaround_minutes: Mapped[int | None]

    study: Mapped[Study] = relationship()
    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    named_consultant: Mapped[User | None] = relationship(foreign_keys=[named_consultant_id])
    consultant: Mapped[User | None] = relationship(foreign_keys=[consultant_id])
    messages: Mapped[list[OpinionMessage]] = relationship(
        back_populates="request", order_by="OpinionMessage.id", cascade="all, delete-orphan"
    )
    declines: Mapped[list[OpinionDecline]] = relationship(
        back_populates="request", order_by="OpinionDecline.id", cascade="all, delete-orphan"
    )
    opinion: Mapped[Opinion | None] = relationship(back_populates="request", uselist=False)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def __repr__(self) -> str:
        return f"<OpinionRequest {self.id} {self.status}>"


class OpinionDecline(Base):
    """A consultant declined a request, with the reason."""

    __tablename__ = "opinion_declines"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("opinion_requests.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    request: Mapped[OpinionRequest] = relationship(back_populates="declines")
    user: Mapped[User] = relationship()


class OpinionMessage(Base):
    """One message in the thread between requester and consultant."""

    __tablename__ = "opinion_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("opinion_requests.id"), index=True)
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    request: Mapped[OpinionRequest] = relationship(back_populates="messages")
    author: Mapped[User] = relationship()


class Opinion(Base):
    """The consultant's opinion: a draft until signed, then immutable."""

    __tablename__ = "opinions"
    __table_args__ = (
        sa.CheckConstraint("agreement IS NULL OR agreement IN ('agree', 'minor', 'major')",
                           name="agreement_valid"),
        sa.CheckConstraint("coverage_answer IS NULL OR coverage_answer IN "
                           "('supported', 'not_supported', 'indeterminate')",
                           name="coverage_answer_valid"),
        # A signed opinion carries its signature: who, how, and under which licence.
        sa.CheckConstraint(
            "signed_at IS NULL OR (agreement IS NOT NULL AND signature_method IS NOT NULL "
            "AND license_number IS NOT NULL AND license_jurisdiction IS NOT NULL)",
            name="signed_complete",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("opinion_requests.id"), unique=True)
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    findings: Mapped[str] = mapped_column(sa.Text, default="")
    impression: Mapped[str] = mapped_column(sa.Text, default="")
    agreement: Mapped[str | None] = mapped_column(sa.String(10))
    recommendations: Mapped[str] = mapped_column(sa.Text, default="")
    coverage_answer: Mapped[str | None] = mapped_column(sa.String(16))
    coverage_text: Mapped[str] = mapped_column(sa.Text, default="")
    draft_saved_at: Mapped[datetime | None]
    signed_at: Mapped[datetime | None]
    signature_method: Mapped[str | None] = mapped_column(sa.String(10))
    # Snapshot at signing: what the signer held then, whatever changes later.
    signer_name: Mapped[str | None] = mapped_column(sa.String(200))
    signer_credentials: Mapped[str | None] = mapped_column(sa.String(300))
    license_jurisdiction: Mapped[str | None] = mapped_column(sa.String(10))
    license_number: Mapped[str | None] = mapped_column(sa.String(64))

    request: Mapped[OpinionRequest] = relationship(back_populates="opinion")
    author: Mapped[User] = relationship()
    addenda: Mapped[list[OpinionAddendum]] = relationship(
        back_populates="opinion", order_by="OpinionAddendum.id"
    )

    @property
    def is_signed(self) -> bool:
        return self.signed_at is not None


class OpinionAddendum(Base):
    """A signed correction or addition to a signed opinion; never edited."""

    __tablename__ = "opinion_addenda"

    id: Mapped[int] = mapped_column(primary_key=True)
    opinion_id: Mapped[int] = mapped_column(sa.ForeignKey("opinions.id"), index=True)
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(sa.Text)
    signed_at: Mapped[datetime] = mapped_column(default=utcnow)
    signature_method: Mapped[str] = mapped_column(sa.String(10))
    signer_name: Mapped[str] = mapped_column(sa.String(200))
    signer_credentials: Mapped[str] = mapped_column(sa.String(300), default="")
    license_jurisdiction: Mapped[str] = mapped_column(sa.String(10))
    license_number: Mapped[str] = mapped_column(sa.String(64))

    opinion: Mapped[Opinion] = relationship(back_populates="addenda")
    author: Mapped[User] = relationship()


# The database itself refuses changes to a signed opinion and any change to an addendum;
# the service refuses first with a readable message. The migration must create these too.
IMMUTABLE_TRIGGERS = {
    "sqlite": [
        "CREATE TRIGGER opinions_signed_no_update BEFORE UPDATE ON opinions "
        "WHEN OLD.signed_at IS NOT NULL "
        "BEGIN SELECT RAISE(ABORT, 'a signed opinion is immutable'); END",
        "CREATE TRIGGER opinions_signed_no_delete BEFORE DELETE ON opinions "
        "WHEN OLD.signed_at IS NOT NULL "
        "BEGIN SELECT RAISE(ABORT, 'a signed opinion is immutable'); END",
        "CREATE TRIGGER opinion_addenda_no_update BEFORE UPDATE ON opinion_addenda "
        "BEGIN SELECT RAISE(ABORT, 'an addendum is immutable'); END",
        "CREATE TRIGGER opinion_addenda_no_delete BEFORE DELETE ON opinion_addenda "
        "BEGIN SELECT RAISE(ABORT, 'an addendum is immutable'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION opinions_signed_immutable() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        "IF OLD.signed_at IS NOT NULL THEN "
        "RAISE EXCEPTION 'a signed opinion is immutable'; END IF; "
        "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER opinions_signed_immutable BEFORE UPDATE OR DELETE ON opinions "
        "FOR EACH ROW EXECUTE FUNCTION opinions_signed_immutable()",
        "CREATE OR REPLACE FUNCTION opinion_addenda_immutable() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'an addendum is immutable'; END $$",
        "CREATE TRIGGER opinion_addenda_immutable BEFORE UPDATE OR DELETE ON opinion_addenda "
        "FOR EACH ROW EXECUTE FUNCTION opinion_addenda_immutable()",
    ],
}


@sa.event.listens_for(OpinionAddendum.__table__, "after_create")
def _add_triggers(target, connection, **kw) -> None:
    # opinions is created before opinion_addenda (foreign key order), so both exist now.
    for stmt in IMMUTABLE_TRIGGERS.get(connection.dialect.name, []):
        connection.exec_driver_sql(stmt)
