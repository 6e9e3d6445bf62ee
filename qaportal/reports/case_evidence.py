"""Evidence for the case packet: key images, stored-file integrity, the audit excerpt."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

import sqlalchemy as sa

from qaportal import audit
from qaportal.blind_roles import blind_holder_ids
from qaportal.dicom import render_thumbnail
from qaportal.dicom.errors import DicomRejected, StoredFileCorrupt, StoredFileMissing
from qaportal.extensions import db
from qaportal.models import AuditEvent, Instance, OpinionRequest, Series, Study, UserRole
from qaportal.studies.storage import image_store

KEY_IMAGES = 4
IMAGE_PX = 512  # longest side of an embedded key image
# Up to this many instances the packet lists every instance's SHA-256; beyond it, one
# digest per series (and always one for the study), so the packet stays a few pages.
LIST_ALL_INSTANCES = 60
MAX_SERIES_ROWS = 100
AUDIT_ROWS = 60

DIGEST_METHOD = (
    "A digest is the SHA-256 of the instances' SHA-256 values (64 lower-case hex "
    "characters each), sorted, each followed by a line feed (\\n). Anyone holding the "
    "files can recompute it: sha256sum each file, sort the hashes, join them with "
    "line feeds, hash the result."
)


def digest_of(hashes: list[str]) -> str:
    """Return the SHA-256 over sorted lower-case hex hashes, one per line."""
    joined = "".join(f"{h.lower()}\n" for h in sorted(hashes))
    return hashlib.sha256(joined.encode("ascii")).hexdigest()


def _ordered(series: Series) -> list[Instance]:
    return sorted(series.instances, key=lambda i: (
        i.instance_number if i.instance_number is not None else 10**9,
        i.slice_position if i.slice_position is not None else 0.0, i.id))


@dataclass
class KeyImage:
    """One rendered frame, or why it could not be rendered."""

    caption: str
    data_url: str | None = None
    problem: str | None = None


def _pick(study: Study) -> list[tuple[Series, Instance, int]]:
    """Choose up to KEY_IMAGES (series, instance, position) to show."""
    series = [s for s in study.series if s.instances]
    if not series:
        return []
    largest = max(series, key=lambda s: (len(s.instances), -(s.series_number or 0)))
    ordered = _ordered(largest)
    if len(series) == 1 or len(ordered) >= KEY_IMAGES:
        n = min(KEY_IMAGES, len(ordered))
        # Evenly spaced through the series, avoiding the first and last slice.
        picks = sorted({int((k + 1) * len(ordered) / (n + 1)) for k in range(n)})
        return [(largest, ordered[p], p) for p in picks]
    chosen = []
    for s in series[:KEY_IMAGES]:
        inst = _ordered(s)
        mid = len(inst) // 2
        chosen.append((s, inst[mid], mid))
    return chosen


def key_images(study: Study, *, deidentified: bool, scrub) -> tuple[list[KeyImage], str | None]:
    """Render the key images; in de-identified mode none when pixels may carry identifiers."""
    if deidentified and study.burned_in_suspected:
        return [], ("Images omitted: possible burned-in patient identifiers in the pixels "
                    "(burned-in annotation flagged at upload); a de-identified packet does "
                    "not carry them.")
    store = image_store()
    images = []
    for series, inst, pos in _pick(study):
        caption = (f"Series {series.series_number if series.series_number is not None else '—'}"
                   f" {scrub(series.series_description)} · image {pos + 1} of "
                   f"{len(series.instances)}")
        try:
            data = store.read_verified(inst.storage_key, inst.sha256)
            png = render_thumbnail(data, size=IMAGE_PX, frame=max(0, (inst.frames or 1) // 2))
        except StoredFileMissing:
            images.append(KeyImage(caption, problem="stored file missing"))
            continue
        except StoredFileCorrupt:
            images.append(KeyImage(caption, problem="stored file does not match its SHA-256"))
            continue
        except (DicomRejected, ValueError, MemoryError):
            images.append(KeyImage(caption, problem="the frame could not be rendered"))
            continue
        url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        images.append(KeyImage(caption, data_url=url))
    return images, None


@dataclass
class SeriesIntegrity:
    """One series' instance count, digest and (for small studies) each instance's hash."""

    number: int | None
    description: str
    modality: str
    count: int
    size_bytes: int
    digest: str
    instances: list[tuple[int | None, str, int]] = field(default_factory=list)


@dataclass
class Integrity:
    """The stored images' hashes, and whether the stored files still match them."""

    series: list[SeriesIntegrity]
    study_digest: str
    instance_count: int
    per_instance: bool
    checked: int
    mismatched: list[str]
    series_not_listed: int
    method: str = DIGEST_METHOD


