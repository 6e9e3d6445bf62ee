"""The opinion itself: drafts, signature (final and immutable), signed addenda."""

from __future__ import annotations

from datetime import date

from qaportal import audit
from qaportal.auth.service import check_totp
from qaportal.extensions import db
from qaportal.feeds.delivery import create_deliveries
from qaportal.models import Opinion, OpinionAddendum, OpinionRequest, User, utcnow
from qaportal.models.opinion import AGREEMENTS, COVERAGE_ANSWERS
from qaportal.notify import notify
from qaportal.opinions.eligibility import active_license, request_ineligibility
from qaportal.opinions.service import OpinionError, describe, request_link, update_if
from qaportal.opinions.sla import turnaround_minutes
from qaportal.passwords import verify_password


class SignatureRefused(OpinionError):
    """The re-entered password or code did not confirm the signer."""


DRAFT_FIELDS = ("findings", "impression", "agreement", "recommendations", "coverage_answer",
                "coverage_text")


def verify_signature(user: User, secret: str) -> str | None:
    """Return 'totp' or 'password' when the secret confirms the user, else None."""
    secret = (secret or "").strip()
    if user.totp_enabled and secret.replace(" ", "").isdigit() and len(secret) <= 8:
        return "totp" if check_totp(user, secret) else None
    return "password" if secret and verify_password(user.password_hash, secret) else None


def credentials_of(user: User, day: date | None = None) -> str:
    """Return the user's current board certifications as one line."""
    day = day or date.today()
    certs = [f"{c.board}, {c.specialty}" for c in user.certifications
             if c.expires_on is None or c.expires_on >= day]
    return "; ".join(certs)


def _require_consultant(req: OpinionRequest, user: User) -> None:
    if req.consultant_id != user.id or req.status != "accepted":
        raise OpinionError("Only the consultant working on this request can write its opinion.")


def draft_for(req: OpinionRequest, user: User) -> Opinion:
    """Return the request's opinion, creating an empty draft for its consultant."""
    if req.opinion is not None:
        return req.opinion
    _require_consultant(req, user)
    opinion = Opinion(request=req, author=user)
    db.session.add(opinion)
    db.session.flush()
    return opinion


def save_draft(req: OpinionRequest, user: User, data: dict) -> Opinion:
    """Store the consultant's draft; a signed opinion is refused."""
    _require_consultant(req, user)
    opinion = draft_for(req, user)
    if opinion.is_signed:
        raise OpinionError("The opinion is signed; add an addendum instead.")
    changed = []
    for field in DRAFT_FIELDS:
        if field not in data:
            continue
        value = data[field]
        if field == "agreement":
            value = value if value in AGREEMENTS else None
        elif field == "coverage_answer":
            value = value if value in COVERAGE_ANSWERS else None
        else:
            value = (value or "")[:20000]
        if getattr(opinion, field) != value:
            setattr(opinion, field, value)
            changed.append(field)
    if changed:
        opinion.draft_saved_at = utcnow()
        db.session.flush()
        audit.record("opinion.draft_saved", req, actor=user, fields=changed)
    return opinion


def missing_for_signature(req: OpinionRequest, opinion: Opinion) -> list[str]:
    """Return what must be filled in before signing."""
    missing = []
    if not opinion.findings.strip():
        missing.append("findings")
    if not opinion.impression.strip():
        missing.append("impression")
    if opinion.agreement is None:
        missing.append("agreement with the original read")
    if req.request_type == "coverage_review":
        if opinion.coverage_answer is None:
            missing.append("answer to the coverage criteria")
        if not opinion.coverage_text.strip():
            missing.append("explanation of the coverage answer")
    return missing


def _signature(req: OpinionRequest, user: User, secret: str) -> tuple[str, object]:
    """Check eligibility again and the re-entered secret; return method and licence."""
    reasons = request_ineligibility(user, req)
    if reasons:
        raise OpinionError(f"You cannot sign for this study: {'; '.join(reasons)}.")
    method = verify_signature(user, secret)
    if method is None:
        raise SignatureRefused("The password or authentication code is not correct.")
    return method, active_license(user, req.study.jurisdiction)


def sign(req: OpinionRequest, user: User, secret: str) -> Opinion:
    """Sign the draft: final and immutable, with a snapshot of the signer's licence."""
    _require_consultant(req, user)
    opinion = draft_for(req, user)
    if opinion.is_signed:
        raise OpinionError("The opinion is already signed.")
    missing = missing_for_signature(req, opinion)
    if missing:
        raise OpinionError("Fill in before signing: " + ", ".join(missing) + ".")
    method, licence = _signature(req, user, secret)
    credentials = credentials_of(user)[:300]  # loaded before any attribute changes
    now = utcnow()
    # Conditional, like a claim: a cancel that got there first wins, and the signature is
    # refused with a clear message (and rolled back by the caller).
    if not update_if(req, OpinionRequest.status == "accepted",
                     OpinionRequest.consultant_id == user.id, status="signed", signed_at=now):
        if req.status == "cancelled":
            raise OpinionError("The requester cancelled this request a moment ago; the "
                               "opinion was not signed.")
        if req.status == "signed":
            raise OpinionError("The opinion is already signed.")
        raise OpinionError("This request is no longer assigned to you; the opinion was not "
                           "signed.")
    with db.session.no_autoflush:
        req.turnaround_minutes = turnaround_minutes(req)
        opinion.signed_at = now
        opinion.signature_method = method
        opinion.signer_name = user.full_name
        opinion.signer_credentials = credentials
        opinion.license_jurisdiction = licence.jurisdiction
        opinion.license_number = licence.number
    db.session.flush()
    audit.record("opinion.signed", req, actor=user, method=method,
                 license_jurisdiction=licence.jurisdiction,
                 turnaround_minutes=req.turnaround_minutes)
    # The outbox: the result goes back to the requesting site once this commits.
    create_deliveries(req, actor=user)
    notify(req.requester, "opinion.signed",
           f"{user.full_name} signed the opinion on your {describe(req)}", request_link(req))
    return opinion


def add_addendum(req: OpinionRequest, user: User, text: str, secret: str) -> OpinionAddendum:
    """Append a signed addendum to a signed opinion."""
    opinion = req.opinion
    if opinion is None or not opinion.is_signed:
        raise OpinionError("Addenda follow a signed opinion.")
    if user.id != opinion.author_id:
        raise OpinionError("Only the signer of the opinion can add an addendum.")
    if not text.strip():
        raise OpinionError("Write the addendum.")
    method, licence = _signature(req, user, secret)
    addendum = OpinionAddendum(
        opinion=opinion, author=user, text=text.strip(), signed_at=utcnow(),
        signature_method=method, signer_name=user.full_name,
        signer_credentials=credentials_of(user)[:300],
        license_jurisdiction=licence.jurisdiction, license_number=licence.number,
    )
    db.session.add(addendum)
    db.session.flush()
    audit.record("opinion.addendum_signed", req, actor=user, addendum_id=addendum.id,
                 method=method)
    create_deliveries(req, addendum, actor=user)
    notify(req.requester, "opinion.addendum",
           f"{user.full_name} added an addendum to the opinion on your {describe(req)}",
           request_link(req))
    return addendum
