"""The rows ingest writes, and the SQL helpers its write phase uses.

slice_position (an instance's place along the slice normal, for anatomical order),
_study_from (a new Study row from the first header of its files, with its de-identification
key, date shift and pseudonym), _by_uid (the owner's rows with one of many UIDs, a few IN
lists at a time) and _increment (a counter column added to in SQL, so that concurrent
uploads both count). Ingester (ingest.py) calls them from its write phase.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable

import sqlalchemy as sa

from qaportal.dicom import InstanceHeader, date_shift_for
from qaportal.extensions import db
from qaportal.models import Study, User

_IN_CHUNK = 500  # values per IN (...) list


def slice_position(h: InstanceHeader) -> float | None:
    """Return the position along the slice normal (for anatomical order), if known."""
    if h.image_position and h.image_orientation and len(h.image_orientation) == 6:
        r, c = h.image_orientation[:3], h.image_orientation[3:]
        normal = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2],
                  r[0] * c[1] - r[1] * c[0])
        value = sum(p * n for p, n in zip(h.image_position, normal, strict=True))
        return value if math.isfinite(value) else None
    return h.slice_location


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
        pseudonym="QA-" + secrets.token_hex(5).upper(), series_count=0, instance_count=0,
        size_bytes=0, burned_in_suspected=False,
    )


def _by_uid(model, column, uids: Iterable[str], scope: sa.ColumnElement[bool]) -> list:
    """Load the rows of model within scope (the owner's) whose column is one of uids."""
    uids = sorted(uids)
    found = []
    for i in range(0, len(uids), _IN_CHUNK):
        found += db.session.scalars(
            sa.select(model).where(scope, column.in_(uids[i : i + _IN_CHUNK])))
    return found


def _increment(obj, attr: str, n: int) -> None:
    """Add n to a counter column in SQL (col = col + n), so concurrent adds both count."""
    if sa.inspect(obj).persistent:
        setattr(obj, attr, getattr(type(obj), attr) + n)
    else:
        setattr(obj, attr, (getattr(obj, attr) or 0) + n)