def _check(store, inst: Instance) -> None:
    verify = getattr(store, "verify", None)  # streams; not every store has it
    if verify is not None:
        verify(inst.storage_key, inst.sha256)
    else:
        store.read_verified(inst.storage_key, inst.sha256)


def integrity(study: Study, *, scrub) -> Integrity:
    """Gather the recorded SHA-256 values and re-check every stored file against them."""
    store = image_store()
    total = sum(len(s.instances) for s in study.series)
    per_instance = total <= LIST_ALL_INSTANCES
    rows, all_hashes, mismatched = [], [], []
    for s in study.series:
        instances = _ordered(s)
        hashes = [i.sha256 for i in instances]
        all_hashes.extend(hashes)
        for inst in instances:
            try:
                _check(store, inst)
            except (StoredFileMissing, StoredFileCorrupt, OSError):
                mismatched.append(f"series {s.series_number} image {inst.instance_number}")
        rows.append(SeriesIntegrity(
            number=s.series_number, description=scrub(s.series_description),
            modality=s.modality, count=len(instances),
            size_bytes=sum(i.size_bytes for i in instances), digest=digest_of(hashes),
            instances=[(i.instance_number, i.sha256, i.size_bytes) for i in instances]
            if per_instance else [],
        ))
    return Integrity(series=rows[:MAX_SERIES_ROWS], study_digest=digest_of(all_hashes),
                     instance_count=total, per_instance=per_instance, checked=total,
                     mismatched=mismatched, series_not_listed=max(0, len(rows) - MAX_SERIES_ROWS))


@dataclass
class AuditExcerpt:
    """The newest audit events about the request and its study by the request's
    participants, a count of other users' events (not named), and the chain's verdict."""

    events: list[AuditEvent]
    total: int
    chain: audit.Verification
    others: int = 0  # events by anyone else (e.g. blinded peer reviewers): counted, not named

    @property
    def not_shown(self) -> int:
        return self.total - len(self.events)


def participants(req: OpinionRequest) -> set[int]:
    """The people the request itself names (requester, consultants, decliners, authors),
    less anyone who holds or held a blind role on its study: their events (e.g. views as
    a blinded peer reviewer) are never itemised, even if they later joined the request."""
    ids = {req.requester_id, req.consultant_id, req.named_consultant_id}
    ids.update(d.user_id for d in req.declines)
    ids.update(m.author_id for m in req.messages)
    if req.opinion is not None:
        ids.add(req.opinion.author_id)
        ids.update(a.author_id for a in req.opinion.addenda)
    ids.discard(None)
    return ids - blind_holder_ids(req.study_id)


def _qa_staff_ids() -> set[int]:
    return set(db.session.scalars(sa.select(UserRole.user_id).where(
        UserRole.role.in_(("qa_manager", "admin")))))


def audit_excerpt(req: OpinionRequest) -> AuditExcerpt:
    """Return the last AUDIT_ROWS events about the request or its study, oldest first.

    Only events by the request's participants, by QA managers or administrators acting on
    the request, and by the system are itemised. Anyone else who opened the study (a
    blinded peer reviewer, a committee member, a teaching-file user, another request's
    consultant) would be named to the requester, who may be the reader under review; their
    events are only counted.
    """
    on_request = sa.and_(AuditEvent.object_type == OpinionRequest.__tablename__,
                         AuditEvent.object_id == str(req.id))
    on_study = sa.and_(AuditEvent.object_type == Study.__tablename__,
                       AuditEvent.object_id == str(req.study_id))
    about = sa.or_(on_request, on_study)
    # System events are itemised except access grants/revocations: their details name
    # the grantee, and a grant may be a blind one.
    actor = sa.func.coalesce(AuditEvent.actor_id, 0)  # no NULLs: NOT(named) must be exact
    named = sa.or_(sa.and_(actor == 0,
                           AuditEvent.action.not_in(("study.access_granted",
                                                     "study.access_revoked"))),
                   actor.in_(participants(req)),
                   sa.and_(on_request, actor.in_(_qa_staff_ids())))
    shown = sa.and_(about, named)

    def count(where) -> int:
        return db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                 .where(where)) or 0

    total = count(shown)
    newest = db.session.scalars(sa.select(AuditEvent).where(shown)
                                .order_by(AuditEvent.seq.desc()).limit(AUDIT_ROWS)).all()
    # From the last verified checkpoint: a full pass re-hashes millions of entries (minutes).
    return AuditExcerpt(events=list(reversed(newest)), total=total,
                        chain=audit.verify(incremental=True),
                        others=count(sa.and_(about, sa.not_(named))))
