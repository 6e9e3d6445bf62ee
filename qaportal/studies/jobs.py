"""Import work that commits: plain functions taking ids, so a worker could run them too."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from flask import current_app
from sqlalchemy.exc import IntegrityError

from qaportal.dicom import Received, SourceLimits, iter_files
from qaportal.extensions import db
from qaportal.models import UploadBatch, User, utcnow
from qaportal.studies.ingest import Ingester, IngestRun
from qaportal.studies.storage import image_store

Input = str | os.PathLike | tuple[str, str | os.PathLike] | Received


def source_limits() -> SourceLimits:
    """Return the configured limits on what one upload may unpack to."""
    cfg = current_app.config
    return SourceLimits(max_entries=cfg["UPLOAD_MAX_FILES"],
                        max_total_bytes=cfg["UPLOAD_MAX_TOTAL_BYTES"],
                        max_file_bytes=cfg["UPLOAD_MAX_FILE_BYTES"])


def import_files(inputs: Sequence[Input], owner_id: int, batch_id: int) -> IngestRun:
    """Ingest files, folders and zips into a batch in one transaction, and commit.

    The files are parsed and stored first, with no database write; the rows follow in one
    short burst and the commit. Two uploads creating the same new study at once collide
    on its unique UID; the loser rolls back and writes its rows once more (then the study
    exists). If it still fails, the files this request stored are deleted.
    """
    store = image_store()
    owner = db.session.get(User, owner_id)
    ingester = Ingester(owner, store, db.session.get(UploadBatch, batch_id),
                        cache_metadata=True)
    with contextlib.closing(iter_files(list(inputs), source_limits())) as items:
        ingester.prepare(items)
    try:
        for attempt in (1, 2):
            try:
                run = ingester.write()
                db.session.commit()
            except IntegrityError:
                db.session.rollback()
                if attempt == 2:
                    raise
                continue
            ingester.release(run)
            return run
    except BaseException:
        db.session.rollback()
        ingester.discard()
        raise
    raise AssertionError("unreachable")


def new_batch(owner: User, source: str) -> UploadBatch:
    """Open an upload batch (committed, so its chunks can refer to it)."""
    batch = UploadBatch(user_id=owner.id, source=source)
    db.session.add(batch)
    db.session.commit()
    return batch


def finish_batch(batch: UploadBatch) -> None:
    """Mark a batch finished (the caller commits)."""
    if batch.finished_at is None:
        batch.finished_at = utcnow()


def as_summary(batch: UploadBatch) -> dict:
    """Return the batch as the JSON summary the CLI prints and the API returns."""
    from qaportal.models import Study

    studies = []
    for study_id in batch.study_ids:
        study = db.session.get(Study, study_id)
        if study is not None:
            studies.append({"id": study.id, "study_uid": study.study_uid,
                            "series": study.series_count, "instances": study.instance_count})
    return {"studies": studies, "stored": batch.stored, "duplicates": batch.duplicates,
            "conflicts": batch.conflicts, "errors": list(batch.errors)}


def exit_code(batch: UploadBatch) -> int:
    """0 when every file was stored or a duplicate, 1 when some failed, 2 when none stored."""
    if not batch.errors:
        return 0 if (batch.stored or batch.duplicates) else 2
    return 1 if (batch.stored or batch.duplicates) else 2


def saved_upload_dir(root: Path) -> Path:
    """Return a private temporary folder for one upload request's files."""
    root.mkdir(parents=True, exist_ok=True)
    import tempfile

    return Path(tempfile.mkdtemp(prefix="upload-", dir=root))
