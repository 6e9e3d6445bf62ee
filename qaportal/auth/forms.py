"""Forms for signing in and managing one's own account."""

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp


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
