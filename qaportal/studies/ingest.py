"""Ingest DICOM files: group them into studies, series and instances; store them durably.

Files are written to the image store before the database commit; if the transaction fails
the caller deletes what this run stored (`IngestRun.discard`). A hard crash between the
two can leave unreferenced files, which `qaportal verify-storage` reports and removes; the
database never points at a file that is not there.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from qaportal import audit
from qaportal.dicom import (
    DicomRejected,
    ImageStore,
    InstanceHeader,
    SourceItem,
    date_shift_for,
    new_key,
    read_header,
)
from qaportal.extensions import db
from qaportal.models import Instance, Series, Study, UploadBatch, User
from qaportal.studies.access import grant_access

# Modalities whose pixels often carry burned-in text when the header does not say otherwise.
BURNED_IN_PRONE = {"US", "SC", "OT", "XC", "ES", "DOC"}
CONFLICT = "conflict: another file with this SOPInstanceUID and different content is stored"


@dataclass
class IngestRun:
    """What one ingest run did, and the store keys it wrote (to undo on rollback)."""

    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    bytes_stored: int = 0
    errors: list[dict] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)
    study_ids: set[int] = field(default_factory=set)
    written_keys: list[str] = field(default_factory=list)

    def reject(self, name: str, reason: str) -> None:
        self.errors.append({"file": name, "error": reason})
        self.results.append({"file": name, "status": "rejected", "error": reason})

    def discard(self, store: ImageStore) -> None:
        """Delete the files this run stored (after a rollback)."""
        for key in self.written_keys:
            store.delete(key)
        self.written_keys.clear()


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def slice_position(h: InstanceHeader) -> float | None:
    """Return the position along the slice normal (for anatomical order), if known."""
    if h.image_position and h.image_orientation and len(h.image_orientation) == 6:
        r, c = h.image_orientation[:3], h.image_orientation[3:]
        normal = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2],
                  r[0] * c[1] - r[1] * c[0])
        value = sum(p * n for p, n in zip(h.image_position, normal, strict=True))
        return value if math.isfinite(value) else None
    return h.slice_location


def _new_pseudonym() -> str:
    return "QA-" + secrets.token_hex(5).upper()


def _study_from(h: InstanceHeader, owner: User) -> Study:
    key = secrets.token_hex(32)
    return Study(
        study_uid=h.study_uid, owner_id=owner.id, patient_name=h.patient_name[:200],
        patient_id=h.patient_id[:64], patient_sex=h.patient_sex[:16],
        patient_birth_date=h.patient_birth_date, accession_number=h.accession_number[:64],
        study_date=h.study_date, study_time=h.study_time,
        study_description=h.study_description[:200], body_part=h.body_part[:64],
        institution=h.institution[:200], referring_physician=h.referring_physician[:200],
        deid_key=key, deid_date_shift_days=date_shift_for(bytes.fromhex(key), h.study_uid),
        pseudonym=_new_pseudonym(), series_count=0, instance_count=0, size_bytes=0,
        burned_in_suspected=False,
    )


class Ingester:
    """Ingest files for one owner within the caller's transaction."""

    def __init__(self, owner: User, store: ImageStore, batch: UploadBatch | None = None):
        self.owner = owner
        self.store = store
        self.batch = batch
        self.run = IngestRun()
        self._studies: dict[str, Study] = {}
        self._series: dict[str, Series] = {}
        self._seen: dict[str, str] = {}  # sop uid -> sha256, within this run
        self._key_prefix: dict[str, str] = {}  # series uid -> shard prefix, within this run

    def ingest(self, items: Iterable[SourceItem]) -> IngestRun:
        """Ingest every item; refused items are reported by name, the rest stored."""
        for item in items:
            if not item.ok:
                self.run.reject(item.name, item.error or "refused")
                continue
            try:
                header = read_header(item.path)
            except DicomRejected as exc:
                self.run.reject(item.name, exc.reason)
                continue
            self._ingest_one(item, header)
        # Files are written without a fsync each; one pass makes them all durable before
        # the caller commits rows that refer to them.
        self.store.sync(self.run.written_keys)
        self._finish_studies()
        db.session.flush()
        return self.run

    def _ingest_one(self, item: SourceItem, h: InstanceHeader) -> None:
        sha = file_sha256(item.path)
        known = self._seen.get(h.sop_uid)
        if known is None:
            # No autoflush: this run's own instances are in self._seen, and flushing the
            # pending rows before every lookup cost more than the rest of the ingest.
            with db.session.no_autoflush:
                existing = db.session.execute(
                    sa.select(Instance.sha256, Series.study_id)
                    .join(Series, Instance.series_id == Series.id)
                    .where(Instance.sop_uid == h.sop_uid)
                ).first()
            if existing is not None:
                known = existing.sha256
                self._share_existing(existing.study_id)
        if known is not None:
            if known == sha:
                self.run.duplicates += 1
                self.run.results.append({"file": item.name, "status": "duplicate"})
            else:
                self.run.conflicts += 1
                self.run.reject(item.name, CONFLICT)
                self.run.results[-1]["status"] = "conflict"
            return
        series = self._series_for(h)
        key = self._key_for(h.series_uid)
        stored = self.store.put(key, item.path, sync=False)
        self.run.written_keys.append(key)
        if stored.sha256 != sha:  # the file changed while we read it
            self.store.delete(key)
            self.run.written_keys.remove(key)
            self.run.reject(item.name, "file changed while it was being stored")
            return
        series.instances.append(Instance(
            sop_uid=h.sop_uid, sop_class_uid=h.sop_class_uid[:64],
            instance_number=h.instance_number, slice_position=slice_position(h),
            rows=h.rows, columns=h.columns, frames=max(1, h.frames or 1),
            transfer_syntax_uid=h.transfer_syntax_uid[:64],
            photometric_interpretation=h.photometric_interpretation[:32],
            burned_in_annotation=h.burned_in_annotation, window_center=h.window_center,
            window_width=h.window_width, storage_key=key, sha256=stored.sha256,
            size_bytes=stored.size,
        ))
        series.instance_count += 1
        series.frame_count += max(1, h.frames or 1)
        study = series.study
        study.instance_count += 1
        study.size_bytes += stored.size
        if h.burned_in_annotation or (
            h.burned_in_annotation is None and h.modality.upper() in BURNED_IN_PRONE
        ):
            study.burned_in_suspected = True
        self._seen[h.sop_uid] = sha
        self.run.stored += 1
        self.run.bytes_stored += stored.size
        self.run.results.append({"file": item.name, "status": "stored"})

    def _key_for(self, series_uid: str) -> str:
        """Return a new random key sharing its shard prefix with the rest of this series.

        The store shards by the key's first four hex digits; files of one series in one
        folder are read together by the viewer, and a batch syncs one folder, not hundreds.
        """
        prefix = self._key_prefix.setdefault(series_uid, new_key()[:4])
        return prefix + new_key()[4:]

    def _share_existing(self, study_id: int) -> None:
        """The uploader holds these images already: let them see the stored study."""
        study = db.session.get(Study, study_id)
        self.run.study_ids.add(study_id)
        if study.owner_id != self.owner.id:
            source = ("upload_batch", self.batch.id if self.batch else 0)
            grant_access(study, self.owner, mode="full", source=source, by=self.owner)

    def _study_for(self, h: InstanceHeader) -> Study:
        study = self._studies.get(h.study_uid)
        if study is None:
            study = db.session.scalar(sa.select(Study).where(Study.study_uid == h.study_uid))
            if study is None:
                study = _study_from(h, self.owner)
                db.session.add(study)
                db.session.flush()
                audit.record("study.created", study, actor=self.owner)
            elif study.owner_id != self.owner.id:
                self._share_existing(study.id)
            self._studies[h.study_uid] = study
        return study

    def _series_for(self, h: InstanceHeader) -> Series:
        series = self._series.get(h.series_uid)
        if series is None:
            series = db.session.scalar(sa.select(Series).where(Series.series_uid == h.series_uid))
            if series is None:
                study = self._study_for(h)
                series = Series(
                    series_uid=h.series_uid, modality=h.modality[:16],
                    series_number=h.series_number,
                    series_description=h.series_description[:200], body_part=h.body_part[:64],
                    instance_count=0, frame_count=0,
                )
                study.series.append(series)
                study.series_count += 1
            self._series[h.series_uid] = series
        return series

    def _finish_studies(self) -> None:
        for study in self._studies.values():
            modalities = sorted({s.modality for s in study.series if s.modality})
            study.modalities = "/".join(modalities)[:64]
            self.run.study_ids.add(study.id)


def ingest_items(items: Iterable[SourceItem], owner: User, store: ImageStore,
                 batch: UploadBatch | None = None) -> IngestRun:
    """Ingest items in the current transaction; on failure the caller rolls back + discards."""
    ingester = Ingester(owner, store, batch)
    try:
        run = ingester.ingest(items)
    except BaseException:
        ingester.run.discard(store)
        raise
    if batch is not None:
        batch.stored += run.stored
        batch.duplicates += run.duplicates
        batch.conflicts += run.conflicts
        batch.bytes_stored += run.bytes_stored
        batch.errors = [*batch.errors, *run.errors]
        batch.study_ids = sorted(set(batch.study_ids) | run.study_ids)
    audit.record("study.files_ingested", batch or None, actor=owner, stored=run.stored,
                 duplicates=run.duplicates, conflicts=run.conflicts,
                 rejected=len(run.errors) - run.conflicts, studies=sorted(run.study_ids))
    return run
