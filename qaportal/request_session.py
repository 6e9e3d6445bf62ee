"""The database session of a web request keeps its loaded rows when the request commits.

A page records its audit entry and commits before it renders. With SQLAlchemy's default
expire-on-commit, that commit expired every row the view had loaded, and the template then
re-selected each of them one by one (and in a new transaction). During a request the
session therefore does not expire on commit: the page renders the rows it loaded, in the
state they had when the audit record of the view was committed with them. A rollback
still expires everything, and the session ends with the request (Flask-SQLAlchemy removes
it when the app context closes), so nothing stale outlives the request.

Command-line tasks and workers keep the default: a long loop that commits and reads again
must see what other processes changed.
"""

from __future__ import annotations

from flask import Flask, g

from qaportal.extensions import db


def init_app(app: Flask) -> None:
    """Install the hooks: the first before every request, and a teardown restoring it."""

    def keep_rows_on_commit() -> None:
        session = db.session()
        g._expire_on_commit = session.expire_on_commit
        session.expire_on_commit = False

    # First of all before-request hooks: the user and token loaders already load rows.
    app.before_request_funcs.setdefault(None, []).insert(0, keep_rows_on_commit)

    @app.teardown_request
    def restore_expiry(exc) -> None:
        # A test's requests share the test's app context and session: give it back as it was.
        previous = g.pop("_expire_on_commit", None)
        if previous is not None:
            db.session().expire_on_commit = previous
