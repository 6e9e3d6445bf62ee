"""Viewer marks as the pages and PDFs show them: measurement rows and key images drawn.

Rows name images by series and image number (never a UID); a key image is the referenced
frame rendered from the stored file with the document's 2D regions on it drawn. For a
viewer who sees the study blind (reviewer, committee) no image is drawn when the study's
pixels may carry burned-in identifiers, as in the case packet.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import sqlalchemy as sa

from qaportal.dicom.errors import DicomRejected, StoredFileCorrupt, StoredFileMissing
from qaportal.dicom.marks_draw import render_marked
from qaportal.extensions import db
from qaportal.models import Instance, ViewerMark
from qaportal.studies.storage import image_store

THUMB_PX = 256
PDF_PX = 512
MAX_KEY_IMAGES = 12  # drawn per document (a KOS may select a whole series)
BURNED_IN = ("Images not shown: the study's pixels may carry burned-in patient "
             "identifiers.")


@dataclass
class MeasurementRow:
    label: str
    what: str  # "Length 23.4 mm", "Point"
    finding_site: str
    image: str  # "Series 2 · image 14 · frame 3"
    graphic: str


@dataclass
class KeyImageView:
    index: int
    caption: str
    data_url: str | None = None  # for the PDFs
    problem: str | None = None


@dataclass
class MarkView:
    mark: ViewerMark
    author: str
    rows: list[MeasurementRow] = field(default_factory=list)
    key_images: list[KeyImageView] = field(default_factory=list)
    images_note: str | None = None


def marks_of(*, opinion_request_id: int | None = None,
             review_assignment_id: int | None = None,
             author_id: int | None = None) -> list[ViewerMark]:
    """Return the marks of a request or an assignment, oldest first (one author's only
    when author_id is given)."""
    stmt = sa.select(ViewerMark).order_by(ViewerMark.created_at, ViewerMark.id)
    if opinion_request_id is not None:
        stmt = stmt.where(ViewerMark.opinion_request_id == opinion_request_id)
    else:
        stmt = stmt.where(ViewerMark.review_assignment_id == review_assignment_id)
    if author_id is not None:
        stmt = stmt.where(ViewerMark.author_id == author_id)
    return list(db.session.scalars(stmt))


def _instances(marks: list[ViewerMark]) -> dict[int, Instance]:
    ids = {r["image_id"] for m in marks for r in (*m.measurements, *m.key_images)
           if r.get("image_id")}
    if not ids:
        return {}
    return {i.id: i for i in db.session.scalars(sa.select(Instance).where(Instance.id.in_(ids)))}


def image_caption(inst: Instance | None, frame: int | None) -> str:
    if inst is None:
        return "—"
    number = inst.series.series_number
    text = (f"Series {number if number is not None else '—'} · image "
            f"{inst.instance_number if inst.instance_number is not None else '—'}")
    return text + (f" · frame {frame}" if frame else "")


def _value(m: dict) -> str:
    concept = m.get("concept")
    if m.get("value") is None:
        return concept or (m.get("graphic_type") or "Mark").capitalize()
    unit = m.get("unit") or ""
    unit = {"mm2": "mm²", "cm2": "cm²", "[hnsf'U]": "HU"}.get(unit, unit)
    return f"{concept or 'Value'} {m['value']:.4g} {unit}".rstrip()


def _where(m: dict, instances: dict[int, Instance]) -> str:
    """Where a measurement was made: its image, or the plane of a 3D mark."""
    caption = image_caption(instances.get(m.get("image_id")), m.get("frame"))
    if m.get("coordinates") == "2D":
        return caption
    if m.get("image_points"):
        return f"{caption} (3D mark, on this image's plane)"
    return "3D, on a reformatted plane (not drawn)"


def drawn_regions(mark: ViewerMark, image_id: int, frame: int | None) -> list[dict]:
    """The mark's regions on one image frame in pixel coordinates: its 2D regions and the
    3D marks placed on that image (qaportal.marks.planes)."""
    out = []
    for m in mark.measurements:
        if m.get("image_id") != image_id or (m.get("frame") or 1) != (frame or 1):
            continue
        if m.get("coordinates") == "2D":
            out.append(m)
        elif m.get("image_points"):
            out.append({**m, "points": m["image_points"]})
    return out


def present(marks: list[ViewerMark], *, author_label, blind: bool, study=None,
            pdf: bool = False) -> list[MarkView]:
    """Return what to show of each mark; author_label(user) names the author (a blind
    page hides the name). pdf embeds the drawn key images as data URLs."""
    instances = _instances(marks)
    views = []
    for mark in marks:
        view = MarkView(mark, author_label(mark.author))
        for m in mark.measurements:
            view.rows.append(MeasurementRow(
                label=m.get("label") or "", what=_value(m),
                finding_site=m.get("finding_site") or "",
                image=_where(m, instances),
                graphic=(m.get("graphic_type") or "").lower()))
        if blind and study is not None and study.burned_in_suspected:
            view.images_note = BURNED_IN
        else:
            if len(mark.key_images) > MAX_KEY_IMAGES:
                view.images_note = (f"{MAX_KEY_IMAGES} of {len(mark.key_images)} key images "
                                    "shown.")
            for n, k in enumerate(mark.key_images[:MAX_KEY_IMAGES]):
                kv = KeyImageView(n, image_caption(instances.get(k["image_id"]), k.get("frame")))
                if pdf:
                    try:
                        png = key_image_png(mark, n, PDF_PX)
                        kv.data_url = ("data:image/png;base64,"
                                       + base64.b64encode(png).decode("ascii"))
                    except KeyImageProblem as exc:
                        kv.problem = str(exc)
                view.key_images.append(kv)
        views.append(view)
    return views


class KeyImageProblem(Exception):
    """A key image could not be drawn (said in words fit to show)."""


def key_image_png(mark: ViewerMark, index: int, size: int = THUMB_PX) -> bytes:
    """Render the mark's key image `index` with its regions drawn; raise KeyImageProblem
    or IndexError (no such key image)."""
    if not 0 <= index < len(mark.key_images):
        raise IndexError(index)
    ref = mark.key_images[index]
    inst = db.session.get(Instance, ref["image_id"])
    if inst is None:
        raise KeyImageProblem("the image is no longer stored")
    regions = drawn_regions(mark, inst.id, ref.get("frame"))
    frame = (ref.get("frame") or 1) - 1
    try:
        data = image_store().read_verified(inst.storage_key, inst.sha256)
        return render_marked(data, frame, regions, size)
    except StoredFileMissing as exc:
        raise KeyImageProblem("stored file missing") from exc
    except StoredFileCorrupt as exc:
        raise KeyImageProblem("stored file does not match its SHA-256") from exc
    except (DicomRejected, ValueError, MemoryError) as exc:
        raise KeyImageProblem("the frame could not be rendered") from exc


def opinion_marks(req, *, pdf: bool = False) -> list[MarkView]:
    """The consultant's marks on a request, as the request page and the packet show them."""
    return present(marks_of(opinion_request_id=req.id), author_label=lambda u: u.full_name,
                   blind=False, study=req.study, pdf=pdf)


