"""The `qaportal` command: a Flask CLI group with the portal's own commands."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from qaportal.models import ROLES


def register_commands(app: Flask) -> None:
    """Attach the portal's commands to the app's CLI."""
    app.cli.add_command(create_user)
    app.cli.add_command(demo)
    app.cli.add_command(audit_verify)
    app.cli.add_command(sla_check)
    app.cli.add_command(stats_group)
    from qaportal.auth.token_cli import token_group
    from qaportal.feeds.hl7_listener import hl7_listen
    from qaportal.feeds.listen_cli import dicom_listen
    from qaportal.feeds.peer_cli import peer_group, reader_id_group
    from qaportal.jobs.worker import worker
    from qaportal.reports.cli import report_group
    from qaportal.studies.cli import deidentify, import_study, verify_storage

    for command in (import_study, verify_storage, deidentify, report_group, token_group,
                    worker, hl7_listen, dicom_listen, peer_group, reader_id_group):
        app.cli.add_command(command)


def _fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _known_roles(ctx, param, roles: tuple[str, ...]) -> tuple[str, ...]:
    """Refuse an unknown role in one line (exit 2, as Click's usage errors)."""
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        _fail(f"unknown role {unknown[0]!r}; the roles are {', '.join(ROLES)}", 2)
    return roles


@click.command("create-user")
@with_appcontext
@click.argument("email")
@click.option("--name", required=True, help="Full name shown in the portal.")
@click.option("--role", "roles", multiple=True, required=True, callback=_known_roles,
              help=f"A role ({', '.join(ROLES)}); repeat for several.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from standard input (never from the command line).")
def create_user(email: str, name: str, roles: tuple[str, ...], password_stdin: bool) -> None:
    """Create an account."""
    from qaportal.admin.forms import email_problem
    from qaportal.admin.service import AdminError
    from qaportal.admin.service import create_user as create
    from qaportal.extensions import db
    from qaportal.passwords import generate_password, policy_problems
    from qaportal.validation import plain_text_problem

    problem = email_problem(email)
    if problem:
        _fail(f"{email!r} is not a valid e-mail address: {problem}")
    problem = plain_text_problem(name)
    if problem:
        _fail(f"--name is not valid: {problem}")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        problems = policy_problems(password, email=email, name=name)
        if problems:
            _fail("password refused: " + " ".join(problems))
        must_change = False
    else:
        password = generate_password()
        must_change = True
    try:
        user = create(email, name, roles, password, by=None, must_change=must_change)
    except AdminError as exc:
        _fail(str(exc))
    db.session.commit()
    click.echo(f"created user {user.id} <{user.email}> with roles {', '.join(sorted(roles))}")
    if not password_stdin:
        click.echo(f"temporary password (must be changed at first sign-in): {password}")


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Seed demo accounts and sample data (idempotent; never into an instance of real data)."""
    from qaportal.demo import align_passwords, instance_state, seed

    if instance_state() == "real":
        click.echo("This instance holds accounts of its own and no demo accounts: "
                   "no demo data seeded.")
        return
    accounts, password, summaries = seed()
    differ = set(align_passwords(accounts, password, reset=False))
    if not differ:
        click.echo(f"Demo accounts (password for all: {password})")
    else:
        click.echo(f"Demo accounts (password: {password}; accounts marked * keep a password "
                   "changed since, set QAPORTAL_DEMO_PASSWORD to reset them)")
    for key, user in accounts.items():
        mark = "*" if key in differ else " "
        click.echo(f" {mark}{key:<13} {user.email:<32} {', '.join(sorted(user.role_names))}")
    for line in summaries:
        click.echo(line)


@click.command("audit-verify")
@click.option("--incremental", is_flag=True,
              help="Check only what was written since the last verified checkpoint (that "
                   "entry is re-hashed and must match it); a full pass when there is none.")
@with_appcontext
def audit_verify(incremental: bool) -> None:
    """Check the audit log's hash chain, MACs and anchor checkpoints; exit 0 when intact,
    1 naming the first bad entry; an intact run writes a verified checkpoint of the head."""
    from qaportal.audit_verify import anchor_head, verify

    try:
        result = verify(incremental=incremental)
    except OSError as exc:  # the anchor file exists but cannot be read: nothing was checked
        _fail(f"anchor file cannot be read: {exc}", EXIT_UNAVAILABLE)
    if result.ok:
        click.echo(result.line())
        try:
            anchor_head(result)
        except OSError as exc:
            _fail(f"checkpoint not written to the anchor file: {exc}", EXIT_UNAVAILABLE)
        click.echo(f"anchored: {result.count - result.legacy} entries MAC-checked, "
                   f"{result.checkpoints} checkpoint(s) matched")
        return
    _fail(result.line())


@click.group("stats")
def stats_group() -> None:
    """The statistics' summary tables (review counts per reader and day / month, reviewers'
    assignments per status)."""


@stats_group.command("rebuild")
@with_appcontext
def stats_rebuild() -> None:
    """Count every review again into the summary tables (after bulk SQL that bypassed the app)."""
    import time

    from qaportal.extensions import db
    from qaportal.qa import workload
    from qaportal.qa.summary import rebuild

    started = time.perf_counter()
    with db.engine.begin() as connection:
        written = rebuild(connection)
        written["reviewer_status_counts"] = workload.rebuild(connection)
    click.echo(f"statistics summary rebuilt in {time.perf_counter() - started:.1f} s: "
               + ", ".join(f"{table} {n:,} rows" for table, n in written.items()))


@click.command("sla-check")
def sla_check() -> None:
    """Warn of approaching second-opinion deadlines and escalate breaches (safe every minute;
    `qaportal worker` runs it every minute)."""
    from qaportal.extensions import db
    from qaportal.opinions.escalation import check_deadlines

    summary = check_deadlines()
    db.session.commit()
    click.echo(summary.line())


# Exit status of a command that the configuration or the database stopped (1 and 2 keep
# the meanings each command documents).
EXIT_UNAVAILABLE = 3


def _database_message(exc: Exception) -> str:
    """One line for a database error: the driver's first line, without the SQL."""
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    first = lines[0].strip() if lines else type(exc).__name__
    if "no such table" in first or ("relation" in first and "does not exist" in first):
        first += " (run `qaportal db upgrade` first)"
    return f"database error: {first}"


class _Group(FlaskGroup):
    """Flask's group, except that listing commands (--help) lets a ConfigError through:
    Flask would print its traceback and carry on."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from flask.cli import ScriptInfo

        ctx.ensure_object(ScriptInfo).load_app()  # ConfigError: main() prints one line
        return super().list_commands(ctx)


def main() -> None:
    """Entry point of the `qaportal` console script: errors are one line on stderr."""
    from sqlalchemy.exc import SQLAlchemyError

    from qaportal import create_app
    from qaportal.config import ConfigError

    # Commands do not check the audit key at start (`db upgrade` must run under any key);
    # `worker` does, and every audit entry is checked as it is written (qaportal/audit_key.py).
    cli = _Group(create_app=lambda: create_app({"AUDIT_KEY_CHECK": False}),
                 help="qaportal administration commands.")
    try:
        cli.main(prog_name="qaportal")
    except ConfigError as exc:
        _fail(f"configuration: {exc}", EXIT_UNAVAILABLE)
    except SQLAlchemyError as exc:
        _fail(_database_message(exc), EXIT_UNAVAILABLE)


if __name__ == "__main__":
    main()
