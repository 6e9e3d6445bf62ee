"""Every route of app.url_map, requested anonymously and by each role."""

from __future__ import annotations

import tempfile

import pytest
from werkzeug.routing import IntegerConverter

from qaportal import create_app
from qaportal.extensions import db
from tests.factories import make_user
from tests.permission_matrix import ANONYMOUS, EXPECTED, OBJECTS, ROLES

MISSING_ID = 987654


def _rules(app) -> dict:
    rules = {}
    for rule in app.url_map.iter_rules():
        rules.setdefault(rule.endpoint, rule)
    return rules


def _matrix_app():
    """Build an app only to read its url_map (at collection time)."""
    with tempfile.TemporaryDirectory() as tmp:
        return create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x",
                           "INSTANCE_PATH": tmp})


def test_every_endpoint_is_in_the_matrix():
    app = _matrix_app()
    endpoints = set(_rules(app))
    missing = sorted(endpoints - set(EXPECTED))
    assert not missing, f"add these endpoints to tests/permission_matrix.py: {missing}"
    stale = sorted(set(EXPECTED) - endpoints)
    assert not stale, f"these matrix entries name no route: {stale}"


def test_every_entry_names_every_role():
    for endpoint, entry in EXPECTED.items():
        assert set(entry) >= {ANONYMOUS, *ROLES}, endpoint
        unknown = set(entry) - {ANONYMOUS, *ROLES, "method", "params", "unrelated"}
        assert not unknown, (endpoint, unknown)


def _setup(roles_needed=ROLES):
    """Create one user per role (only that role), then every matrix object."""
    users = {role: make_user(roles=(role,)) for role in roles_needed}
    users["other_admin"] = make_user(roles=("admin",))
    objs = {}
    for name, build in OBJECTS.items():
        objs[name] = build(users)
    db.session.commit()
    return users, objs


def _request(client, app, endpoint: str, entry: dict, values: dict):
    rule = _rules(app)[endpoint]
    method = entry.get("method") or ("GET" if "GET" in rule.methods else "POST")
    with app.test_request_context():
        from flask import url_for

        url = url_for(endpoint, **values)
    if method == "GET":
        return client.get(url)
    return client.post(url, data={})


CASES = [(e, who) for e in sorted(EXPECTED) for who in (ANONYMOUS, *ROLES)]


@pytest.mark.parametrize(("endpoint", "who"), CASES, ids=[f"{e}-{w}" for e, w in CASES])
def test_route_status_per_role(app, client, auth, endpoint, who):
    entry = EXPECTED[endpoint]
    users, objs = _setup()
    values = entry["params"](objs, users) if "params" in entry else {}
    if who != ANONYMOUS:
        assert auth.login(users[who]).status_code == 302
    response = _request(client, app, endpoint, entry, values)
    assert response.status_code == entry[who], (
        f"{endpoint} as {who}: {response.status_code}, expected {entry[who]}"
    )
    if who == ANONYMOUS and entry[who] == 302:
        assert "/login" in response.headers["Location"]


UNRELATED = [e for e in sorted(EXPECTED) if "unrelated" in EXPECTED[e]]


@pytest.mark.parametrize("endpoint", UNRELATED)
def test_user_without_relation_to_the_object_gets_404(app, client, auth, endpoint):
    entry = EXPECTED[endpoint]
    users, objs = _setup()
    stranger = make_user(roles=(entry["unrelated"],))
    db.session.commit()
    assert auth.login(stranger).status_code == 302
    response = _request(client, app, endpoint, entry, entry["params"](objs, users))
    assert response.status_code == 404


def _int_param_endpoints():
    app = _matrix_app()
    result = []
    for endpoint, rule in sorted(_rules(app).items()):
        ints = [arg for arg, conv in rule._converters.items()
                if isinstance(conv, IntegerConverter)]
        if ints:
            result.extend((endpoint, who, tuple(ints)) for who in ROLES
                          if EXPECTED.get(endpoint, {}).get(who) != 403)
    return result


MISSING = _int_param_endpoints()


@pytest.mark.parametrize(("endpoint", "who", "ints"), MISSING,
                         ids=[f"{e}-{w}" for e, w, _ in MISSING])
def test_ids_that_do_not_exist_give_404(app, client, auth, endpoint, who, ints):
    entry = EXPECTED[endpoint]
    users, objs = _setup()
    values = entry["params"](objs, users) if "params" in entry else {}
    values.update(dict.fromkeys(ints, MISSING_ID))
    assert auth.login(users[who]).status_code == 302
    assert _request(client, app, endpoint, entry, values).status_code == 404
