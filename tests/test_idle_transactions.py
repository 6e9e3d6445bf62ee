"""No connection of the app stays idle in a transaction between requests (PostgreSQL).

The requests go through the test client with no app context of the test around them, as
in production, where each request has its own context and database session. Afterwards
pg_stat_activity lists the app's connections (by their application name): they sit idle
in the pool, none of them inside a transaction.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from tests.factories import DEFAULT_PASSWORD
from tests.test_query_counts import PAGES, add_rows, make_people

APP_NAME = "qaportal-idle-check"


def _states(url: str) -> list[str]:
    engine = sa.create_engine(sa.make_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(
                "SELECT state FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = :name"), {"name": APP_NAME}).scalars())
    finally:
        engine.dispose()


def test_no_connection_idle_in_transaction_between_requests(postgres_url, tmp_path):
    if postgres_url is None:
        pytest.skip("needs a PostgreSQL server (QAPORTAL_TEST_DATABASE_URL): "
                    "pg_stat_activity is PostgreSQL's")
    from tests.conftest import make_test_app

    options = {"pool_pre_ping": True, "connect_args": {"application_name": APP_NAME}}
    app = make_test_app(tmp_path, postgres_url, SQLALCHEMY_ENGINE_OPTIONS=options)
    with app.app_context():
        people = make_people()
        add_rows(people, 2)
        emails = {role: user.email for role, user in people.items()}
    clients = {}
    for role, email in emails.items():
        clients[role] = app.test_client()
        response = clients[role].post("/login", data={"email": email,
                                                      "password": DEFAULT_PASSWORD})
        assert response.status_code == 302
    for _name, role, url in PAGES:
        response = clients[role].get(url)
        assert response.status_code == 200, url
        response.close()
    # A streamed download read in full, and one the client gives up on after a chunk.
    response = clients["qa"].get("/audit/export.csv")
    assert response.status_code == 200 and response.get_data().count(b"\n") > 10
    response = clients["qa"].get("/audit/export.csv", buffered=False)
    next(iter(response.response))
    response.close()

    states = _states(postgres_url)
    try:
        assert states, "the app's connections are not listed: the check would see nothing"
        assert "idle in transaction" not in states, states
        assert set(states) == {"idle"}
        with app.app_context():  # the check sees a session left inside a transaction
            db.session.execute(sa.text("SELECT 1"))
            assert "idle in transaction" in _states(postgres_url)
    finally:
        with app.app_context():
            db.engine.dispose()
