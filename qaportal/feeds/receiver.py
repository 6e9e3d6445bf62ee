"""What one accepted DICOM association stores: an upload batch of the peer's owner.

Each C-STORE'd instance is written to a private file (qaportal.feeds.part10) and goes
through the upload's `Ingester` for the peer's owner (the same parse limits and checks,
ownership rule, duplicates, conflicts, SHA-256, atomic storage), then its rows are
committed, all before the C-STORE response leaves: an association that drops midway keeps
every instance already acknowledged. The association's instances form one UploadBatch
(source "dicom"), created at its first instance and finished when the association ends;
the batch's totals are audited then (not each instance).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from flask import Flask
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from qaportal import audit
from qaportal.dicom import SourceItem
from qaportal.dicomweb.stow_ingest import OUT_OF_RESOURCES, PROCESSING_FAILURE, failure_code
from qaportal.extensions import db
from qaportal.feeds.part10 import file_meta, write_received
from qaportal.models import UploadBatch, User
from qaportal.models.loading import without_roles
from qaportal.studies.ingest import Ingester
from qaportal.studies.jobs import finish_batch
from qaportal.studies.storage import image_store

SOURCE = "dicom"  # UploadBatch.source of what arrived through the DICOM listener
SUCCESS = 0x0000
log = logging.getLogger(__name__)


SYNC_THREADS = 2  # the file's fsync and its folder's run side by side


class _BackgroundSync:
    """The image store, syncing the file an instance stored (fsync of the file and of its
    folder) in helper threads while the instance's rows are written; `wait()` before the
    commit makes it durable first, as the ingest requires. One file's fsync also costs far
    less than a whole-filesystem sync on a busy disk.

    The file and its folder are synced at the same time, not one after the other: both
    are awaited before the commit, so the order between them changes nothing (the rows,
    and so the C-STORE success, come only after both), and a journaling filesystem can
    serve the two in one journal commit. The folder is synced for every instance: each
    instance is acknowledged on its own, so its directory entry (the rename into the store)
    must be on disk before its own response; a folder fsync deferred to the end of a
    series would leave acknowledged instances nameless after a crash."""

    def __init__(self, store, pool: ThreadPoolExecutor) -> None:
        self._store = store
        self._pool = pool
        self._pending: list[Future] = []

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def sync(self, keys) -> None:
        paths = [self._store.path(k) for k in keys]
        targets = [*paths, *sorted({p.parent for p in paths})]
        self._pending = [self._pool.submit(_fsync, t) for t in targets]

    def wait(self) -> None:
        """Return once the files are on disk (raise the OSError if they could not be)."""
        pending, self._pending = self._pending, []
        errors = []
        for future in pending:  # every one finished before returning, even after an error
            try:
                future.result()
            except OSError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def _fsync(target: Path) -> None:
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AssociationReceiver:
    """Store the instances of one association for the peer's owner, one commit each."""

    def __init__(self, app: Flask, *, peer_id: int, owner_id: int, calling_ae: str,
                 address: str) -> None:
        self.app = app
        self.peer_id = peer_id
        self.owner_id = owner_id
        self.calling_ae = calling_ae
        self.address = address
        self.batch_id: int | None = None
        self.received = 0
        self.ended_as = "dropped"  # released / aborted when the peer says so
        self._lock = threading.Lock()  # C-STORE handling and the end never overlap
        self._finished = False
        self._tmp: Path | None = None
        self._key_prefix: dict[str, str] = {}  # series uid -> shard, kept across instances
        self._sync_pool: ThreadPoolExecutor | None = None

    # -- each instance ---------------------------------------------------------------
    def store(self, sop_class_uid: str, sop_uid: str, transfer_syntax: str,
              data_set: bytes) -> int:
        """Store one received data set; return the C-STORE status (never success for a
        refused instance; an identical copy already stored is a success)."""
        with self._lock:
            if self._finished:
                return PROCESSING_FAILURE
            self.received += 1
            name = f"instance {self.received}"
            try:
                path, sha256 = write_received(
                    self._folder(), file_meta(sop_class_uid, sop_uid, transfer_syntax,
                                              self.calling_ae), data_set)
            except OSError as exc:
                log.warning("dicom listener: cannot write a received instance (%s)",
                            errno.errorcode.get(exc.errno or 0, type(exc).__name__))
                return OUT_OF_RESOURCES
            try:
                with self.app.app_context():
                    return self._ingest(SourceItem(name, path=path, sha256=sha256,
                                                   owned=True))
            finally:
                path.unlink(missing_ok=True)  # moved into the store, unless refused

    def _folder(self) -> Path:
        if self._tmp is None:
            root = Path(self.app.config["UPLOAD_TMP"])
            root.mkdir(parents=True, exist_ok=True)
            self._tmp = Path(tempfile.mkdtemp(prefix="dicom-", dir=root))
        return self._tmp

    def _ingest(self, item: SourceItem) -> int:
        # Each instance has a session of its own: the owner's roles and subspecialties
        # (loaded with a User by default) would be two more queries per instance.
        owner = db.session.get(User, self.owner_id, options=without_roles())
        batch = self._batch(owner)
        store = image_store()
        if hasattr(store, "path"):  # a filesystem store
            if self._sync_pool is None:
                self._sync_pool = ThreadPoolExecutor(SYNC_THREADS,
                                                     thread_name_prefix="dicom-fsync")
            store = _BackgroundSync(store, self._sync_pool)
        ingester = Ingester(owner, store, batch, audit_runs=False)
        ingester._key_prefix = self._key_prefix
        try:
            ingester.prepare([item])
        except OSError:
            return OUT_OF_RESOURCES  # the store could not take it (full, unwritable)
        try:
            for attempt in (1, 2):
                try:
                    run = ingester.write(lock_batch=False)  # only this association writes it
                    if isinstance(store, _BackgroundSync):
                        store.wait()  # the file is on disk before its row is committed
                    db.session.commit()
                except IntegrityError:
                    # Another upload created the same study or series at the same moment.
                    db.session.rollback()
                    if attempt == 2:
                        raise
                    batch = db.session.get(UploadBatch, self.batch_id)
                    ingester.batch = batch
                    continue
                ingester.release(run)
                break
        except OSError:
            db.session.rollback()
            ingester.discard()
            return OUT_OF_RESOURCES  # the file could not be made durable
        except SQLAlchemyError as exc:
            db.session.rollback()
            ingester.discard()
            log.warning("dicom listener: an instance was not recorded (%s)", type(exc).__name__)
            return PROCESSING_FAILURE
        except BaseException:
            db.session.rollback()
            ingester.discard()
            raise
        result = run.results[0]
        if result["status"] in ("stored", "duplicate"):
            return SUCCESS
        return failure_code(result.get("error") or "")

    def _batch(self, owner: User) -> UploadBatch:
        if self.batch_id is not None:
            return db.session.get(UploadBatch, self.batch_id)
        batch = UploadBatch(user_id=owner.id, source=SOURCE)
        db.session.add(batch)
        db.session.commit()
        self.batch_id = batch.id
        return batch

    # -- the end -----------------------------------------------------------------------
    def finish(self) -> None:
        """Close the batch and audit the association's end with its totals (once)."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            if self._sync_pool is not None:
                self._sync_pool.shutdown(wait=True)
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
            with self.app.app_context():
                try:
                    self._record_end()
                    db.session.commit()
                except SQLAlchemyError as exc:
                    db.session.rollback()
                    log.error("dicom listener: the end of an association was not recorded "
                              "(%s)", type(exc).__name__)

    def _record_end(self) -> None:
        owner = db.session.get(User, self.owner_id)
        totals: dict = {"received": self.received}
        batch = None
        if self.batch_id is not None:
            batch = db.session.get(UploadBatch, self.batch_id)
            finish_batch(batch)
            totals.update(stored=batch.stored, duplicates=batch.duplicates,
                          conflicts=batch.conflicts,
                          rejected=len(batch.errors) - batch.conflicts,
                          studies=list(batch.study_ids))
            audit.record("study.upload_finished", batch, actor=owner, via=SOURCE,
                         **{k: v for k, v in totals.items() if k != "received"})
            if batch.stored:
                # The worker computes the new instances' DICOMweb headers once the
                # association is over (not per instance: a study arrives one instance at
                # a time), so that the first viewer to open the study reads no file.
                from qaportal.jobs import enqueue_after_commit

                for study_id in sorted(batch.study_ids):
                    enqueue_after_commit(db.session, "warm_metadata", study_id, owner.id)
        audit.record("feeds.dicom_association_ended", ("dicom_peers", self.peer_id),
                     actor=owner, actor_label=f"dicom:{self.calling_ae}",
                     calling_ae=self.calling_ae, address=self.address, ended=self.ended_as,
                     batch=self.batch_id, **totals)

