"""The audit log's object column: a readable label, and a link where the viewer may follow it.

Entries name their object by table and id; this maps each table to a label and, where the
portal has a page for it, the endpoint and the permission check that page applies. A link
is offered only when the object still exists and the viewer passes that check, so the log
never points anyone at a 403 or 404. Labels carry ids, never patient data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app, url_for

from qaportal.extensions import db
from qaportal.models import (
    AuditEvent,
    Conference,
    DicomPeer,
    DiscrepancyCase,
    OpinionRequest,
    Review,
    SamplingRule,
    SamplingRun,
    Study,
    User,
)
from qaportal.permissions import (
    can_manage_qa,
    can_manage_users,
    can_view_opinion_request,
    can_view_study,
)


@dataclass(frozen=True)
class ObjectKind:
    """How the log shows one table's objects."""

    label: str
    model: type | None = None
    endpoint: str | None = None
    arg: str | None = None
    allowed: Callable[[User, Any], bool] | None = None


def _qa(user: User, obj: Any) -> bool:
    return can_manage_qa(user)


KINDS: dict[str, ObjectKind] = {
    "users": ObjectKind("Account", User, "admin.user_edit", "user_id",
                        lambda user, obj: can_manage_users(user)),
    "studies": ObjectKind("Study", Study, "studies.detail", "study_id", can_view_study),
    "opinion_requests": ObjectKind("Second-opinion request", OpinionRequest,
                                   "opinions.detail", "request_id", can_view_opinion_request),
    "discrepancy_cases": ObjectKind("Discrepancy case", DiscrepancyCase, "qa.case_detail",
                                    "case_id", _qa),
    "reviews": ObjectKind("Peer review", Review, "qa.review_detail", "review_id", _qa),
    "sampling_runs": ObjectKind("Sampling run", SamplingRun, "qa.run_detail", "run_id", _qa),
    "sampling_rules": ObjectKind("Sampling rule", SamplingRule, "qa.rule_form", "rule_id", _qa),
    "conferences": ObjectKind("Conference", Conference, "qa.conference", "conference_id", _qa),
    "report_exports": ObjectKind("Report export"),
    "review_assignments": ObjectKind("Review assignment"),
    "upload_batches": ObjectKind("Upload batch"),
    "notifications": ObjectKind("Notification"),
    "opinions": ObjectKind("Opinion"),
    "teaching_cases": ObjectKind("Teaching case"),
    "licenses": ObjectKind("Licence"),
    "board_certifications": ObjectKind("Board certification"),
    "privileges": ObjectKind("Hospital privilege"),
    "dicom_peers": ObjectKind("DICOM peer", DicomPeer, "admin.peer_edit", "peer_id",
                              lambda user, obj: can_manage_users(user)),
}


@dataclass(frozen=True)
class ObjectRef:
    """What the object cell shows."""

    label: str
    url: str | None = None


def _fallback_label(object_type: str) -> str:
    return object_type.replace("_", " ").capitalize()


def describe(ev: AuditEvent, viewer: User) -> ObjectRef | None:
    """Return the label and (when the viewer may open it) the link of an entry's object."""
    if not ev.object_type:
        return None
    kind = KINDS.get(ev.object_type, ObjectKind(_fallback_label(ev.object_type)))
    label = f"{kind.label} #{ev.object_id}"
    if kind.model is None or not (ev.object_id or "").isdigit():
        return ObjectRef(label)
    obj = db.session.get(kind.model, int(ev.object_id))
    if obj is None:
        return ObjectRef(label)
    if isinstance(obj, User):
        label = f"{kind.label} {obj.email}"
    if (kind.endpoint in current_app.view_functions and kind.allowed is not None
            and kind.allowed(viewer, obj)):
        return ObjectRef(label, url_for(kind.endpoint, **{kind.arg: obj.id}))
    return ObjectRef(label)


def describe_all(events: Iterable[AuditEvent], viewer: User) -> dict[int, ObjectRef | None]:
    """Return describe() for each event, keyed by seq.

    The page's objects are loaded first, one query per table named (describe() then finds
    each in the session instead of selecting it alone).
    """
    events = list(events)
    wanted: dict[type, set[int]] = {}
    for ev in events:
        kind = KINDS.get(ev.object_type or "")
        if kind is not None and kind.model is not None and (ev.object_id or "").isdigit():
            wanted.setdefault(kind.model, set()).add(int(ev.object_id))
    loaded = []  # held here so that the session keeps them while describe() looks them up
    for model, ids in wanted.items():
        loaded += db.session.scalars(sa.select(model).where(model.id.in_(sorted(ids)))).all()
    return {ev.seq: describe(ev, viewer) for ev in events}
