"""Reader identifiers: the id a RIS gives a radiologist (an NPI or a local id), kept on the
account so that a read arriving by HL7 or FHIR is attributed to the right person.

Unique across accounts, only on accounts holding the radiologist role; every change audited.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import User

READER_ID_MAX = 64
# Letters, digits and . _ / - : never the HL7 delimiters (| ^ ~ \ &) nor spaces.
_READER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


class ReaderIdError(ValueError):
    """A reader identifier that cannot be set; the message says why."""


def clean_reader_id(value: str | None) -> str | None:
    """Return the identifier without surrounding spaces, None for an empty one (removal)."""
    text = (value or "").strip()
    if not text:
        return None
    if len(text) > READER_ID_MAX:
        raise ReaderIdError(f"the reader identifier is longer than {READER_ID_MAX} characters")
    if not _READER_ID.fullmatch(text):
        raise ReaderIdError("a reader identifier holds letters, digits and . _ / - only "
                            "(such as an NPI, 1234567893, or a local id, RAD-0042)")
    return text


def account_with(reader_id: str) -> User | None:
    """Return the account holding this reader identifier, or None."""
    return db.session.scalar(sa.select(User).where(User.reader_id == reader_id))


def set_reader_id(user: User, value: str | None, *, by: User | None,
                  actor_label: str | None = None, roles=None) -> bool:
    """Set (or with an empty value remove) the account's reader identifier.

    roles: the roles the account is about to hold (a form saving both), else its current
    ones. Reads received by HL7 or FHIR and waiting for this identifier are matched (the
    caller commits). Returns False when nothing changed.
    """
    new = clean_reader_id(value)
    old = user.reader_id
    held = set(roles) if roles is not None else user.role_names
    if new is not None and "radiologist" not in held:
        raise ReaderIdError(f"{user.email} does not hold the radiologist role: reader "
                            "identifiers are only for radiologists")
    if new == old:
        return False
    if new is not None:
        other = account_with(new)
        if other is not None and other.id != user.id:
            raise ReaderIdError(f"the reader identifier {new} belongs to {other.email} already")
    user.reader_id = new
    db.session.flush()
    audit.record("user.reader_id_set" if new else "user.reader_id_cleared", user, actor=by,
                 actor_label=actor_label, reader_id=[old, new])
    if new is not None:  # reads received for this identifier before it was mapped
        from qaportal.feeds.reads import match_waiting_reads_for_reader

        match_waiting_reads_for_reader(user)
    return True
