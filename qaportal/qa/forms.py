"""Forms of the QA manager's pages."""

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    FloatField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from qaportal.forms_choices import choices
from qaportal.models.credentials import SUBSPECIALTIES, SUBSPECIALTY_LABELS
from qaportal.models.discrepancy import OUTCOMES
from qaportal.models.review import (
    CATEGORIES,
    CATEGORY_LABELS,
    METHOD_LABELS,
    RADPEER_SCORES,
    REVIEW_SCORES,
    SAMPLING_METHODS,
    SCORE_LABELS,
)
from qaportal.validation import PlainText

CATEGORY_CHOICES = choices([("", "—")] + [(c, CATEGORY_LABELS[c]) for c in CATEGORIES])


class CheckboxList(SelectMultipleField):
    """Several choices shown as checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class RuleForm(FlaskForm):
    """A sampling rule."""

    name = StringField("Name", validators=[DataRequired(), Length(max=120), PlainText()])
    modality = StringField("Modality", validators=[Optional(), Length(max=16)],
                           description="e.g. CT; empty: every modality.")
    reader_id = SelectField("Reader", coerce=int, default=0)
    period_start = DateField("Reads finalized from", validators=[Optional()])
    period_end = DateField("Reads finalized until", validators=[Optional()])
    method = SelectField("How many",
                         choices=choices((m, METHOD_LABELS[m]) for m in SAMPLING_METHODS))
    percent = FloatField("Percentage", validators=[Optional(), NumberRange(0.01, 100)],
                         description="The usual routine sample is 5 %.")
    every_n = IntegerField("Every Nth exam", validators=[Optional(), NumberRange(1, 100000)])
    per_reader = IntegerField("Reads per reader per month",
                              validators=[Optional(), NumberRange(1, 1000)])
    subspecialty = SelectField(
        "Preferred reviewer subspecialty",
        choices=choices([("", "—")] + [(s, SUBSPECIALTY_LABELS[s]) for s in SUBSPECIALTIES]))
    deidentify = BooleanField("De-identify the images for the reviewer", default=True)
    due_days = IntegerField("Days to complete", default=14,
                            validators=[DataRequired(), NumberRange(1, 365)])
    active = BooleanField("Active", default=True)
    submit = SubmitField("Save rule")

    def validate_period_end(self, field):
        if field.data and self.period_start.data and field.data < self.period_start.data:
            raise ValidationError("The end is before the start.")

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        needed = {"percent": self.percent, "every_nth": self.every_n,
                  "per_reader_month": self.per_reader}.get(self.method.data)
        if needed is not None and needed.data is None and not needed.errors:
            needed.errors = [*needed.errors, "Required for this method."]
            return False
        return ok

    def data_for_service(self) -> dict:
        """Return the fields as the service expects them."""
        return {
            "name": self.name.data.strip(), "modality": self.modality.data,
            "reader_id": self.reader_id.data or None, "period_start": self.period_start.data,
            "period_end": self.period_end.data, "method": self.method.data,
            "percent": self.percent.data, "every_n": self.every_n.data,
            "per_reader": self.per_reader.data, "subspecialty": self.subspecialty.data or None,
            "deidentify": self.deidentify.data, "due_days": self.due_days.data,
            "active": self.active.data,
        }


class RunForm(FlaskForm):
    """Commit the previewed draw: same seed, and the fingerprint of what was shown."""

    seed = HiddenField(validators=[DataRequired()])
    fingerprint = HiddenField(validators=[DataRequired()])
    submit = SubmitField("Commit this selection")


class AmendForm(FlaskForm):
    """A QA manager's amendment of a submitted review."""

    score = SelectField("Score", choices=choices((s, SCORE_LABELS[s]) for s in REVIEW_SCORES))
    category = SelectField("Category", choices=CATEGORY_CHOICES, validators=[Optional()])
    comment = TextAreaField("Comment", validators=[Optional(), Length(max=20000)])
    learning_case = BooleanField("Good learning case")
    reason = TextAreaField("Reason for the amendment", validators=[DataRequired(),
                                                                   Length(max=5000)])
    submit = SubmitField("Amend")


class CommitteeForm(FlaskForm):
    """Choose committee members."""

    members = CheckboxList("Committee members", coerce=int)
    submit = SubmitField("Assign committee")


class DecisionForm(FlaskForm):
    """The consensus score and outcome."""

    final_score = SelectField("Final (consensus) score",
                              choices=choices((s, SCORE_LABELS[s]) for s in RADPEER_SCORES))
    outcome = SelectField("Outcome", choices=choices((o, o.capitalize()) for o in OUTCOMES))
    rationale = TextAreaField("Rationale (shown to the reader)",
                              validators=[DataRequired(), Length(max=20000)])
    submit = SubmitField("Record decision")


class TeachingForm(FlaskForm):
    """An anonymous teaching case."""

    title = StringField("Title", validators=[DataRequired(), Length(max=200), PlainText()])
    teaching_point = TextAreaField("Teaching point", validators=[DataRequired(),
                                                                 Length(max=20000)])
    category = SelectField("Category", choices=CATEGORY_CHOICES, validators=[Optional()])
    submit = SubmitField("Create teaching case")


class ConferenceForm(FlaskForm):
    """A new conference."""

    title = StringField("Title", validators=[DataRequired(), Length(max=200), PlainText()])
    held_on = DateField("Date", validators=[DataRequired()])
    submit = SubmitField("Create conference")


class AgendaForm(FlaskForm):
    """Add a teaching case to a conference."""

    teaching_case_id = SelectField("Teaching case", coerce=int)
    submit = SubmitField("Add to agenda")


class InviteForm(FlaskForm):
    """Invite attendees."""

    users = CheckboxList("Invite", coerce=int)
    submit = SubmitField("Invite")


class MinutesForm(FlaskForm):
    """Attendance, learning points and improvement actions."""

    attended = CheckboxList("Attended", coerce=int)
    learning_points = TextAreaField("Learning points", validators=[Optional(),
                                                                   Length(max=20000)])
    improvement_actions = TextAreaField("Improvement actions",
                                        validators=[Optional(), Length(max=20000)])
    submit = SubmitField("Save minutes")


class StatsFilter(FlaskForm):
    """Period and modality of the statistics (a GET form)."""

    class Meta:
        csrf = False

    start = DateField("From", validators=[Optional()])
    end = DateField("To", validators=[Optional()])
    modality = StringField("Modality", validators=[Optional(), Length(max=16)])
