"""Store the parts of one STOW-RS request: the upload's ingest, in one transaction.

The parts were received into private files (qaportal.dicomweb.multipart_related). They go
through the same `Ingester` as a browser upload: the same parse limits and pixel checks,
the ownership rule (everything lands in the caller's own studies), duplicates, conflicts,
SHA-256 and atomic storage. Its files are stored and synced first; then the request's
UploadBatch, the rows, the batch's totals and the audit entries are written and committed
at once, so a failed request leaves neither rows nor files behind, and the caller finds
the request in their uploads with the reasons of every part refused (the upload's words).
Each part's fate also gets the standard Failure Reason code of PS3.18 (Table I.2-2).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.filereader import _read_file_meta_info  # private; what dcmread uses (3.x)
from sqlalchemy.exc import IntegrityError

from qaportal import audit
from qaportal.dicom import InstanceHeader, SourceItem
from qaportal.dicomweb.multipart_related import DICOM, Part
from qaportal.extensions import db
from qaportal.hooks import megabytes
from qaportal.models import UploadBatch, User
from qaportal.studies.ingest import CONFLICT, Ingester, Prepared
from qaportal.studies.jobs import finish_batch
from qaportal.studies.storage import image_store

SOURCE = "dicomweb"  # UploadBatch.source of what arrived through STOW-RS

# Failure Reason (0008,1197) values, PS3.18 Table I.2-2 (0111: PS3.7 C.4 "Duplicate SOP
# Instance", for a SOP Instance UID already stored with other content).
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111

NOT_IN_TARGET = "not stored: its StudyInstanceUID is not the study this request stores to"
_RESOURCE_PREFIXES = ("too many frames", "deflated data set inflates past", "too large")
_UID = re.compile(r"[0-9.]{1,64}")


@dataclass(frozen=True)
class Outcome:
    """What became of one part: stored (or an identical copy was), or why not."""

    name: str  # "part 3": how the batch and the response refer to it
    status: str  # stored / duplicate / conflict / rejected
    sop_class_uid: str = ""
    sop_uid: str = ""
    study_uid: str = ""
    series_uid: str = ""
    reason: str | None = None  # the upload's own words
    code: int | None = None  # Failure Reason

    @property
    def ok(self) -> bool:
        return self.status in ("stored", "duplicate")


def failure_code(reason: str) -> int:
    """Return the Failure Reason code for an ingest refusal (the upload's text)."""
    if reason == CONFLICT:
        return DUPLICATE_SOP_INSTANCE
    if reason == NOT_IN_TARGET:
        return DOES_NOT_MATCH
    if reason.startswith(_RESOURCE_PREFIXES):
        return OUT_OF_RESOURCES
    if reason.startswith("cannot read file"):  # our side could not read what it received
        return PROCESSING_FAILURE
    return CANNOT_UNDERSTAND


def part_items(parts: Sequence[Part], max_part_bytes: int) -> list[SourceItem]:
    """Return the ingest items of the parts: the files received, or why a part was not."""
    items = []
    for part in parts:
        name = f"part {part.index}"
        if part.container is None:
            shown = part.media_type[:80] or "unknown"
            items.append(SourceItem(name, error=f"not stored: a part of type {shown}; "
                                               f"only {DICOM} parts are stored"))
        elif part.too_large:
            items.append(SourceItem(name, error=f"too large: over the "
                                               f"{megabytes(max_part_bytes)} MB limit per file"))
        else:
            part.container.finish()
            items.append(SourceItem(name, path=part.container.path,
                                    sha256=part.container.sha256, owned=True))
    return items


def store_parts(owner: User, items: Sequence[SourceItem],
                target_study: str | None) -> tuple[list[Outcome], UploadBatch]:
    """Ingest the items for owner into one new batch, committing once; return each item's
    outcome (in order) and the batch. On any failure nothing stays: rows rolled back,
    stored files deleted."""
    outside: list[InstanceHeader] = []  # headers refused for the target study, in order

    def in_target(header: InstanceHeader) -> str | None:
        if target_study is not None and header.study_uid != target_study:
            outside.append(header)
            return NOT_IN_TARGET
        return None

    ingester = Ingester(owner, image_store(), None, check=in_target)
    ingester.prepare(items)
    try:
        for attempt in (1, 2):
            try:
                batch = UploadBatch(user_id=owner.id, source=SOURCE)
                db.session.add(batch)
                db.session.flush()
                ingester.batch = batch
                run = ingester.write()
                finish_batch(batch)
                audit.record("study.upload_finished", batch, actor=owner, via=SOURCE,
                             stored=batch.stored, duplicates=batch.duplicates,
                             conflicts=batch.conflicts,
                             rejected=len(batch.errors) - batch.conflicts)
                db.session.commit()
            except IntegrityError:
                db.session.rollback()
                if attempt == 2:
                    raise
                continue
            ingester.release(run)
            break
    except BaseException:
        db.session.rollback()
        ingester.discard()
        raise
    paths = {item.name: item.path for item in items}
    refused = iter(outside)
    outcomes = []
    for entry, result in zip(ingester.entries, run.results, strict=True):
        if isinstance(entry, Prepared):
            h = entry.header
            uids = (h.sop_class_uid, h.sop_uid, h.study_uid, h.series_uid)
        else:
            name, reason = entry
            if reason == NOT_IN_TARGET:
                h = next(refused)
                uids = (h.sop_class_uid, h.sop_uid, h.study_uid, h.series_uid)
            else:
                uids = (*_meta_uids(paths.get(name)), "", "")
        reason = result.get("error")
        outcomes.append(Outcome(result["file"], result["status"], *uids, reason=reason,
                                code=failure_code(reason) if reason else None))
    return outcomes, batch


def _meta_uids(path: Path | None) -> tuple[str, str]:
    """Return the SOP Class and Instance UIDs of a refused file's meta group, if readable.

    Best effort, for the response to name what failed: only the file meta group, of the
    first bytes; anything odd gives empty UIDs (the part is then named by its place).
    """
    if path is None:
        return "", ""
    try:
        with open(path, "rb") as fp:
            head = fp.read(8192)
        if head[128:132] != b"DICM":
            return "", ""
        meta = _read_file_meta_info(io.BytesIO(head[132:]))
        found = (str(meta.get("MediaStorageSOPClassUID", "") or ""),
                 str(meta.get("MediaStorageSOPInstanceUID", "") or ""))
    except Exception:  # noqa: BLE001 - a refused file may break the reader in many ways
        return "", ""
    sop_class, sop_uid = (v.strip("\x00 ") for v in found)
    return (sop_class if _UID.fullmatch(sop_class) else "",
            sop_uid if _UID.fullmatch(sop_uid) else "")
