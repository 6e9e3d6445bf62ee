"""Forms of the second-opinion workflow."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from qaportal.forms_choices import choices
from qaportal.models.credentials import SUBSPECIALTIES, SUBSPECIALTY_LABELS
from qaportal.models.opinion import (
    AGREEMENT_LABELS,
    AGREEMENTS,
    COVERAGE_ANSWERS,
    COVERAGE_LABELS,
    PRIORITIES,
    PRIORITY_LABELS,
    REQUEST_TYPE_LABELS,
    REQUEST_TYPES,
    STATUSES,
)

TEXT_MAX = 20000


def _coerce_int_or_none(value):
    try:
        return int(value) if value not in (None, "", "None") else None
    except (TypeError, ValueError):
        return None


class RecipientMixin:
    """A named colleague or a subspecialty pool."""

    recipient = RadioField("Send to", choices=choices([("pool", "A subspecialty pool"),
                                                       ("colleague", "A named colleague")]),
                           default="pool", validators=[DataRequired()])
    colleague = SelectField("Colleague", coerce=_coerce_int_or_none, validate_choice=False)
    pool = SelectField("Pool", choices=choices([("", "—")] + [(s, SUBSPECIALTY_LABELS[s])
                                                              for s in SUBSPECIALTIES]),
                       validators=[Optional()])

    def validate_colleague(self, field):
        if self.recipient.data == "colleague":
            offered = {c.value for c in field.choices}
            if field.data is None or field.data not in offered:
                raise ValidationError("Choose a colleague from the list.")

    def validate_pool(self, field):
        if self.recipient.data == "pool" and not field.data:
            raise ValidationError("Choose a pool.")


class RequestForm(RecipientMixin, FlaskForm):
    """Ask for a second opinion on a study."""

    request_type = RadioField("Type",
                              choices=choices((t, REQUEST_TYPE_LABELS[t]) for t in REQUEST_TYPES),
                              default="opinion", validators=[DataRequired()])
    clinical_question = TextAreaField("Clinical question",
                                      validators=[DataRequired(), Length(max=TEXT_MAX)])
    clinical_history = TextAreaField("Relevant history", validators=[Length(max=TEXT_MAX)])
    preliminary_read = TextAreaField(
        "Your preliminary read or report", validators=[Length(max=TEXT_MAX)],
        description="Pre-filled from the study's report; edit as needed.",
    )
    payer_criteria = TextAreaField(
        "Payer's question or criteria", validators=[Length(max=TEXT_MAX)],
        description="Coverage reviews only: the opinion will state whether the images "
                    "support them.",
    )
    priority = SelectField("Priority",
                           choices=choices((p, PRIORITY_LABELS[p]) for p in PRIORITIES),
                           default="routine")
    deidentified = BooleanField(
        "Share the study de-identified",
        description="The consultant sees only the de-identified copy, with no patient "
                    "identifiers. Keep names out of the text fields too.",
    )
    submit = SubmitField("Send request")

    def validate_payer_criteria(self, field):
        if self.request_type.data == "coverage_review" and not (field.data or "").strip():
            raise ValidationError("A coverage review needs the payer's question or criteria.")


class RerouteForm(RecipientMixin, FlaskForm):
    """Send a declined request elsewhere."""

    submit = SubmitField("Send again")


class ReasonForm(FlaskForm):
    """A reason, for declining or cancelling."""

    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=2000)])
    submit = SubmitField("Submit")


class MessageForm(FlaskForm):
    """A message in the request's thread."""

    body = TextAreaField("Message", validators=[DataRequired(), Length(max=5000)])
    submit = SubmitField("Send message")


class OpinionForm(FlaskForm):
    """The opinion's content (a draft until signed)."""

    findings = TextAreaField("Findings", validators=[Length(max=TEXT_MAX)])
    impression = TextAreaField("Impression", validators=[Length(max=TEXT_MAX)])
    agreement = RadioField("Agreement with the original read",
                           choices=choices((a, AGREEMENT_LABELS[a]) for a in AGREEMENTS),
                           validators=[Optional()])
    recommendations = TextAreaField("Recommendations", validators=[Length(max=TEXT_MAX)])
    coverage_answer = RadioField("Do the images support the criteria?",
                                 choices=choices((c, COVERAGE_LABELS[c])
                                                 for c in COVERAGE_ANSWERS),
                                 validators=[Optional()])
    coverage_text = TextAreaField("Explanation", validators=[Length(max=TEXT_MAX)])
    submit = SubmitField("Save draft")


class SignForm(FlaskForm):
    """Re-enter the password (or a current authentication code) to sign."""

    secret = PasswordField("Password or authentication code",
                           validators=[DataRequired(), Length(max=1024)],
                           render_kw={"autocomplete": "current-password"})
    submit = SubmitField("Sign opinion")


class AddendumForm(FlaskForm):
    """A signed addendum."""

    text = TextAreaField("Addendum", validators=[DataRequired(), Length(max=TEXT_MAX)])
    secret = PasswordField("Password or authentication code",
                           validators=[DataRequired(), Length(max=1024)],
                           render_kw={"autocomplete": "current-password"})
    submit = SubmitField("Sign addendum")


class WorklistFilterForm(FlaskForm):
    """Filters of the worklist (GET, no CSRF)."""

    class Meta:
        csrf = False

    priority = SelectField("Priority", choices=choices([("", "Any priority")]
                                                       + [(p, PRIORITY_LABELS[p])
                                                          for p in PRIORITIES]),
                           validators=[Optional()])
    status = SelectField("Status",
                         choices=choices([("", "Any status")] + [(s, s) for s in STATUSES]),
                         validators=[Optional()])
    modality = StringField("Modality", validators=[Optional(), Length(max=16)],
                           render_kw={"placeholder": "Modality, e.g. CT"})
