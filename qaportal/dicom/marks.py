"""Read what a radiologist marked in a viewer: a TID 1500 measurement report or a KOS.

A viewer such as OHIF saves measurements as a DICOM Structured Report (TID 1500, "Imaging
Measurement Report"): measurement groups (TID 1501/1410) with a tracking identifier, a
finding, finding sites, numeric measurements (NUM: concept, value, units) and the image
region they were made on (SCOORD: graphic type and points on a referenced image and frame;
SCOORD3D: points in a frame of reference). Some writers nest the SCOORD under the NUM
(INFERRED FROM), others put it beside the NUMs in the group; both are read. Key images
are saved as a Key Object Selection document: a title and the images it selects.

`read_marks` returns a `MarksDocument` or raises `MarksError` with a reason fit to show.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR",
    "1.2.840.10008.5.1.4.1.1.88.35": "Extensible SR",
}
KOS_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
MARK_CLASSES = frozenset({*SR_CLASSES, KOS_CLASS})

MEASUREMENT_GROUP = ("125007", "DCM")
TRACKING_ID = ("112039", "DCM")
TRACKING_UID = ("112040", "DCM")
FINDING = ("121071", "DCM")
FINDING_SITES = {("363698007", "SCT"), ("G-C0E3", "SRT")}
# Points each graphic type takes (x, y pairs for SCOORD; x, y, z for SCOORD3D).
_POINTS = {"POINT": (1, 1), "MULTIPOINT": (1, None), "POLYLINE": (2, None),
           "POLYGON": (3, None), "CIRCLE": (2, 2), "ELLIPSE": (4, 4), "ELLIPSOID": (6, 6)}
MAX_ITEMS = 20000  # content items walked in one document: a bound on hostile nesting
MAX_DEPTH = 16


class MarksError(ValueError):
    """The object is not a readable measurement report or key object selection."""


@dataclass
class Measurement:
    """One measurement (or a bare region, e.g. a point) of a measurement group."""

    label: str
    concept: str | None = None  # e.g. "Length", "Area"; None for a region without a value
    value: float | None = None
    unit: str | None = None  # UCUM code value, e.g. "mm"
    finding: str | None = None
    finding_site: str | None = None
    tracking_uid: str | None = None
    graphic_type: str | None = None
    points: list[list[float]] = field(default_factory=list)
    coordinates: str | None = None  # "2D" (SCOORD on an image) or "3D" (SCOORD3D)
    sop_uid: str | None = None  # the image the 2D region was drawn on
    frame: int | None = None  # its frame, 1-based, when the image has several
    frame_of_reference_uid: str | None = None  # for 3D regions

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class KeyImageRef:
    """An image a KOS selects (or a measured image)."""

    sop_uid: str
    frame: int | None = None


@dataclass
class MarksDocument:
    """What one SR or KOS holds."""

    kind: str  # "sr" or "kos"
    title: str
    study_uid: str
    sop_uid: str
    measurements: list[Measurement] = field(default_factory=list)
    key_images: list[KeyImageRef] = field(default_factory=list)

    @property
    def referenced_uids(self) -> set[str]:
        uids = {m.sop_uid for m in self.measurements if m.sop_uid}
        return uids | {k.sop_uid for k in self.key_images}


def is_marks_class(sop_class_uid: str) -> bool:
    """Return True for the SOP classes read here (structured reports and KOS)."""
    return sop_class_uid in MARK_CLASSES


def read_marks(source: bytes | Dataset) -> MarksDocument:
    """Read an SR (TID 1500) or KOS; raise MarksError saying what is wrong."""
    ds = source if isinstance(source, Dataset) else _load(source)
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class not in MARK_CLASSES:
        raise MarksError("not a structured report or key object selection "
                         f"(SOP class {sop_class or 'missing'})")
    if "ContentSequence" not in ds:
        raise MarksError("the document has no content (Content Sequence missing)")
    doc = MarksDocument(kind="kos" if sop_class == KOS_CLASS else "sr",
                        title=_meaning(ds.get("ConceptNameCodeSequence")) or "Untitled",
                        study_uid=str(ds.get("StudyInstanceUID", "")),
                        sop_uid=str(ds.get("SOPInstanceUID", "")))
    counter = [0]
    if doc.kind == "kos":
        for item in _walk(ds, counter):
            if item.get("ValueType") == "IMAGE":
                doc.key_images.extend(_image_refs(item))
        if not doc.key_images:
            raise MarksError("the key object selection selects no image")
        return doc
    groups = [item for item in _walk(ds, counter)
              if item.get("ValueType") == "CONTAINER" and _code(item) == MEASUREMENT_GROUP]
    if not groups:
        raise MarksError("the structured report holds no measurement group (TID 1500)")
    for n, group in enumerate(groups, 1):
        doc.measurements.extend(_group(group, n))
    for m in doc.measurements:
        if m.sop_uid and all(k.sop_uid != m.sop_uid or k.frame != m.frame
                             for k in doc.key_images):
            doc.key_images.append(KeyImageRef(m.sop_uid, m.frame))
    return doc


def _load(data: bytes) -> Dataset:
    try:
        return dcmread(io.BytesIO(data), force=False)
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise MarksError(f"not a readable DICOM file ({type(exc).__name__})") from exc


def _walk(ds: Dataset, counter: list[int], depth: int = 0):
    if depth > MAX_DEPTH:
        raise MarksError(f"content nested deeper than {MAX_DEPTH} levels")
    for item in ds.get("ContentSequence", []):
        counter[0] += 1
        if counter[0] > MAX_ITEMS:
            raise MarksError(f"more than {MAX_ITEMS} content items")
        yield item
        yield from _walk(item, counter, depth + 1)


def _code(item: Dataset, keyword: str = "ConceptNameCodeSequence") -> tuple[str, str] | None:
    seq = item.get(keyword)
    if not seq:
        return None
    return (str(seq[0].get("CodeValue", seq[0].get("LongCodeValue", ""))),
            str(seq[0].get("CodingSchemeDesignator", "")))


def _meaning(seq) -> str | None:
    if not seq:
        return None
    return str(seq[0].get("CodeMeaning", "")) or None


def _group(group: Dataset, n: int) -> list[Measurement]:
    """Return the measurements of one group (one per NUM; one bare region if no NUM)."""
    tracking = finding = site = tracking_uid = None
    nums: list[Dataset] = []
    regions: list[Dataset] = []
    for item in group.get("ContentSequence", []):
        vtype, code = item.get("ValueType"), _code(item)
        if vtype == "TEXT" and code == TRACKING_ID:
            tracking = str(item.get("TextValue", "")) or None
        elif vtype == "UIDREF" and code == TRACKING_UID:
            tracking_uid = str(item.get("UID", "")) or None
        elif vtype == "CODE" and code == FINDING:
            finding = _meaning(item.get("ConceptCodeSequence"))
        elif vtype == "CODE" and code in FINDING_SITES:
            site = _meaning(item.get("ConceptCodeSequence"))
        elif vtype == "NUM":
            nums.append(item)
        elif vtype in ("SCOORD", "SCOORD3D"):
            regions.append(item)
    label = _label(tracking, finding, n)
    base = {"label": label, "finding": finding, "finding_site": site,
            "tracking_uid": tracking_uid}
    out = []
    for num in nums:
        inner = [i for i in num.get("ContentSequence", [])
                 if i.get("ValueType") in ("SCOORD", "SCOORD3D")]
        region = inner[0] if inner else regions[0] if regions else None
        value, unit = _numeric(num, label)
        out.append(Measurement(concept=_meaning(num.get("ConceptNameCodeSequence")),
                               value=value, unit=unit, **base, **_region(region, label)))
    if not nums:
        if not regions:
            raise MarksError(f"measurement group '{label}' holds neither a measurement "
                             "nor an image region")
        out.append(Measurement(**base, **_region(regions[0], label)))
    return out


def _label(tracking: str | None, finding: str | None, n: int) -> str:
    # A viewer's own tracking identifier ("Cornerstone3DTools@^0.1.0:Length") is no label.
    if tracking and not ("@" in tracking and ":" in tracking):
        return tracking[:200]
    if finding:
        return finding[:200]
    if tracking:
        return tracking.rsplit(":", 1)[-1][:200]
    return f"Measurement {n}"


def _numeric(num: Dataset, label: str) -> tuple[float | None, str | None]:
    seq = num.get("MeasuredValueSequence")
    if not seq:  # a NUM may be empty with a reason (Numeric Value Qualifier)
        return None, None
    mv = seq[0]
    raw = mv.get("FloatingPointValue", mv.get("NumericValue"))
    try:
        value = float(raw) if raw is not None else None
    except (TypeError, ValueError) as exc:
        raise MarksError(f"measurement '{label}' has an unreadable numeric value") from exc
    units = mv.get("MeasurementUnitsCodeSequence")
    unit = str(units[0].get("CodeValue", "")) if units else None
    return value, unit or None


def _region(item: Dataset | None, label: str) -> dict[str, Any]:
    if item is None:
        return {}
    gtype = str(item.get("GraphicType", "")).upper()
    if gtype not in _POINTS:
        raise MarksError(f"region of '{label}' has an unknown graphic type "
                         f"'{gtype or 'missing'}'")
    three = item.get("ValueType") == "SCOORD3D"
    dim = 3 if three else 2
    data = [float(v) for v in (item.get("GraphicData") or [])]
    if not data or len(data) % dim:
        raise MarksError(f"region of '{label}' has graphic data that is not "
                         f"{dim}-D points ({len(data)} values)")
    points = [data[i : i + dim] for i in range(0, len(data), dim)]
    low, high = _POINTS[gtype]
    if len(points) < low or (high is not None and len(points) > high):
        raise MarksError(f"region of '{label}': a {gtype} takes "
                         f"{low if high == low else f'at least {low}'} points, "
                         f"not {len(points)}")
    if three:
        ref = str(item.get("ReferencedFrameOfReferenceUID", ""))
        if not ref:
            raise MarksError(f"3D region of '{label}' names no frame of reference")
        return {"graphic_type": gtype, "points": points, "coordinates": "3D",
                "frame_of_reference_uid": ref}
    images = [i for i in item.get("ContentSequence", []) if i.get("ValueType") == "IMAGE"]
    refs = _image_refs(images[0]) if images else []
    if not refs:
        raise MarksError(f"region of '{label}' references no image")
    return {"graphic_type": gtype, "points": points, "coordinates": "2D",
            "sop_uid": refs[0].sop_uid, "frame": refs[0].frame}


def _image_refs(item: Dataset) -> list[KeyImageRef]:
    out = []
    for ref in item.get("ReferencedSOPSequence", []):
        uid = str(ref.get("ReferencedSOPInstanceUID", ""))
        if not uid:
            raise MarksError("an image reference has no SOP Instance UID")
        frames = ref.get("ReferencedFrameNumber")
        if frames is None or frames == "":
            out.append(KeyImageRef(uid))
            continue
        values = list(frames) if isinstance(frames, MultiValue | list | tuple) else [frames]
        for f in values:
            try:
                out.append(KeyImageRef(uid, int(f)))
            except (TypeError, ValueError) as exc:
                raise MarksError("an image reference has an unreadable frame number") from exc
    return out
