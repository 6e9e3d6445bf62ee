"""Store the parts of one STOW-RS request: the upload's ingest, in one transaction.

The parts were received into private files (qaportal.dicomweb.multipart_related). They go
through the same `Ingester` as a browser upload: the same parse limits and pixel checks,
the ownership rule (everything lands in the caller's own studies), duplicates, conflicts,
SHA-256 and atomic storage. Its files are stored and synced first; then the request's
UploadBatch, the rows, the batch's totals and the audit entries (with the API token's use,
qaportal.auth.tokens.record_use) are written and committed at once, so a failed request
leaves neither rows nor files behind, and the caller finds the request in their uploads
with the reasons of every part refused (the upload's words).
Each part's fate also gets the standard Failure Reason code of PS3.18 (Table I.2-2).
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy.exc import IntegrityError

from qaportal import audit
from qaportal.auth.tokens import record_use
from qaportal.dicom import InstanceHeader, SourceItem
from qaportal.dicom.parse import meta_sop_uids
from qaportal.dicomweb.multipart_related import DICOM, Part
from qaportal.extensions import db
from qaportal.hooks import megabytes
from qaportal.models import UploadBatch, User
from qaportal.studies.ingest import CONFLICT, Ingester, IngestRun, Prepared
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
NOT_THE_CONTEXT_STUDY = "not stored: its StudyInstanceUID is not the study of "
_RESOURCE_PREFIXES = ("too many frames", "deflated data set inflates past", "too large")


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
    if reason == NOT_IN_TARGET or reason.startswith(NOT_THE_CONTEXT_STUDY):
        return DOES_NOT_MATCH
    if reason.startswith(_RESOURCE_PREFIXES):
        return OUT_OF_RESOURCES
    if reason.startswith("cannot read file"):  # our side could not read what it received
        return PROCESSING_FAILURE
    return CANNOT_UNDERSTAND


def part_item(part: Part, max_part_bytes: int) -> SourceItem:
    """Return the ingest item of a part: the file received, or why the part was not kept."""
    name = f"part {part.index}"
    if part.container is None:
        shown = part.media_type[:80] or "unknown"
        return SourceItem(name, error=f"not stored: a part of type {shown}; "
                                      f"only {DICOM} parts are stored")
    if part.too_large:
        return SourceItem(name, error=f"too large: over the {megabytes(max_part_bytes)} MB "
                                      "limit per file")
    part.container.finish()
    return SourceItem(name, path=part.container.path, sha256=part.container.sha256,
                      owned=True, head=part.container.head)


_END = object()
SWITCH_INTERVAL_S = 0.0002


class StowIngest:
    """Ingest one request's parts for owner while the body is still arriving.

    `add()` hands each received part to a second thread that parses and stores it (the
    upload's `Ingester.prepare`: header parse, pixel checks, move into the store), so the
    parse of one part overlaps the receipt of the next (reading the socket, writing and
    hashing release the interpreter lock). `finish()` waits for it; `commit()` then writes
    the batch, rows and audit in one transaction. `abort()` (a body cut off, any error)
    deletes whatever was stored. No database access happens in the second thread.
    """

    def __init__(self, owner: User, target_study: str | None,
                 check: Callable[[InstanceHeader], str | None] | None = None) -> None:
        self.owner = owner
        self.target_study = target_study
        self._check = check  # a further refusal (the viewer marks' context), no database
        self.items: list[SourceItem] = []
        self._outside: list[InstanceHeader] = []  # refused for the target study, in order
        self.ingester = Ingester(owner, image_store(), None, check=self._in_target,
                                 cache_metadata=True)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._ended = False
        app = current_app._get_current_object()
        self._thread = threading.Thread(target=self._prepare, args=(app,), daemon=True,
                                        name="stow-prepare")
        # The reading thread's every write, hash and recv lets go of the interpreter lock
        # and must get it back from the parsing thread: by default that waits up to 5 ms
        # each time, more than the work. A short interval while both run avoids it.
        self._interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._interval, SWITCH_INTERVAL_S))
        self._thread.start()

    def _in_target(self, header: InstanceHeader) -> str | None:
        if self.target_study is not None and header.study_uid != self.target_study:
            self._outside.append(header)
            return NOT_IN_TARGET
        return self._check(header) if self._check is not None else None

    def _items(self) -> Iterator[SourceItem]:
        while (entry := self._queue.get()) is not _END:
            item, received = entry
            if received is not None and item.ok:
                received.wait_written()  # its O_DIRECT writes may still be queued
            yield item
        self._ended = True

    def _prepare(self, app) -> None:
        try:
            with app.app_context():  # for the configured parse limits
                self.ingester.prepare(self._items())
        except BaseException as exc:  # noqa: BLE001 - handed to the request's thread
            self._error = exc
            while not self._ended and self._queue.get() is not _END:  # let finish() go on
                pass

    def add(self, item: SourceItem, received=None) -> None:
        """Queue one part's item for parsing and storing; received: the ReceivedFile it was
        written to (its queued writes are waited for before the parse)."""
        self.items.append(item)
        self._queue.put((item, received))

    def finish(self) -> None:
        """Wait until every queued item is parsed and stored (raise what failed there)."""
        self._queue.put(_END)
        self._join()
        if self._error is not None:
            raise self._error

    def _join(self) -> None:
        self._thread.join()
        sys.setswitchinterval(self._interval)

    def abort(self) -> None:
        """Stop, and delete every file stored for this request."""
        if self._thread.is_alive():
            self._queue.put(_END)
        self._join()
        self.ingester.discard()

    def commit(self) -> tuple[list[Outcome], UploadBatch]:
        """Write the request's batch, rows and audit in one transaction; return each part's
        outcome (in order) and the batch. On failure nothing stays (rolled back, deleted)."""
        ingester = self.ingester
        try:
            for attempt in (1, 2):
                try:
                    # The audit entries (studies created, files ingested, the token's use,
                    # the batch) are chained and written together, last.
                    with audit.batched():
                        run, batch = self._write()
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
        return self._outcomes(run), batch

    def _write(self) -> tuple[IngestRun, UploadBatch]:
        batch = UploadBatch(user_id=self.owner.id, source=SOURCE)
        finish_batch(batch)  # in its INSERT: no other transaction sees it unfinished
        db.session.add(batch)
        db.session.flush()
        self.ingester.batch = batch
        run = self.ingester.write(lock_batch=False)  # the batch was just added
        record_use()  # the token's use, in this transaction (one commit)
        audit.record("study.upload_finished", batch, actor=self.owner, via=SOURCE,
                     stored=batch.stored, duplicates=batch.duplicates,
                     conflicts=batch.conflicts, rejected=len(batch.errors) - batch.conflicts)
        return run, batch

    def _outcomes(self, run: IngestRun) -> list[Outcome]:
        paths = {item.name: item.path for item in self.items}
        refused = iter(self._outside)
        outcomes = []
        for entry, result in zip(self.ingester.entries, run.results, strict=True):
            if isinstance(entry, Prepared):
                h: InstanceHeader | None = entry.header
            elif entry[1] == NOT_IN_TARGET:
                h = next(refused)
            else:
                h = None
            uids = ((h.sop_class_uid, h.sop_uid, h.study_uid, h.series_uid) if h
                    else (*_meta_uids(paths.get(result["file"])), "", ""))
            reason = result.get("error")
            outcomes.append(Outcome(result["file"], result["status"], *uids, reason=reason,
                                    code=failure_code(reason) if reason else None))
        return outcomes


def _meta_uids(path: Path | None) -> tuple[str, str]:
    """Return the SOP Class and Instance UIDs a refused file's meta group names, if any."""
    return meta_sop_uids(path)
