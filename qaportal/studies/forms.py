"""Forms for uploading studies and for their clinical context and original read."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    HiddenField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

JURISDICTION = Regexp(r"^[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?$",
                      message="Use a code such as CA, NY or GB.")


class StudyContextForm(FlaskForm):
    """The clinical notes, the patient's jurisdiction and the original read."""

    jurisdiction = StringField(
        "Patient's jurisdiction", validators=[Optional(), Length(max=10), JURISDICTION],
        description="US state or country code where the patient is; readers need a licence there.",
    )
    clinical_question = TextAreaField("Clinical question", validators=[Optional(),
                                                                       Length(max=5000)])
    clinical_history = TextAreaField("History", validators=[Optional(), Length(max=20000)],
                                     description="Relevant history, symptoms, prior imaging.")
    report_text = TextAreaField("Original report", validators=[Optional(), Length(max=100000)],
                                description="The report of this study, if it has been read.")
    reader_id = SelectField("Read by", coerce=int, validators=[Optional()])
    finalized_at = DateTimeLocalField("Finalized at", format="%Y-%m-%dT%H:%M",
                                      validators=[Optional()],
                                      description="Leave empty for a preliminary read.")
    finalize_now = BooleanField("The report is final (finalized now)")
    # Minutes west of UTC, filled in by the browser, to read "Finalized at" in its zone.
    tz_offset = HiddenField(default="0")

    def finalized_utc(self):
        """Return the finalization time in UTC, or None for a preliminary read."""
        from datetime import UTC, timedelta

        from qaportal.models import utcnow

        if self.finalize_now.data:
            return utcnow()
        if not self.finalized_at.data:
            return None
        try:
            offset = int(self.tz_offset.data or 0)
        except ValueError:
            offset = 0
        return self.finalized_at.data.replace(tzinfo=UTC) + timedelta(minutes=offset)


class UploadForm(StudyContextForm):
    """Files, folders or zips, with the context applied to the studies they contain."""

    files = MultipleFileField("DICOM files, folders or .zip archives")


class BatchStudyContextForm(StudyContextForm):
    """One study's context on the summary of an upload that held several studies."""

    confirm_study = BooleanField("This context and report belong to this study")


class ReadCorrectionForm(FlaskForm):
    """A QA correction of a final original read; the reason is kept with the old version."""

    report_text = TextAreaField("Corrected report", validators=[
        DataRequired(message="Enter the corrected report."), Length(max=100000)])
    reader_id = SelectField("Read by", coerce=int, validators=[
        DataRequired(message="Choose the radiologist who read it.")])
    keep_final = BooleanField(
        "The corrected report is final (keeps the finalization time)", default=True,
        description="Untick when the report did not belong to this study: the read becomes "
                    "preliminary, leaves peer-review sampling and the uploader enters the "
                    "right one.")
    reason = TextAreaField("Reason for the correction", validators=[
        DataRequired(message="Give the reason for the correction."), Length(max=5000)])


class DeidDownloadForm(FlaskForm):
    """Options of a de-identified download (GET, no CSRF)."""

    class Meta:
        csrf = False

    retain_dates = BooleanField("Keep dates, shifted consistently", default=True)
    retain_patient_characteristics = BooleanField("Keep sex, age, size and weight", default=True)
    retain_device_identity = BooleanField("Keep device identity", default=False)


class StudySearchForm(FlaskForm):
    """Search and filters of the study list (sent by POST: the text may be patient data)."""

    q = StringField("Patient name, MRN or accession", validators=[Optional(), Length(max=100)])
    modality = SelectField("Modality", validators=[Optional()])
    date_from = DateField("Study date from", validators=[Optional()])
    date_to = DateField("to", validators=[Optional()])
    status = SelectField("Workflow", validators=[Optional()])
    sort = SelectField("Sort by", validators=[Optional()])
    cursor = HiddenField(default="")  # qaportal.paging cursor: a row id, no patient data

    def validate_date_to(self, field) -> None:
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The end date is before the start date.")
