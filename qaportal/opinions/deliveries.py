"""The request page's deliveries of the signed result: a manual resend."""

from __future__ import annotations

from flask import abort, flash, redirect, url_for
from flask_login import current_user

from qaportal.auth.forms import EmptyForm
from qaportal.extensions import db
from qaportal.feeds.delivery import can_resend, resend
from qaportal.models import Delivery
from qaportal.opinions import bp
from qaportal.opinions.helpers import request_or_404


@bp.route("/<int:request_id>/deliveries/<int:delivery_id>/resend", methods=["POST"])
def resend_delivery(request_id: int, delivery_id: int):
    req, view = request_or_404(request_id, current_user)
    if view != "full" or not can_resend(current_user, req):
        abort(403)
    if not EmptyForm().validate_on_submit():
        abort(400)
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.request_id != req.id:
        abort(404)
    if resend(delivery, current_user._get_current_object()):
        db.session.commit()
        flash(f"The {delivery.object_label} will be sent to {delivery.peer.ae_title} again.",
              "success")
    else:
        db.session.rollback()
        flash("That delivery is already queued or being sent.", "info")
    return redirect(url_for("opinions.detail", request_id=req.id, _anchor="deliveries"))
