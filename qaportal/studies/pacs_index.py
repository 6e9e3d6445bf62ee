"""The DICOMweb image store's key → UIDs map, kept in the database (table pacs_objects).

Each change is a short transaction of its own on its own connection, committed at once,
whatever the caller's session does: a key is mapped once the archive acknowledged its file
(as a file is on disk once written), so a request that rolls back afterwards leaves a
mapping no row names, which `qaportal verify-storage` reports as an orphan (and
`--delete-orphans` removes), exactly like a file left in the filesystem store. It also
lets a thread without the request's session (the STOW-RS parsing thread) store files.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import PacsObject
from qaportal.models.base import utcnow

_T = PacsObject.__table__


class DatabaseIndex:
    """A KeyIndex (qaportal.dicom.dicomweb_store) on the pacs_objects table."""

    def get(self, key: str) -> tuple[str, str, str] | None:
        with db.engine.connect() as conn:
            row = conn.execute(sa.select(_T.c.study_uid, _T.c.series_uid, _T.c.sop_uid)
                               .where(_T.c.key == key)).first()
        return None if row is None else (row[0], row[1], row[2])

    def set(self, key: str, uids: tuple[str, str, str], sha256: str, size: int) -> None:
        values = {"study_uid": uids[0], "series_uid": uids[1], "sop_uid": uids[2],
                  "sha256": sha256, "size_bytes": size, "stored_at": utcnow()}
        with db.engine.begin() as conn:
            changed = conn.execute(sa.update(_T).where(_T.c.key == key).values(**values))
            if changed.rowcount == 0:
                conn.execute(sa.insert(_T).values(key=key, **values))

    def drop(self, key: str) -> None:
        with db.engine.begin() as conn:
            conn.execute(sa.delete(_T).where(_T.c.key == key))

    def others_with_sop(self, sop_uid: str, key: str) -> bool:
        with db.engine.connect() as conn:
            return conn.scalar(sa.select(sa.func.count()).select_from(_T)
                               .where(_T.c.sop_uid == sop_uid, _T.c.key != key)) > 0

    def keys(self) -> Iterator[str]:
        with db.engine.connect() as conn:
            return iter(list(conn.scalars(sa.select(_T.c.key).order_by(_T.c.key))))

    def sop_uids(self) -> set[str]:
        with db.engine.connect() as conn:
            return set(conn.scalars(sa.select(_T.c.sop_uid)))