def reviewer_marks(assignment, user) -> list[MarkView]:
    """A reviewer's own marks on their assignment (never anyone else's)."""
    return present(marks_of(review_assignment_id=assignment.id, author_id=user.id),
                   author_label=lambda u: "You", blind=True, study=assignment.read.study)


def committee_marks(assignment) -> list[MarkView]:
    """The reviewer's marks as the (blind) committee sees them: the author unnamed."""
    return present(marks_of(review_assignment_id=assignment.id),
                   author_label=lambda u: "The reviewer", blind=True,
                   study=assignment.read.study)


def qa_marks(assignment, *, pdf: bool = False) -> list[MarkView]:
    """The reviewer's marks as QA managers see them (QA case page, committee record): the
    reviewer named, the images drawn (QA sees the study in full)."""
    return present(marks_of(review_assignment_id=assignment.id),
                   author_label=lambda u: u.full_name, blind=False,
                   study=assignment.read.study, pdf=pdf)


def marks_lines(views: list[MarkView], scrub=lambda s: s) -> list[str]:
    """The measurement list as plain-text lines (a review record), scrubbed like the rest."""
    if not views:
        return []
    lines = ["", "Viewer measurements:"]
    for view in views:
        for row in view.rows:
            site = f", {scrub(row.finding_site)}" if row.finding_site else ""
            lines.append(f"- {scrub(row.label)}: {row.what}{site} ({row.image}, {row.graphic})")
        if view.key_images:
            lines.append(f"  Key images: {', '.join(k.caption for k in view.key_images)}")
    return lines
