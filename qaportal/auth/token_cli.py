"""`qaportal token create|revoke|list`: personal API tokens from the command line.

`create` prints the new token alone on stdout (for scripts and PACS configuration) and
what it is (id, scopes, expiry) on stderr. Audited like the web's, as "command line (USER)".
"""

from __future__ import annotations

import getpass
import sys

import click
from flask.cli import with_appcontext

DEFAULT_EXPIRY_DAYS = 90


def _fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _operator() -> str:
    return f"command line ({getpass.getuser()})"


def _user(email: str):
    from qaportal.auth.service import find_user

    user = find_user(email)
    if user is None:
        _fail(f"no account with the e-mail {email.strip().lower()}")
    return user


@click.group("token")
def token_group() -> None:
    """Create, revoke and list personal API tokens (Authorization: Bearer)."""


@token_group.command("create")
@with_appcontext
@click.argument("email")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(["read", "write"]),
              help="read (search, retrieve) or write (store); give twice for both. "
                   "Default: read.")
@click.option("--expires-days", type=click.IntRange(1, 3650), default=None, metavar="N",
              help=f"Days until the token expires (default {DEFAULT_EXPIRY_DAYS}).")
@click.option("--never-expires", is_flag=True, help="A token without an expiry date.")
@click.option("--label", default="command line", show_default=True,
              help="What or who uses the token.")
def token_create(email: str, scopes: tuple[str, ...], expires_days: int | None,
                 never_expires: bool, label: str) -> None:
    """Create a token for the account EMAIL and print it once."""
    from qaportal.auth import tokens
    from qaportal.extensions import db

    if never_expires and expires_days is not None:
        _fail("give either --expires-days or --never-expires", 2)
    user = _user(email)
    if not user.active:
        _fail(f"the account {user.email} is deactivated")
    days = None if never_expires else (expires_days or DEFAULT_EXPIRY_DAYS)
    try:
        new = tokens.create(user, label=label, scopes=scopes or ("read",), expires_days=days,
                            by=None, actor_label=_operator())
    except tokens.TokenError as exc:
        _fail(str(exc))
    db.session.commit()
    click.echo(new.secret)
    expiry = new.token.expires_at.strftime("%Y-%m-%d %H:%M UTC") if new.token.expires_at \
        else "never"
    click.echo(f"token {new.token.id} for {user.email}: scopes {new.token.scopes}, "
               f"expires {expiry}; shown once, keep it like a password", err=True)


@token_group.command("revoke")
@with_appcontext
@click.argument("token_id", type=int, metavar="ID")
def token_revoke(token_id: int) -> None:
    """Revoke the token ID (see `qaportal token list`)."""
    from qaportal.auth import tokens
    from qaportal.extensions import db
    from qaportal.models import ApiToken

    token = db.session.get(ApiToken, token_id)
    if token is None:
        _fail(f"no API token with the id {token_id}")
    if not tokens.revoke(token, by=None, reason="revoked on the command line",
                         actor_label=_operator()):
        _fail(f"token {token_id} was revoked already")
    db.session.commit()
    click.echo(f"revoked token {token_id} ({token.token_prefix}…) of {token.user.email}")


@token_group.command("list")
@with_appcontext
@click.argument("email", required=False)
def token_list(email: str | None) -> None:
    """List the tokens of EMAIL, or of every account (never a secret)."""
    from qaportal.auth import tokens

    rows = tokens.user_tokens(_user(email)) if email else tokens.all_tokens()
    if not rows:
        click.echo("no API tokens", err=True)
        return
    click.echo("id\tuser\tprefix\tscopes\tstatus\tcreated\texpires\tlast used\tlabel")
    for t in rows:
        click.echo("\t".join([
            str(t.id), t.user.email, t.token_prefix, t.scopes, t.status(), _day(t.created_at),
            _day(t.expires_at) or "never", _day(t.last_used_at) or "-", t.label,
        ]))


def _day(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""
