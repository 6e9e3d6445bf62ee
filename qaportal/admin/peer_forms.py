"""The form of a known DICOM peer; its values are checked by qaportal.feeds.peer_checks, as
on the command line."""

from __future__ import annotations

import sqlalchemy as sa
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Length, Optional

from qaportal.extensions import db
from qaportal.forms_choices import choices
from qaportal.models import User, UserRole

SEND_CHOICES = choices([("none", "Nothing is sent back"), ("dicom", "DICOM C-STORE"),
                        ("stow", "DICOMweb STOW-RS")])


class PeerForm(FlaskForm):
    """A peer: who it is, where it connects from, who owns what it sends, where results go.

    Lengths are generous here: the shared checks give the precise messages.
    """

    ae_title = StringField("Calling AE title", validators=[Length(max=64)],
                           description="1 to 16 characters, as the site's PACS or modality "
                                       "calls itself.")
    addresses = TextAreaField("Addresses", validators=[Length(max=4000)],
                              description="IPv4 or IPv6 addresses or networks it connects "
                                          "from, one a line (10.1.2.3, 10.1.0.0/16).")
    owner = SelectField("Owner", choices=[], validate_choice=False,
                        description="The radiologist account that owns what the peer sends.")
    description = StringField("Description", validators=[Optional(), Length(max=400)],
                              description="A note for administrators, e.g. the site's name. "
                                          "No patient data.")
    send_kind = RadioField("Signed results go back", choices=SEND_CHOICES, default="none",
                           validate_choice=False)
    send_host = StringField("C-STORE host", validators=[Length(max=300)])
    send_port = StringField("C-STORE port", validators=[Length(max=10)])
    send_ae = StringField("C-STORE AE title", validators=[Length(max=64)])
    stow_url = StringField("STOW-RS URL", validators=[Length(max=600)],
                           description="Base URL of the site's DICOMweb service.")
    stow_credentials = PasswordField(
        "STOW-RS credentials", validators=[Length(max=4000)],
        description="USER:PASSWORD or \"Bearer TOKEN\". Stored encrypted and never shown "
                    "again; leave empty to keep what is stored.",
    )
    clear_credentials = BooleanField("Remove the stored credentials")

    def set_owner_choices(self, current: User | None = None) -> None:
        """Offer the active radiologists (and the current owner, even if no longer one)."""
        users = db.session.scalars(
            sa.select(User).where(User.active.is_(True),
                                  User.roles.any(UserRole.role == "radiologist"))
            .order_by(User.full_name)).all()
        if current is not None and current not in users:
            users.append(current)
        self.owner.choices = choices([("", "— choose an account —")] + [
            (u.email, f"{u.full_name} <{u.email}>") for u in users])
