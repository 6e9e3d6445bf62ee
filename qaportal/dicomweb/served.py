"""What WADO-RS serves of a stored instance: its bytes, its data set, its DICOM JSON header.

Every stored file is checked against its SHA-256 before any of it is sent: a file that is
missing or does not match raises StoredFileMissing / StoredFileCorrupt and is never sent.
Like the viewer's frames, a file verified once and unchanged since (same inode, size and
times; a signed record shared by the worker processes, see qaportal.dicom.verified) is not
hashed again.
A caller served de-identified gets the copy the de-identified zip holds (the same mapping,
`deidentify_dataset` with the study's context), and its Study, Series and SOP Instance
UIDs are checked against the UIDs the caller asked for. Copies served as stored have the
preamble zeroed (it can hide another file format), as the zip download does.

Plain data only (`Item`): the multipart generators run after the view has returned, and
must not touch the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app
from pydicom.dataset import Dataset

from qaportal.dicom import (
    DeidContext,
    ImageStore,
    StoredFileCorrupt,
    deidentify_dataset,
    served_copy,
)
from qaportal.dicom.json_model import to_json
from qaportal.dicom.transcode import (
    encode,
    read_dataset,
    read_deferred,
    stored_syntax,
    to_explicit_little,
)
from qaportal.dicomweb.access import Target
from qaportal.disk_cache import DiskCache
from qaportal.extensions import db
from qaportal.models import Instance, Series
from qaportal.studies.storage import image_store, is_local
from qaportal.studies.viewer_routes import frame_renderer

# Files above this size, served as stored, are verified in one pass and sent in a second
# one, in chunks; smaller ones are read once, verified and sent from memory.
STREAM_ABOVE = 64 * 1024 * 1024
_CHUNK = 1024 * 1024
PREAMBLE_LENGTH = 128
_ZEROED_HEAD = bytes(PREAMBLE_LENGTH) + b"DICM"  # what a served copy starts with
METADATA_FORMAT = "dicomjson-1"  # part of the cache key: change it when the output changes
log = logging.getLogger(__name__)


class ServeError(Exception):
    """An instance that cannot be served as asked (its message holds no patient data)."""


@dataclass(frozen=True)
class Item:
    """One instance to serve, with the UIDs the caller sees."""

    id: int
    series_id: int
    storage_key: str
    sha256: str
    size: int
    syntax: str  # as stored
    study_uid: str
    series_uid: str
    sop_uid: str


def items(target: Target, series: Series | None = None,
          instance: Instance | None = None) -> list[Item]:
    """Return the study's (series', instance's) instances in series then anatomical order."""
    # Columns, not ORM objects: a study can hold thousands of instances.
    query = (sa.select(Instance.id, Instance.series_id, Instance.storage_key, Instance.sha256,
                       Instance.size_bytes, Instance.transfer_syntax_uid, Instance.sop_uid,
                       Series.series_uid)
             .join(Series, Instance.series_id == Series.id)
             .where(Series.study_id == target.study.id)
             .order_by(Series.series_number.is_(None), Series.series_number, Series.id,
                       Instance.slice_position.is_(None), Instance.slice_position,
                       Instance.instance_number, Instance.id))
    if series is not None:
        query = query.where(Series.id == series.id)
    if instance is not None:
        query = query.where(Instance.id == instance.id)
    study_uid = target.study_uid
    return [Item(row.id, row.series_id, row.storage_key, row.sha256, row.size_bytes,
                 stored_syntax(row.transfer_syntax_uid), study_uid, target.uid(row.series_uid),
                 target.uid(row.sop_uid))
            for row in db.session.execute(query)]


def metadata_cache() -> DiskCache:
    """Return the app's cache of instance headers in the DICOM JSON model."""
    app = current_app._get_current_object()
    cache = app.extensions.get("qaportal_dicomjson_cache")
    if cache is None:
        cache = DiskCache(f"{app.config['CACHE_ROOT']}/dicomjson",
                           app.config["METADATA_CACHE_MAX_BYTES"], suffix=".json")
        app.extensions["qaportal_dicomjson_cache"] = cache
    return cache


