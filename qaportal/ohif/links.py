"""The "Open in OHIF" link of the pages showing a study's images.

The link names the study by the StudyInstanceUID the user's DICOMweb serves: the original
UID to those who see it as stored, the remapped one (qaportal.dicomweb.access) to a blind
or de-identified viewer, so a blind reviewer's page never carries the original UID.
"""

from __future__ import annotations

import re

from flask import url_for
from flask_login import current_user

from qaportal.dicomweb.access import reachable
from qaportal.extensions import db
from qaportal.models import Study
from qaportal.ohif import assets, bp

CONTEXT_RE = re.compile(r"(opinion-request|review-assignment):[1-9][0-9]{0,11}")


def served_study_uid(user, study: Study) -> str | None:
    """Return the UID under which the user's DICOMweb serves the study (None: unseen)."""
    targets = reachable(user, [study])
    return targets[0].study_uid if targets else None


@bp.app_template_global()
def ohif_url(study_id: int, context: str | None = None) -> str | None:
    """Return the OHIF viewer's URL for the study, or None (not installed, or unseen).

    context ("opinion-request:<id>" or "review-assignment:<id>") names the draft the marks
    saved from the viewer belong to; the viewer sends it as X-QAPortal-Context."""
    if not current_user.is_authenticated or not assets.available():
        return None
    study = db.session.get(Study, study_id)
    uid = served_study_uid(current_user, study) if study is not None else None
    if uid is None:
        return None
    extra = {"qaportal_context": context} if context and CONTEXT_RE.fullmatch(context) else {}
    return url_for("ohif.serve", path="viewer", StudyInstanceUIDs=uid, **extra)
