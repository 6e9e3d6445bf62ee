"""Ingest DICOM files: group them into studies, series and instances; store them durably.

Two phases. `Ingester.prepare` parses every file's header and stores the file (moving a
received upload into the store, or copying), hashing it once, and syncs the store: no
database write yet, so concurrent uploads do this slow part in parallel. `Ingester.write`
then adds all rows in one short burst (the caller commits): lock the batch row, look up
known instances, studies and series with a few set queries, insert what is new. A lost
race on a unique UID rolls back and `write` runs again against the files already stored.

Study identity is scoped to the owner: every lookup here is limited to the uploader's own
studies, so an upload only ever adds to those. The same StudyInstanceUID uploaded by
someone else becomes that user's own separate study; it never grants access to, adds to,
or reveals (in counts, statuses or messages) a study of another user.
After the commit, `Ingester.release` also queues the job that caches the new instances'
DICOMweb metadata (when asked: the import job and STOW-RS do).
If the transaction fails the caller deletes what this run stored (`Ingester.discard`).
A hard crash between the two can leave unreferenced files, which
`qaportal verify-storage` reports and removes; the database never points at a file that
is not there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from qaportal import audit
from qaportal.dicom import (
    DicomRejected,
    ImageStore,
    InstanceHeader,
    SourceItem,
    new_key,
    read_header,
    store_file,
)
from qaportal.extensions import db
from qaportal.models import Instance, Series, Study, UploadBatch, User
from qaportal.studies.ingest_rows import (
    _IN_CHUNK,
    _by_uid,
    _increment,
    _study_from,
    slice_position,
)
from qaportal.studies.limits import parse_limits

# Modalities whose pixels often carry burned-in text when the header does not say otherwise.
BURNED_IN_PRONE = {"US", "SC", "OT", "XC", "ES", "DOC"}
CONFLICT = "conflict: another file with this SOPInstanceUID and different content is stored"
SeriesKey = tuple[str, str]  # (StudyInstanceUID, SeriesInstanceUID) within one owner
log = logging.getLogger(__name__)


@dataclass
class IngestRun:
    """What one ingest run did (rows added in this transaction) and keys it does not use."""

    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    bytes_stored: int = 0
    errors: list[dict] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)
    study_ids: set[int] = field(default_factory=set)
    # Files stored in the prepare phase that turned out duplicates or conflicts: no row
    # refers to them, they are deleted once the transaction has committed.
    unused_keys: list[str] = field(default_factory=list)

    def reject(self, name: str, reason: str) -> None:
        self.errors.append({"file": name, "error": reason})
        self.results.append({"file": name, "status": "rejected", "error": reason})


@dataclass(frozen=True, slots=True)
class Prepared:
    """A file parsed and stored, waiting for its row."""

    name: str
    header: InstanceHeader
    key: str
    sha256: str
    size: int


class Ingester:
    """Ingest files for one owner: prepare (parse, store, sync), then write rows."""

    def __init__(self, owner: User, store: ImageStore, batch: UploadBatch | None = None, *,
                 check: Callable[[InstanceHeader], str | None] | None = None,
                 audit_runs: bool = True, cache_metadata: bool = False):
        self.owner = owner
        self.owner_id = owner.id  # read after a commit, owner.id would load the User again
        self.store = store
        self.batch = batch
        # A caller's own rule on a parsed header (STOW-RS: the target study): a reason to
        # refuse the file, or None; a refused file is never stored.
        self.check = check
        # False: the caller audits the batch's totals itself (a DICOM association stores
        # and commits one instance at a time; one entry per instance would flood the log).
        self.audit_runs = audit_runs
        # True: release() also queues the job (`warm_metadata`, in the worker: ~2.7 ms of CPU
        # per 512 KB slice, not in the request) that caches the new instances' DICOMweb
        # metadata for the first viewer to open the study. The import job (upload, CLI) and
        # STOW-RS do; the DICOM listener, which commits one instance at a time, queues it
        # once per study when the association ends (feeds/receiver.py).
        self.cache_metadata = cache_metadata
        self.entries: list[Prepared | tuple[str, str]] = []  # input order; (name, reason)
        self.written_keys: list[str] = []
        self._key_prefix: dict[str, str] = {}  # series uid -> shard prefix, within this run

    # -- phase 1: files (no database writes) -------------------------------------------
    def prepare(self, items: Iterable[SourceItem]) -> None:
        """Parse and store every item, then sync; on failure delete what was stored."""
        try:
            for item in items:
                if not item.ok:
                    self.entries.append((item.name, item.error or "refused"))
                    continue
                try:
                    header = read_header(item.path, parse_limits(), item.head)
                except DicomRejected as exc:
                    self.entries.append((item.name, exc.reason))
                    continue
                except Exception as exc:  # noqa: BLE001 - one bad file never fails the batch
                    # The type only: messages and names may carry patient data.
                    log.warning("ingest: unreadable file in batch %s (%s)",
                                self.batch.id if self.batch else "-", type(exc).__name__)
                    self.entries.append((item.name, f"unreadable file ({type(exc).__name__})"))
                    continue
                refused = self.check(header) if self.check is not None else None
                if refused:
                    self.entries.append((item.name, refused))
                    continue
                self._ingest_one(item, header)
            # Files are written without a fsync each; one pass makes them all durable
            # before the caller commits rows that refer to them.
            self.store.sync(self.written_keys)
        except BaseException:
            self.discard()
            raise

    def _ingest_one(self, item: SourceItem, h: InstanceHeader) -> None:
        """Store one parsed file (moved in if it is a received upload), hashing it once."""
        key = self._key_for(h.series_uid)
        stored = store_file(self.store, key, item.path, sha256=item.sha256, move=item.owned,
                            sync=False)
        self.written_keys.append(key)
        self.entries.append(Prepared(item.name, h, key, stored.sha256, stored.size))

    def discard(self) -> None:
        """Delete every file this run stored (after a failed transaction)."""
        for key in self.written_keys:
            self.store.delete(key)
        self.written_keys.clear()

    def release(self, run: IngestRun) -> None:
        """Delete the stored files no row refers to (call after the commit), then match
        the owner's reads waiting for the run's studies (HL7/FHIR reads sent before their
        images; this commits on its own). Every ingest path calls this after its commit.

        The files are committed now: they are forgotten first, so that a `discard()` in a
        caller's error path, after anything here fails, never deletes a committed file."""
        self.written_keys = []
        for key in run.unused_keys:
            self.store.delete(key)
        run.unused_keys.clear()
        if self.cache_metadata and run.stored:
            from qaportal.jobs import enqueue_now

            for study_id in sorted(run.study_ids):
                enqueue_now("warm_metadata", study_id, self.owner_id)
        if run.study_ids:
            from qaportal.feeds.reads import match_after_ingest

            match_after_ingest(self.owner_id, run.study_ids)

    def _key_for(self, series_uid: str) -> str:
        """Return a new random key sharing its shard prefix with the rest of this series.

        The store shards by the key's first four hex digits; files of one series in one
        folder are read together by the viewer, and a batch syncs one folder, not hundreds.
        """
        prefix = self._key_prefix.setdefault(series_uid, new_key()[:4])
        return prefix + new_key()[4:]

    # -- phase 2: rows, in one short burst ---------------------------------------------
    def write(self, *, lock_batch: bool = True) -> IngestRun:
        """Add the rows for the prepared files in the current transaction (caller commits).

        Statements are ordered for concurrency: the batch row first (chunks of one batch
        take turns; on SQLite the first write takes the database's write lock, so what
        follows reads a settled state), then new studies, series and instances in UID
        order (two uploads never wait on each other in opposite orders), audit last.
        lock_batch=False: a batch inserted in this transaction (no other one can see it).
        """
        run = IngestRun()
        if lock_batch:
            self._lock_batch()
        records = [e for e in self.entries if isinstance(e, Prepared)]
        known = self._known_instances({r.header.sop_uid for r in records})
        seen: dict[str, str] = {}
        touched: set[int] = set()  # the uploader's own studies that held a file already
        new: list[Prepared] = []
        for entry in self.entries:
            if not isinstance(entry, Prepared):
                run.reject(*entry)
                continue
            uid = entry.header.sop_uid
            prior = seen.get(uid)
            if prior is None and uid in known:
                prior, study_id = known[uid]
                touched.add(study_id)
            if prior is not None:
                run.unused_keys.append(entry.key)
                if prior == entry.sha256:
                    run.duplicates += 1
                    run.results.append({"file": entry.name, "status": "duplicate"})
                else:
                    run.conflicts += 1
                    run.reject(entry.name, CONFLICT)
                    run.results[-1]["status"] = "conflict"
                continue
            seen[uid] = entry.sha256
            new.append(entry)
            run.stored += 1
            run.bytes_stored += entry.size
            run.results.append({"file": entry.name, "status": "stored"})
        studies, created = self._studies_for(new)
        series, grown = self._series_for(new, studies)
        self._add_instances(new, series)
        # Row updates before the audit chain's lock; only a study that gained a series can
        # have gained a modality (files added to known series leave the list as it is).
        self._finish_studies([studies[uid] for uid in sorted(grown)])
        for study in created:
            audit.record("study.created", study, actor=self.owner)
        run.study_ids |= touched | {s.id for s in studies.values()}
        self._record(run)
        db.session.flush()
        return run

    def _lock_batch(self) -> None:
        """Take the batch row's lock with a no-op update and reload it."""
        if self.batch is None:
            return
        db.session.execute(sa.update(UploadBatch).where(UploadBatch.id == self.batch.id)
                           .values(stored=UploadBatch.stored))
        db.session.refresh(self.batch)

    def _known_instances(self, sop_uids: set[str]) -> dict[str, tuple[str, int]]:
        """Return {sop uid: (sha256, study id)} for the UIDs stored in the owner's studies."""
        found: dict[str, tuple[str, int]] = {}
        uids = sorted(sop_uids)
        for i in range(0, len(uids), _IN_CHUNK):
            rows = db.session.execute(
                sa.select(Instance.sop_uid, Instance.sha256, Series.study_id)
                .join(Series, Instance.series_id == Series.id)
                .join(Study, Series.study_id == Study.id)
                .where(Study.owner_id == self.owner_id,
                       Instance.sop_uid.in_(uids[i : i + _IN_CHUNK]))
                .order_by(Instance.id)
            )
            for r in rows:
                found.setdefault(r.sop_uid, (r.sha256, r.study_id))
        return found

    def _studies_for(self, new: Sequence[Prepared]) -> tuple[dict[str, Study], list[Study]]:
        """Return the owner's studies of new files by UID, creating (and flushing) missing ones."""
        first: dict[str, InstanceHeader] = {}
        for r in new:
            first.setdefault(r.header.study_uid, r.header)
        studies = {s.study_uid: s for s in _by_uid(Study, Study.study_uid, first,
                                                   Study.owner_id == self.owner_id)}
        created = []
        for uid in sorted(first.keys() - studies.keys()):
            study = _study_from(first[uid], self.owner)
            db.session.add(study)
            studies[uid] = study
            created.append(study)
        if created:
            db.session.flush()
        return studies, created

    def _series_for(self, new: Sequence[Prepared], studies: dict[str, Study],
                    ) -> tuple[dict[SeriesKey, Series], set[str]]:
        """Return the series of new files within their study, creating missing ones, and
        the UIDs of the studies a series was added to."""
        first: dict[SeriesKey, InstanceHeader] = {}
        for r in new:
            first.setdefault((r.header.study_uid, r.header.series_uid), r.header)
        uid_of = {s.id: uid for uid, s in studies.items()}
        series = {(uid_of[s.study_id], s.series_uid): s
                  for s in _by_uid(Series, Series.series_uid, {k[1] for k in first},
                                   Series.study_id.in_(list(uid_of)))}
        missing = sorted(first.keys() - series.keys())
        added: dict[str, int] = {}
        for key in missing:
            h = first[key]
            series[key] = Series(
                study_id=studies[h.study_uid].id, series_uid=h.series_uid,
                modality=h.modality[:16], series_number=h.series_number,
                series_description=h.series_description[:200], body_part=h.body_part[:64],
                instance_count=0, frame_count=0,
            )
            db.session.add(series[key])
            added[h.study_uid] = added.get(h.study_uid, 0) + 1
        for study_uid, n in added.items():
            _increment(studies[study_uid], "series_count", n)
        if missing:
            db.session.flush()
        return series, set(added)

    def _add_instances(self, new: Sequence[Prepared],
                       series: dict[SeriesKey, Series]) -> None:
        """Insert the instance rows (one bulk statement) and add them to the counters."""
        rows = []
        per_series: dict[SeriesKey, list[int]] = {}
        per_study: dict[int, list[int]] = {}
        for r in sorted(new, key=lambda r: r.header.sop_uid):
            h = r.header
            key = (h.study_uid, h.series_uid)
            s = series[key]
            frames = max(1, h.frames or 1)
            rows.append(dict(
                series_id=s.id, sop_uid=h.sop_uid, sop_class_uid=h.sop_class_uid[:64],
                instance_number=h.instance_number, slice_position=slice_position(h),
                rows=h.rows, columns=h.columns, frames=frames,
                transfer_syntax_uid=h.transfer_syntax_uid[:64],
                photometric_interpretation=h.photometric_interpretation[:32],
                burned_in_annotation=h.burned_in_annotation, window_center=h.window_center,
                window_width=h.window_width, storage_key=r.key, sha256=r.sha256,
                size_bytes=r.size,
            ))
            count = per_series.setdefault(key, [0, 0])
            count[0] += 1
            count[1] += frames
            totals = per_study.setdefault(s.study_id, [0, 0])
            totals[0] += 1
            totals[1] += r.size
            if h.burned_in_annotation or h.has_overlay_data or (
                h.burned_in_annotation is None and h.modality.upper() in BURNED_IN_PRONE
            ):
                totals.append(1)
        if rows:
            db.session.execute(sa.insert(Instance), rows)
        for key, (count, frames) in per_series.items():
            _increment(series[key], "instance_count", count)
            _increment(series[key], "frame_count", frames)
        studies = {s.study_id: s.study for s in series.values()}
        for study_id, totals in per_study.items():
            study = studies[study_id]
            _increment(study, "instance_count", totals[0])
            _increment(study, "size_bytes", totals[1])
            if len(totals) > 2:
                study.burned_in_suspected = True

    def _finish_studies(self, studies: Iterable[Study]) -> None:
        """Write the counters, then the modalities (from all its series) of studies."""
        db.session.flush()
        if not studies:
            return
        for study in studies:
            modalities = sorted({s.modality for s in study.series if s.modality})
            study.modalities = "/".join(modalities)[:64]
        db.session.flush()

    def _record(self, run: IngestRun) -> None:
        """Add the run to its batch (locked) and audit it."""
        batch = self.batch
        if batch is not None:
            batch.stored += run.stored
            batch.duplicates += run.duplicates
            batch.conflicts += run.conflicts
            batch.bytes_stored += run.bytes_stored
            batch.errors = [*batch.errors, *run.errors]
            batch.study_ids = sorted(set(batch.study_ids) | run.study_ids)
        if not self.audit_runs:
            return
        audit.record("study.files_ingested", batch or None, actor=self.owner,
                     stored=run.stored, duplicates=run.duplicates, conflicts=run.conflicts,
                     rejected=len(run.errors) - run.conflicts, studies=sorted(run.study_ids))


def ingest_items(items: Iterable[SourceItem], owner: User, store: ImageStore,
                 batch: UploadBatch | None = None) -> IngestRun:
    """Ingest items in the current transaction; on failure the files are deleted again.

    The caller commits, then may delete the run's unused files (`Ingester.release`).
    """
    ingester = Ingester(owner, store, batch)
    ingester.prepare(items)
    try:
        return ingester.write()
    except BaseException:
        ingester.discard()
        raise
