"""Test fixtures: an app and an empty database schema per test, on SQLite or PostgreSQL.

Set QAPORTAL_TEST_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:5432/test) to run on
PostgreSQL: the run creates a database of its own on that server and drops it at the end.
With --postgres-only (the PostgreSQL pass of `make test`) the tests that never reach that
database are deselected: they already ran, identically, in the SQLite pass. Tests share that
database one after another; each starts with every table emptied and the
schema rebuilt if a test changed it (tests/empty_schema.py). Tests that run migrations make
databases of their own (tests/test_migrations.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import g, has_app_context
from flask.testing import FlaskClient

from qaportal import create_app

# The tests build many apps in this one process: none of them freezes the garbage
# collector's view of it (qaportal/gc_settle.py; a server does, once).
os.environ.setdefault("QAPORTAL_GC_FREEZE", "0")
from qaportal.extensions import db as _db
from tests import empty_schema, route_builders
from tests.factories import DEFAULT_PASSWORD

route_builders.install()  # each rule's URL builder compiled once per run, not per test's app

# The `people` fixture of the second-opinion tests (a module may define its own instead).
pytest_plugins = ["tests.opinion_world", "tests.dicomweb_world", "tests.marks_world",
                  "tests.redis_server", "tests.choices_strict"]

PG_ENV = "QAPORTAL_TEST_DATABASE_URL"

# Fast Argon2 parameters for tests; a test checks the production defaults separately.
FAST_HASHING = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 8, "ARGON2_PARALLELISM": 1}


def pytest_addoption(parser):
    parser.addoption(
        "--postgres-only", action="store_true",
        help="with QAPORTAL_TEST_DATABASE_URL: deselect the tests that never reach it (see "
             "pytest_collection_modifyitems); the PostgreSQL pass of `make test` uses it")


def _reaches_postgres(item) -> bool:
    """Whether the test can use the PostgreSQL database of QAPORTAL_TEST_DATABASE_URL.

    The URL reaches a test only through the postgres_url fixture (db_url, app, client and
    every world fixture ask for it) or by reading the variable itself; the app never reads
    it. A test with neither runs exactly as it does without the variable: in the PostgreSQL
    pass it would only run the SQLite pass again.
    """
    if "postgres_url" in getattr(item, "fixturenames", ("postgres_url",)):
        return True
    path = getattr(item, "path", None)
    source = path.read_text(encoding="utf-8") if path is not None and path.exists() else PG_ENV
    return PG_ENV in source or "PG_ENV" in source


def pytest_collection_modifyitems(config, items):
    if not config.getoption("postgres_only"):
        return
    if not os.environ.get(PG_ENV):
        raise pytest.UsageError(f"--postgres-only needs {PG_ENV}")
    keep, drop = [], []
    for item in items:
        (keep if _reaches_postgres(item) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _admin_url(url: str) -> sa.URL:
    u = sa.make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """Create a throwaway PostgreSQL database for this run (None: use SQLite)."""
    base = os.environ.get(PG_ENV)
    if not base:
        yield None
        return
    admin_url = _admin_url(base)
    name = f"qaportal_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        pytest.exit(f"{PG_ENV} is set but PostgreSQL cannot be reached: {exc}", returncode=3)
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def _empty_sqlite_template(tmp_path_factory) -> None:
    """Where the run keeps the empty SQLite database that each test's file is copied from."""
    empty_schema.template_dir = tmp_path_factory.mktemp("empty-schema")


@pytest.fixture
def db_url(postgres_url, tmp_path) -> str:
    """Return the database URL for this test."""
    return postgres_url or f"sqlite:///{tmp_path / 'test.sqlite'}"


class Client(FlaskClient):
    """A test client whose requests start with an empty `g`, as in production.

    Requests run inside the test's app context (so tests share its db.session), and
    Flask-Login caches the signed-in user in `g`: without this, a request would reuse the
    user of the previous request instead of loading it from its own session cookie.
    """

    def open(self, *args, **kwargs):
        if has_app_context():
            g.__dict__.clear()
        return super().open(*args, **kwargs)


def make_test_app(tmp_path, db_url: str, **overrides):
    """Build an app for tests with its own instance folder and an empty schema.

    On PostgreSQL the run's database is emptied (not rebuilt unless a test changed its
    schema); a new SQLite file is a copy of the run's empty template.
    """
    config = {
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SQLALCHEMY_DATABASE_URI": db_url,
        "SECRET_KEY": "test-secret-key",
        "LOCAL": True,
        "WTF_CSRF_ENABLED": False,
        # The database is emptied after create_app: its check would meet the last test's
        # audit key (tests/test_audit_key.py checks on purpose).
        "AUDIT_KEY_CHECK": False,
        **FAST_HASHING,
        **overrides,
    }
    app = create_app(config)
    app.test_client_class = Client
    url = sa.make_url(db_url)
    with app.app_context():
        if url.get_backend_name() == "postgresql":
            empty_schema.reset_postgresql(db_url)
        elif url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            empty_schema.reset_sqlite(Path(url.database))
        else:
            _db.drop_all()
            _db.create_all()
    return app


@pytest.fixture
def app(tmp_path, db_url):
    """An app with an empty database, inside an app context."""
    app = make_test_app(tmp_path, db_url)
    with app.app_context():
        yield app
        _db.session.remove()
        _db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db(app):
    return _db


class AuthActions:
    """Sign a test client in and out."""

    def __init__(self, client):
        self.client = client

    def login(self, user_or_email, password: str = DEFAULT_PASSWORD):
        email = getattr(user_or_email, "email", user_or_email)
        return self.client.post("/login", data={"email": email, "password": password})

    def logout(self):
        return self.client.post("/logout")


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def login_as(client, auth):
    """Create a user with the given roles, sign them in, and return them."""
    from tests.factories import make_user

    def _login(*roles: str, **kw):
        user = make_user(roles=roles or ("radiologist",), **kw)
        _db.session.commit()
        response = auth.login(user)
        assert response.status_code == 302, response.data[:500]
        return user

    return _login
