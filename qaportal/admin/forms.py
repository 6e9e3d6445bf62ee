"""Forms for managing users and their credentials."""

from email_validator import EmailNotValidError, validate_email
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from qaportal.forms_choices import choices
from qaportal.models.credentials import SUBSPECIALTIES, SUBSPECIALTY_LABELS
from qaportal.models.user import ROLE_LABELS, ROLES
from qaportal.validation import PlainText


def email_problem(address: str) -> str | None:
    """Return why an e-mail address is not valid, or None (syntax only, no DNS look-up)."""
    try:
        # test_environment: the demo's *.test addresses are special-use, and accepted here.
        validate_email(address, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        return str(exc)
    return None


def _valid_email(form, field) -> None:
    problem = email_problem(field.data or "")
    if problem:
        raise ValidationError(problem)


class CheckboxList(SelectMultipleField):
    """Several choices shown as checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class UserForm(FlaskForm):
    """Name, e-mail, roles and subspecialties of an account."""

    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254), _valid_email])
    full_name = StringField("Full name", validators=[DataRequired(), Length(max=200),
                                                     PlainText()])
    roles = CheckboxList("Roles", choices=choices((r, ROLE_LABELS[r]) for r in ROLES))
    subspecialties = CheckboxList(
        "Subspecialties", choices=choices((s, SUBSPECIALTY_LABELS[s]) for s in SUBSPECIALTIES)
    )
    active = BooleanField("Active", default=True)
    reader_id = StringField(
        "Reader identifier", validators=[Optional(), Length(max=64)],
        description="The id the RIS gives this radiologist in its reports (an NPI or a local "
                    "id). Radiologists only; leave empty for none.",
    )
    submit = SubmitField("Save")

    def validate_roles(self, field):
        if not field.data:
            raise ValidationError("Give the account at least one role.")


class LicenseForm(FlaskForm):
    """A licence in one jurisdiction."""

    jurisdiction = StringField(
        "Jurisdiction", validators=[DataRequired(), Length(max=10),
                                    Regexp(r"^[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?$",
                                           message="Use a code such as CA, NY or GB.")],
        description="A US state code (CA) or a country code (GB).",
    )
    number = StringField("Licence number", validators=[DataRequired(), Length(max=64),
                                                        PlainText()])
    valid_from = DateField("Valid from", validators=[DataRequired()])
    valid_to = DateField("Valid to", validators=[DataRequired()])
    submit = SubmitField("Add licence")

    def validate_valid_to(self, field):
        if self.valid_from.data and field.data and field.data < self.valid_from.data:
            raise ValidationError("The end date is before the start date.")


class CertificationForm(FlaskForm):
    """A board certification."""

    board = StringField("Board", validators=[DataRequired(), Length(max=120), PlainText()],
                        description="e.g. American Board of Radiology")
    specialty = StringField("Specialty", validators=[DataRequired(), Length(max=120), PlainText()],
                            description="e.g. Diagnostic Radiology")
    certified_on = DateField("Certified on", validators=[Optional()])
    expires_on = DateField("Expires on", validators=[Optional()])
    submit = SubmitField("Add certification")

    def validate_expires_on(self, field):
        if self.certified_on.data and field.data and field.data < self.certified_on.data:
            raise ValidationError("The expiry date is before the certification date.")


class PrivilegeForm(FlaskForm):
    """Clinical privileges granted by a facility, with their term."""

    facility = StringField("Facility", validators=[DataRequired(), Length(max=200), PlainText()],
                           description="e.g. St Mary's Medical Center")
    description = StringField("Privilege",
                              validators=[DataRequired(), Length(max=200), PlainText()],
                              description="e.g. Diagnostic CT interpretation")
    granted_on = DateField("Granted on", validators=[DataRequired()])
    valid_to = DateField("Valid to", validators=[DataRequired()],
                         description="End of the appointment term (reappointment due).")
    notes = StringField("Notes", validators=[Optional(), Length(max=500), PlainText()],
                        description="Optional, e.g. proctoring conditions. No patient data.")
    submit = SubmitField("Add privilege")

    def validate_valid_to(self, field):
        if self.granted_on.data and field.data and field.data < self.granted_on.data:
            raise ValidationError("The end date is before the grant date.")


class FilterForm(FlaskForm):
    """Search and filter the user list (GET, no CSRF)."""

    class Meta:
        csrf = False

    q = StringField("Search", validators=[Optional(), Length(max=100)])
    role = SelectField("Role",
                       choices=choices([("", "Any role")] + [(r, ROLE_LABELS[r]) for r in ROLES]),
                       validators=[Optional()])
    status = SelectField("Status", choices=choices([("", "Any"), ("active", "Active"),
                                                    ("inactive", "Deactivated")]),
                         validators=[Optional()])
