"""The DICOMweb image store's key → UIDs map, kept in the database (table pacs_objects).

Every call works in the current session's transaction: a mapping written by put() is
committed with the rows that name its key, or rolled back with them.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import PacsObject


class DatabaseIndex:
    """A KeyIndex (qaportal.dicom.dicomweb_store) on the pacs_objects table."""

    def get(self, key: str) -> tuple[str, str, str] | None:
        row = db.session.get(PacsObject, key)
        return None if row is None else (row.study_uid, row.series_uid, row.sop_uid)

    def set(self, key: str, uids: tuple[str, str, str], sha256: str, size: int) -> None:
        row = db.session.get(PacsObject, key)
        if row is None:
            row = PacsObject(key=key)
            db.session.add(row)
        row.study_uid, row.series_uid, row.sop_uid = uids
        row.sha256, row.size_bytes = sha256, size
        db.session.flush()

    def drop(self, key: str) -> None:
        db.session.execute(sa.delete(PacsObject).where(PacsObject.key == key))

    def others_with_sop(self, sop_uid: str, key: str) -> bool:
        return db.session.scalar(
            sa.select(sa.func.count()).select_from(PacsObject)
            .where(PacsObject.sop_uid == sop_uid, PacsObject.key != key)) > 0

    def keys(self) -> Iterator[str]:
        return iter(list(db.session.scalars(sa.select(PacsObject.key).order_by(PacsObject.key))))

    def sop_uids(self) -> set[str]:
        return set(db.session.scalars(sa.select(PacsObject.sop_uid)))