class Server:
    """Serve the instances of one study to one caller (as stored or de-identified)."""

    def __init__(self, target: Target | None, store: ImageStore | None = None,
                 cache: DiskCache | None = None) -> None:
        """target None: the instances as stored (no caller yet: fill_metadata)."""
        self.ctx: DeidContext | None = target.ctx if target is not None else None
        self.store = store or image_store()
        self.cache = cache if cache is not None else metadata_cache()
        self.variant = "stored" if self.ctx is None else "deid-" + _fingerprint(self.ctx)
        # The viewer's renderer remembers which files this process has verified.
        # A remote store (DICOMweb) is read through its verified local copies.
        self.renderer = frame_renderer() if store is None else None

    def batch(self, todo: list[Item]) -> contextlib.AbstractContextManager:
        """Look up the verification records of todo's files in one query, and keep those of
        the files hashed inside for one write at the end."""
        if self.renderer is not None:
            return self.renderer.verified.batch(item.storage_key for item in todo)
        return contextlib.nullcontext()

    def prefetch(self, todo: list[Item]) -> None:
        """Start reading these instances' files from the disk (a filesystem store only)."""
        fetch = getattr(self.store, "prefetch", None)
        if fetch is not None and todo:
            fetch(item.storage_key for item in todo)

    def _read(self, item: Item, head: int = 0) -> tuple[bytes, bytes]:
        """Return the stored bytes as (first `head` bytes, rest), verified (once per
        unchanged file state, shared by the worker processes)."""
        if self.renderer is not None:
            return self.renderer.verified.read(item.storage_key, item.sha256, head)
        data = self.store.read_verified(item.storage_key, item.sha256)
        return data[:head], data[head:]

    def dataset(self, item: Item) -> Dataset:
        """Return the instance's data set as this caller is served it (verified first)."""
        return self._as_served(read_dataset(b"".join(self._read(item))), item)

    def header(self, item: Item) -> Dataset:
        """Return the data set for its metadata: a large file is verified in a streaming pass
        and parsed with its large values left on disk (they become BulkDataURIs)."""
        if item.size <= STREAM_ABOVE:
            return self.dataset(item)
        if is_local(self.store):
            self.store.verify(item.storage_key, item.sha256)
            path = self.store.path(item.storage_key)
        elif self.renderer is not None:  # a verified local copy of the archive's file
            path = self.renderer.verified.checked_path(item.storage_key, item.sha256)
        else:
            return self.dataset(item)
        return self._as_served(read_deferred(path, _CHUNK), item)

    def _as_served(self, ds: Dataset, item: Item) -> Dataset:
        """De-identify ds for this caller if need be; check it carries the UIDs asked for."""
        if self.ctx is not None:
            deidentify_dataset(ds, self.ctx)
        served = (str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", "")),
                  str(ds.get("SOPInstanceUID", "")))
        if served != (item.study_uid, item.series_uid, item.sop_uid):
            raise ServeError(f"instance {item.id}: its UIDs differ from the database's")
        return ds

    def part10(self, item: Item, syntax: str) -> Iterator[bytes]:
        """Yield the instance as a Part 10 file in `syntax` (one of can_serve's)."""
        if self.ctx is None and syntax == item.syntax:
            if item.size > STREAM_ABOVE and is_local(self.store):
                yield from self._stream_large(item)
                return
            # Read as preamble + rest, so the rest is sent as read (no copy).
            head, rest = self._read(item, PREAMBLE_LENGTH + 4)
            if head[PREAMBLE_LENGTH:] == b"DICM":
                yield _ZEROED_HEAD
                yield rest
                return
            ds = self._as_served(read_dataset(head + rest), item)
        else:
            ds = self.dataset(item)
        if syntax != str(ds.file_meta.TransferSyntaxUID):
            to_explicit_little(ds)
        yield encode(ds)

    def metadata(self, item: Item) -> str:
        """Return the instance's header as DICOM JSON text, BulkDataURIs relative (paths).

        Kept in the cache by (file SHA-256, served as): computed once from a verified read.
        """
        key = self.cache.key(METADATA_FORMAT, item.sha256, self.variant)
        cached = self.cache.get(key)
        if cached is not None:
            return cached.decode("utf-8")
        text = json.dumps(to_json(self.header(item)), separators=(",", ":"),
                          ensure_ascii=False)
        self.cache.put(key, text.encode("utf-8"))
        return text

    def _stream_large(self, item: Item) -> Iterator[bytes]:
        """Verify a large stored file, then send it in chunks, checking it again as it goes."""
        self.store.verify(item.storage_key, item.sha256)
        digest = hashlib.sha256()
        with self.store.open(item.storage_key) as fp:
            first = True
            while chunk := fp.read(_CHUNK):
                digest.update(chunk)
                yield served_copy(chunk) if first else chunk
                first = False
        if digest.hexdigest() != item.sha256.lower():
            raise StoredFileCorrupt(item.storage_key)


def fill_metadata(todo: Sequence[Item], target: Target | None = None) -> int:
    """Put the DICOM JSON headers of todo in the cache, as target's caller is served them
    (target None: as stored); those cached already are skipped.

    Run by the `warm_metadata` job (warm_served), so that the first viewer to open a study
    finds its series' metadata ready (computing 500 headers took ~2.3 s of that first
    open). Verifying the files here also spares the first frames their hashing. A failure
    only logs (its type): the request computes the header as before.
    Return how many headers were computed.
    """
    if not todo:
        return 0
    server = Server(target)
    done = 0
    try:
        with server.batch(todo):
            for item in todo:
                key = server.cache.key(METADATA_FORMAT, item.sha256, server.variant)
                if server.cache.get(key) is None:
                    server.metadata(item)
                    done += 1
    except Exception as exc:  # noqa: BLE001 - a cache left cold is never an ingest failure
        log.warning("metadata cache: headers not computed ahead (%s)", type(exc).__name__)
    return done


def warm_served(study_id: int, user_id: int) -> int:
    """Put the study's headers as this user is served them in the cache: the job queued
    when an ingest stores new instances (for their owner: as stored) and when a workflow
    grants the study (for a blind or de-identified grant: de-identified), so that neither
    first open waits for 500 headers to be computed. Nothing when the user no longer
    reaches the study. Return how many were computed."""
    from qaportal.dicomweb.access import reachable
    from qaportal.models import Study, User

    study, user = db.session.get(Study, study_id), db.session.get(User, user_id)
    if study is None or user is None or not user.is_active:
        return 0
    targets = reachable(user, [study])
    return fill_metadata(items(targets[0]), targets[0]) if targets else 0


def with_base(metadata: str, base: str) -> str:
    """Make the BulkDataURIs of cached metadata absolute: base + path."""
    escaped = json.dumps(base)[1:-1]
    return metadata.replace('"BulkDataURI":"', '"BulkDataURI":"' + escaped)


def _fingerprint(ctx: DeidContext) -> str:
    """Return a short digest of everything that shapes a de-identified header."""
    parts = [ctx.secret.hex(), ctx.pseudonym, ctx.pseudonym_id or "", str(ctx.date_shift_days),
             ctx.method_text, *sorted(o.name for o in ctx.options)]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:24]
