"""One user's access to many studies, decided in two queries for a page that lists them.

`study_access_mode` and `is_blind_access` (qaportal.permissions) each ask the database about
one study. A list page wraps its rows in `prefetched(user, studies)`: inside the block they
answer from the grants and blind roles loaded here for all the listed studies at once. The
answers are the same (the same grants, the same blind-role rule); only the number of
queries changes. The block is short on purpose: nothing inside it grants or revokes access.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import g

from qaportal.extensions import db
from qaportal.id_lists import in_ids
from qaportal.models import StudyAccess, User

_KEY = "_study_access_prefetch"


@dataclass
class _Prefetched:
    user_id: int
    study_ids: set[int]
    modes: dict[int, set[str]] = field(default_factory=dict)  # unrevoked grants' modes
    blind: set[int] = field(default_factory=set)  # studies the user holds a blind role on


@contextmanager
def prefetched(user: User, studies: Iterable) -> Iterator[None]:
    """Answer access questions about these studies for this user from two queries."""
    from qaportal.blind_roles import blind_pairs

    ids = {s.id for s in studies}
    loaded = _Prefetched(user.id, ids)
    if ids:
        for study_id, mode in db.session.execute(
            sa.select(StudyAccess.study_id, StudyAccess.mode).where(
                StudyAccess.user_id == user.id, in_ids(StudyAccess.study_id, ids),
                StudyAccess.revoked_at.is_(None))
        ):
            loaded.modes.setdefault(study_id, set()).add(mode)
        loaded.blind = {s for s, _ in blind_pairs(ids, user.id)}
    previous = g.get(_KEY)
    setattr(g, _KEY, loaded)
    try:
        yield
    finally:
        setattr(g, _KEY, previous)


def _loaded(user_id: int, study_id: int) -> _Prefetched | None:
    loaded = g.get(_KEY)
    if loaded is None or loaded.user_id != user_id or study_id not in loaded.study_ids:
        return None
    return loaded


def grant_modes(user_id: int, study_id: int) -> set[str] | None:
    """The modes of the user's unrevoked grants on the study; None when not prefetched."""
    loaded = _loaded(user_id, study_id)
    return None if loaded is None else loaded.modes.get(study_id, set())


def holds_blind_role(user_id: int, study_id: int) -> bool | None:
    """Whether the user holds or held a blind role on the study; None when not prefetched."""
    loaded = _loaded(user_id, study_id)
    return None if loaded is None else study_id in loaded.blind
