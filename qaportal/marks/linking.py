"""Link what STOW-RS just stored, when it is an SR or KOS from the viewer, to its draft.

Called after the store has committed (`link_stored`): the instances stay stored whatever
happens here. Each SR or KOS is read (qaportal.dicom.marks), its draft found (the one the
context header named, else the caller's only open draft on that study), its referenced
images mapped to the study's instances through the UIDs the caller is served (a blind
reviewer's remapped UIDs map back to the originals here, and only ids are kept), then one
row is written and audited in one transaction per document. Why a document was not
linked is returned as text for the response's Warning header: never a UID.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from qaportal import audit
from qaportal.dicom.errors import StoredFileCorrupt, StoredFileMissing
from qaportal.dicom.marks import MarksDocument, MarksError, is_marks_class, read_marks
from qaportal.dicomweb.stow_ingest import Outcome
from qaportal.extensions import db
from qaportal.marks.context import HEADER, Draft, StowContext, drafts_of
from qaportal.marks.planes import place, study_planes
from qaportal.models import Instance, Series, Study, ViewerMark
from qaportal.models.viewer_mark import ImmutableMarksError
from qaportal.studies.storage import image_store


@dataclass
class LinkResult:
    """What became of one stored SR or KOS."""

    linked_to: str | None = None  # "opinion-request:5"
    reason: str | None = None  # why not


def link_stored(ctx: StowContext, outcomes: list[Outcome]) -> list[LinkResult]:
    """Link each stored SR/KOS of the request; return one result per such instance."""
    marks = [o for o in outcomes if o.ok and is_marks_class(o.sop_class_uid)]
    if not marks:
        return []
    drafts = ([ctx.named] if ctx.named is not None
              else drafts_of(ctx.user, {o.study_uid for o in marks}))
    return [_link_one(ctx, o, drafts) for o in marks]


def _stored_instance(ctx: StowContext, o: Outcome) -> Instance | None:
    return db.session.scalar(
        sa.select(Instance).join(Series).join(Study).where(
            Study.owner_id == ctx.user.id, Study.study_uid == o.study_uid,
            Series.series_uid == o.series_uid, Instance.sop_uid == o.sop_uid))


def _choose(ctx: StowContext, o: Outcome, drafts: list[Draft]) -> Draft | str | None:
    if ctx.named is not None:
        return ctx.named
    on_study = [d for d in drafts if d.served_study_uid == o.study_uid]
    open_ = [d for d in on_study if d.is_open]
    if len(open_) == 1:
        return open_[0]
    if len(open_) > 1:
        names = ", ".join(d.name for d in open_)
        return (f"not linked: several open drafts on this study ({names}); send "
                f"{HEADER} to choose one (the instance is stored)")
    return on_study[0] if on_study else None  # closed: explained; none: a plain store


def _link_one(ctx: StowContext, o: Outcome, drafts: list[Draft]) -> LinkResult:
    chosen = _choose(ctx, o, drafts)
    if chosen is None:
        return LinkResult(reason="not linked: no open opinion or review of yours on this "
                                 "study (the instance is stored)")
    if isinstance(chosen, str):
        return LinkResult(reason=chosen)
    draft = chosen
    if not draft.is_open:
        return LinkResult(reason=draft.closed_reason)
    inst = _stored_instance(ctx, o)
    if inst is None:  # stored a moment ago: only a concurrent deletion gets here
        return LinkResult(reason="not linked: the stored instance is gone")
    if db.session.scalar(sa.select(ViewerMark.id).where(ViewerMark.instance_id == inst.id)):
        return LinkResult(linked_to=draft.name)  # an identical resend: linked already
    try:
        doc = read_marks(image_store().read_verified(inst.storage_key, inst.sha256))
    except MarksError as exc:
        return LinkResult(reason=f"not linked: {exc} (the instance is stored)")
    except (StoredFileMissing, StoredFileCorrupt):
        return LinkResult(reason="not linked: the stored file could not be read back")
    if doc.study_uid != draft.served_study_uid:
        return LinkResult(reason=f"not linked: the document is not of the study of "
                                 f"{draft.label} (the instance is stored)")
    images = _served_instances(draft)
    missing = doc.referenced_uids - images.keys()
    if missing:
        return LinkResult(reason=f"not linked: {len(missing)} referenced image(s) are not in "
                                 f"the study of {draft.label} (the instance is stored)")
    measurements = _measurements(doc, images, draft.target)
    mark = ViewerMark(instance_id=inst.id, kind=doc.kind, title=doc.title[:200],
                      author_id=ctx.user.id, measurements=measurements,
                      key_images=_key_images(doc, images, measurements))
    if draft.kind == "opinion-request":
        mark.opinion_request_id = draft.obj.id
    else:
        mark.review_assignment_id = draft.obj.id
    try:
        db.session.add(mark)
        db.session.flush()
        audit.record("viewer_marks.linked", draft.obj, actor=ctx.user, mark_id=mark.id,
                     kind=doc.kind, measurements=len(mark.measurements),
                     key_images=len(mark.key_images))
        db.session.commit()
    except (ImmutableMarksError, IntegrityError, DBAPIError):
        # Signed or submitted meanwhile (the trigger), or linked by a concurrent resend.
        db.session.rollback()
        return LinkResult(reason=f"not linked: {draft.label} closed meanwhile "
                                 "(the instance is stored)")
    return LinkResult(linked_to=draft.name)


def _served_instances(draft: Draft) -> dict[str, int]:
    """Map each UID the user is served for the draft's study's images to the instance id."""
    target = draft.target
    rows = db.session.execute(
        sa.select(Instance.id, Instance.sop_uid).join(Series)
        .where(Series.study_id == draft.study.id))
    return {target.uid(uid): ident for ident, uid in rows}


def _measurements(doc: MarksDocument, images: dict[str, int], target) -> list[dict]:
    planes = None
    out = []
    for m in doc.measurements:
        row = m.as_dict()
        # No UID is kept: the image by its id; the viewer's own tracking UID and the frame
        # of reference (remapped for a blind reviewer) are dropped.
        for key in ("sop_uid", "tracking_uid", "frame_of_reference_uid"):
            row.pop(key)
        row["image_id"] = images[m.sop_uid] if m.sop_uid else None
        if m.coordinates == "3D" and target is not None:
            # A mark made on a multiplanar view: on the acquired image whose plane holds it.
            planes = study_planes(target) if planes is None else planes
            placed = place(m.points, m.frame_of_reference_uid or "", planes)
            if placed is not None:
                row.update(image_id=placed.image_id, frame=placed.frame,
                           image_points=placed.points)
        out.append(row)
    return out


def _key_images(doc: MarksDocument, images: dict[str, int],
                measurements: list[dict]) -> list[dict]:
    """The document's key images, then the images 3D marks were placed on (once each)."""
    out = [{"image_id": images[k.sop_uid], "frame": k.frame} for k in doc.key_images]
    for row in measurements:
        ref = {"image_id": row["image_id"], "frame": row.get("frame")}
        if row.get("image_points") and ref not in out:
            out.append(ref)
    return out
