"""Forms of the reports pages: each report's parameters, and the verify page."""

from __future__ import annotations

from datetime import date

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, DateField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from qaportal.reports.registry import ReportForm


def _today() -> date:
    return date.today()


class DateRangeMixin:
    """A required period, first day to last day inclusive."""

    date_from = DateField("From", validators=[
        DataRequired(message="Enter the first day as YYYY-MM-DD.")])
    date_to = DateField("To", validators=[
        DataRequired(message="Enter the last day as YYYY-MM-DD.")])

    def validate_date_to(self, field) -> None:
        if self.date_from.data and field.data and field.data < self.date_from.data:
            raise ValidationError("The last day must not be before the first.")


class AuditTrailForm(DateRangeMixin, ReportForm):
    """Parameters of the audit trail report."""

    actor = StringField("Actor (e-mail contains)", validators=[Optional(), Length(max=254)])
    action = StringField("Action (starts with)", validators=[Optional(), Length(max=64)],
                         description="For example auth. or study.viewed")
    object_type = StringField("Object type", validators=[Optional(), Length(max=40)],
                              description="For example studies or users")
    object_id = StringField("Object id", validators=[Optional(), Length(max=64)])


class CredentialsRosterForm(ReportForm):
    """Parameters of the credentials roster."""

    as_of = DateField("Status as of", default=_today,
                      validators=[DataRequired(
                          message="Enter the day to check against as YYYY-MM-DD.")])
    include_inactive = BooleanField("Include deactivated accounts")


class VerifyForm(FlaskForm):
    """Check a PDF file, or a document id, against the recorded exports."""

    file = FileField("PDF file")
    document_id = StringField("or document id", validators=[Optional(), Length(max=40)],
                              description="Printed in the footer of every page, e.g. QAP-…")

    def validate(self, extra_validators=None) -> bool:
        if not super().validate(extra_validators):
            return False
        if not self.file.data and not (self.document_id.data or "").strip():
            self.document_id.errors.append("Choose a PDF file or enter a document id.")
            return False
        return True
