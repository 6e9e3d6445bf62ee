"""The audit log's filter form (GET, no CSRF)."""

from flask_wtf import FlaskForm
from wtforms import DateField, StringField
from wtforms.validators import Optional


class AuditFilterForm(FlaskForm):
    """Filters for the audit log."""

    class Meta:
        csrf = False

    actor = StringField("Actor (e-mail)", validators=[Optional()])
    action = StringField("Action", validators=[Optional()])
    object_type = StringField("Object type", validators=[Optional()])
    object_id = StringField("Object id", validators=[Optional()])
    date_from = DateField("From", validators=[Optional()])
    date_to = DateField("To", validators=[Optional()])
    cursor = StringField("Page", validators=[Optional()])  # qaportal.paging cursor
