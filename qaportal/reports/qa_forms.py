"""Parameter forms of the peer-review reports: OPPE/FPPE packets and the department summary.

Nothing a form stores may identify a patient: the radiologist is an e-mail, the FPPE
fields are free text checked for things that look like patient identifiers.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from wtforms import BooleanField, SelectField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from qaportal.extensions import db
from qaportal.forms_choices import choices
from qaportal.models import User, UserRole
from qaportal.reports.forms import DateRangeMixin
from qaportal.reports.registry import ReportForm

# Patterns that suggest a patient identifier: long digit runs (MRN, accession, phone),
# DICOM person names (DOE^JANE), and the usual labels.
_IDENTIFIER_PATTERNS = (
    (re.compile(r"\d{6,}"), "long numbers (record or accession numbers)"),
    (re.compile(r"\w\^\w"), "DICOM-style names (FAMILY^GIVEN)"),
    (re.compile(r"\b(mrn|dob|date of birth|accession|patient id|ssn)\b", re.I),
     "patient identifiers (MRN, date of birth, accession)"),
)
NO_IDENTIFIERS_HINT = "No patient names, record numbers, accession numbers or dates of birth."


def no_patient_identifiers(form, field) -> None:
    """Refuse text that looks like it carries a patient identifier."""
    for pattern, what in _IDENTIFIER_PATTERNS:
        if field.data and pattern.search(field.data):
            raise ValidationError(f"Leave out {what}: this text is stored with the report.")


class PeerReviewForm(ReportForm):
    """A peer-review document always carries the confidentiality statement."""

    confidential = BooleanField(
        "Print the peer-review confidentiality statement on every page", default=True,
        description="Always printed on peer-review and credentialing documents.",
    )

    def params(self) -> dict[str, Any]:
        """Return the parameters, with the confidentiality statement always on."""
        return {**super().params(), "confidential": True}


def radiologist_choices() -> list[tuple[str, str]]:
    """Return (e-mail, "Name <e-mail>") for every radiologist, deactivated ones marked."""
    rows = db.session.execute(
        sa.select(User.email, User.full_name, User.active).join(UserRole)
        .where(UserRole.role == "radiologist").order_by(User.full_name, User.id)
    ).all()
    return [(email, f"{name} <{email}>" + ("" if active else " (deactivated)"))
            for email, name, active in rows]


class OppeForm(DateRangeMixin, PeerReviewForm):
    """One radiologist over a period."""

    radiologist = SelectField("Radiologist", validators=[
        DataRequired(message="Choose the radiologist.")], validate_choice=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.radiologist.choices = choices([("", "— choose —"), *radiologist_choices()])

    def validate_radiologist(self, field) -> None:
        if field.data and field.data not in {c.value for c in field.choices if c.value}:
            raise ValidationError("No radiologist has this e-mail address.")


class FppeForm(OppeForm):
    """An OPPE packet plus the focused evaluation's trigger, criteria and conclusion."""

    fppe_trigger = TextAreaField(
        "FPPE trigger", validators=[DataRequired(message="Say why the FPPE was started."),
                                    Length(max=500), no_patient_identifiers],
        description="For example: new privileges (CT neuro), or a concern raised by the "
                    "QA committee. " + NO_IDENTIFIERS_HINT)
    fppe_criteria = TextAreaField(
        "Criteria", validators=[DataRequired(message="State the criteria of the evaluation."),
                                Length(max=2000), no_patient_identifiers],
        description="What is reviewed and what counts as success. " + NO_IDENTIFIERS_HINT)
    fppe_conclusion = TextAreaField(
        "Conclusion", validators=[Optional(), Length(max=2000), no_patient_identifiers],
        description="Leave empty while the evaluation is ongoing. " + NO_IDENTIFIERS_HINT)


class DepartmentForm(DateRangeMixin, PeerReviewForm):
    """The whole department over a period; readers coded unless names are asked for."""

    show_names = BooleanField(
        "Show readers' and reviewers' names",
        description="Off: readers appear as R01, R02… and reviewers as V01, V02…")
