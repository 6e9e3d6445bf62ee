"""Forms for signing in and managing one's own account."""

import secrets

from flask_wtf import FlaskForm
from wtforms import (
    EmailField,
    HiddenField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, EqualTo, Length, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from qaportal.forms_choices import choices
from qaportal.validation import PlainText

EXPIRY_CHOICES = choices([("30", "in 30 days"), ("90", "in 90 days"), ("365", "in a year"),
                          ("never", "never")])


class LoginForm(FlaskForm):
    """E-mail and password."""

    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    submit = SubmitField("Sign in")


class TotpForm(FlaskForm):
    """A six-digit code from the authenticator app."""

    code = StringField(
        "Authentication code",
        validators=[DataRequired(), Regexp(r"^\s*\d{6}\s*$", message="Enter the 6-digit code.")],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )
    submit = SubmitField("Verify")


class ChangePasswordForm(FlaskForm):
    """The current password and a new one, twice."""

    current_password = PasswordField("Current password", validators=[DataRequired()])
    new_password = PasswordField(
        "New password", validators=[DataRequired(), Length(max=1024)],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        "Repeat new password",
        validators=[DataRequired(), EqualTo("new_password", message="The passwords differ.")],
        render_kw={"autocomplete": "new-password"},
    )
    submit = SubmitField("Change password")


class TotpDisableForm(FlaskForm):
    """Password and a current code, to switch two-factor sign-in off."""

    password = PasswordField("Password", validators=[DataRequired()])
    code = StringField("Authentication code", validators=[DataRequired()])
    submit = SubmitField("Turn off two-factor sign-in")


class EmptyForm(FlaskForm):
    """A form with only a CSRF token, for action buttons."""

    submit = SubmitField("Submit")


class _Checkboxes(SelectMultipleField):
    """Several choices shown as checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ApiTokenForm(FlaskForm):
    """A new personal API token: label, scopes, expiry, and the password (re-authentication)."""

    label = StringField(
        "Label", validators=[DataRequired(), Length(max=100), PlainText()],
        description="What or who uses it, e.g. “PACS at Harbourview” or “nightly export”.",
    )
    scopes = _Checkboxes("Scopes", choices=choices([("read", "read: search and retrieve"),
                                                     ("write", "write: store studies")]),
                          default=["read"])
    expires = SelectField("Expires", choices=EXPIRY_CHOICES, default="90")
    password = PasswordField("Your password", validators=[DataRequired(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})
    # One per form shown: the same form sent twice (a reload) creates no second token.
    nonce = HiddenField(validators=[DataRequired(), Length(max=64)],
                        default=lambda: secrets.token_urlsafe(16))
    submit = SubmitField("Create token")

    def validate_scopes(self, field):
        if not field.data:
            raise ValidationError("Choose at least one scope.")

    def expires_days(self) -> int | None:
        """The expiry in days, None for a token that never expires."""
        return None if self.expires.data == "never" else int(self.expires.data)
