"""Account administration: each function changes models, audits and flushes."""

from __future__ import annotations

import sqlalchemy as sa

from qaportal import audit
from qaportal.auth import sessions, tokens
from qaportal.extensions import db
from qaportal.models import BoardCertification, License, Privilege, User, UserSubspecialty
from qaportal.passwords import hash_password


class AdminError(ValueError):
    """An administrative change that is not allowed; the message says why."""


def email_taken(email: str, exclude_id: int | None = None) -> bool:
    """Return True when another account already uses the address."""
    stmt = sa.select(User.id).where(User.email == email.strip().lower())
    if exclude_id is not None:
        stmt = stmt.where(User.id != exclude_id)
    return db.session.scalar(stmt) is not None


def create_user(email: str, full_name: str, roles, password: str, *, by: User | None,
                must_change: bool = True, subspecialties=()) -> User:
    """Create an account with roles and a password."""
    email = email.strip().lower()
    if email_taken(email):
        raise AdminError(f"An account with the e-mail {email} already exists.")
    user = User(email=email, full_name=full_name.strip(), password_hash=hash_password(password),
                must_change_password=must_change)
    user.set_roles(roles)
    user.subspecialties = [UserSubspecialty(subspecialty=s) for s in sorted(set(subspecialties))]
    db.session.add(user)
    db.session.flush()
    audit.record("user.created", user, actor=by, actor_label=None if by else "cli",
                 roles=sorted(roles), subspecialties=sorted(subspecialties))
    return user


def update_user(user: User, *, email: str, full_name: str, roles, subspecialties, active: bool,
                by: User) -> None:
    """Change an account's details, roles, subspecialties and active flag."""
    email = email.strip().lower()
    if email_taken(email, exclude_id=user.id):
        raise AdminError(f"An account with the e-mail {email} already exists.")
    if user.id == by.id and ("admin" not in roles or not active):
        raise AdminError("You cannot remove your own administrator role or deactivate yourself.")
    before = {"email": user.email, "full_name": user.full_name, "roles": sorted(user.role_names),
              "subspecialties": sorted(user.subspecialty_names), "active": user.active}
    user.email = email
    user.full_name = full_name.strip()
    user.set_roles(roles)
    wanted = set(subspecialties)
    user.subspecialties = [s for s in user.subspecialties if s.subspecialty in wanted] + [
        UserSubspecialty(subspecialty=s) for s in sorted(wanted - user.subspecialty_names)
    ]
    if user.active and not active:
        user.session_version += 1  # sign the person out everywhere
        sessions.end_all(user, "account deactivated")
        tokens.revoke_all(user, by=by, reason=tokens.DEACTIVATED)
    user.active = active
    after = {"email": user.email, "full_name": user.full_name, "roles": sorted(roles),
             "subspecialties": sorted(wanted), "active": active}
    changes = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
    if changes:
        audit.record("user.updated", user, actor=by, changes=changes)
        db.session.flush()


def set_active(user: User, active: bool, *, by: User) -> None:
    """Deactivate or reactivate an account (never delete: history keeps its actors)."""
    if user.id == by.id and not active:
        raise AdminError("You cannot deactivate your own account.")
    if user.active == active:
        return
    user.active = active
    if not active:
        user.session_version += 1
        sessions.end_all(user, "account deactivated")
        tokens.revoke_all(user, by=by, reason=tokens.DEACTIVATED)  # none outlives the account
    audit.record("user.activated" if active else "user.deactivated", user, actor=by)


def reset_password(user: User, password: str, *, by: User) -> None:
    """Give the user a temporary password they must change at next sign-in."""
    user.password_hash = hash_password(password)
    user.must_change_password = True
    user.session_version += 1
    sessions.end_all(user, "password changed")
    audit.record("user.password_reset", user, actor=by)


def unlock(user: User, *, by: User) -> None:
    """Clear a lockout after failed sign-ins."""
    user.locked_until = None
    user.failed_logins = 0
    user.failed_window_start = None
    audit.record("user.unlocked", user, actor=by)


def add_license(user: User, *, by: User, **fields) -> License:
    """Record a licence."""
    fields["jurisdiction"] = fields["jurisdiction"].strip().upper()
    lic = License(user=user, **fields)
    db.session.add(lic)
    db.session.flush()
    audit.record("credential.license_added", user, actor=by, license_id=lic.id,
                 jurisdiction=lic.jurisdiction, valid_to=lic.valid_to.isoformat())
    return lic


def add_certification(user: User, *, by: User, **fields) -> BoardCertification:
    """Record a board certification."""
    cert = BoardCertification(user=user, **fields)
    db.session.add(cert)
    db.session.flush()
    audit.record("credential.certification_added", user, actor=by, certification_id=cert.id,
                 board=cert.board, specialty=cert.specialty)
    return cert


def add_privilege(user: User, *, by: User, **fields) -> Privilege:
    """Record clinical privileges granted by a facility."""
    fields["facility"] = fields["facility"].strip()
    fields["description"] = fields["description"].strip()
    fields["notes"] = (fields.get("notes") or "").strip()
    priv = Privilege(user=user, **fields)
    db.session.add(priv)
    db.session.flush()
    audit.record("credential.privilege_added", user, actor=by, privilege_id=priv.id,
                 facility=priv.facility, description=priv.description,
                 granted_on=priv.granted_on.isoformat(), valid_to=priv.valid_to.isoformat())
    return priv


def remove_credential(user: User, kind: str, credential_id: int, *, by: User) -> None:
    """Remove a licence, certification or privilege that was entered in error."""
    model = {"license": License, "certification": BoardCertification,
             "privilege": Privilege}[kind]
    item = db.session.get(model, credential_id)
    if item is None or item.user_id != user.id:
        raise AdminError("No such credential on this account.")
    db.session.delete(item)
    audit.record(f"credential.{kind}_removed", user, actor=by, credential_id=credential_id)
