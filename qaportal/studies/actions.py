"""Actions offered on a study page; each workflow contributes its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qaportal.models import Study, User


@dataclass(frozen=True)
class StudyAction:
    """A button on the study page."""

    label: str
    url: str
    primary: bool = False


STUDY_ACTIONS: list[Callable[[User, Study, str], list[StudyAction]]] = []


def study_action(fn: Callable[[User, Study, str], list[StudyAction]]):
    """Register a function (user, study, access_mode) -> actions it offers."""
    STUDY_ACTIONS.append(fn)
    return fn


def actions_for(user: User, study: Study, mode: str) -> list[StudyAction]:
    """Return every action the user may take on the study."""
    result: list[StudyAction] = []
    for fn in STUDY_ACTIONS:
        result.extend(fn(user, study, mode))
    return result
