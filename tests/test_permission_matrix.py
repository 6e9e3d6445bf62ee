"""Every route of app.url_map, requested anonymously and by each role."""

from __future__ import annotations

import tempfile

import pytest
from werkzeug.routing import IntegerConverter

from qaportal import create_app
from qaportal.extensions import db
from tests import matrix_world
from tests.factories import make_user
from tests.permission_matrix import ANONYMOUS, EXPECTED, LOGIN, METHODS, OBJECTS, ROLES

MISSING_ID = 987654
REFUSED = (403, 404)
IGNORED_METHODS = {"HEAD", "OPTIONS"}  # answered by Flask itself from the GET/POST view


def _rules(app) -> dict:
    """Every URL rule of every endpoint: endpoint -> [rule, ...]."""
    rules: dict = {}
    for rule in app.url_map.iter_rules():
        rules.setdefault(rule.endpoint, []).append(rule)
    return rules


def _methods(rule) -> list[str]:
    return sorted(rule.methods - IGNORED_METHODS)


def _matrix_app():
    """Build an app only to read its url_map (at collection time)."""
    with tempfile.TemporaryDirectory() as tmp:
        return create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x",
                           "INSTANCE_PATH": tmp})


APP = _matrix_app()
RULES = _rules(APP)


def expected(entry: dict, rule, method: str, who: str) -> int | None:
    """The status the matrix expects, or None when the entry does not say.

    The entry's roles give the status of its "method" (GET when the rule allows it). For
    the rule's other methods, entry[METHOD] gives it per role; where it does not, a refusal
    (403/404) and the anonymous redirect to sign in hold for every method.
    """
    if who in entry.get(method, {}):
        return entry[method][who]
    primary = entry.get("method") or ("GET" if "GET" in rule.methods else "POST")
    if method == primary:
        return entry[who]
    if entry[who] in REFUSED or (who == ANONYMOUS and entry[who] == LOGIN):
        return entry[who]
    return None


def test_every_endpoint_is_in_the_matrix():
    endpoints = set(RULES)
    missing = sorted(endpoints - set(EXPECTED))
    assert not missing, f"add these endpoints to tests/permission_matrix.py: {missing}"
    stale = sorted(set(EXPECTED) - endpoints)
    assert not stale, f"these matrix entries name no route: {stale}"


def test_every_entry_names_every_role_for_every_method():
    for endpoint, entry in EXPECTED.items():
        assert set(entry) >= {ANONYMOUS, *ROLES}, endpoint
        unknown = set(entry) - {ANONYMOUS, *ROLES, "method", "params", "unrelated", *METHODS}
        assert not unknown, (endpoint, unknown)
        for method in METHODS:
            assert set(entry.get(method, {})) <= {ANONYMOUS, *ROLES}, (endpoint, method)
        for rule in RULES.get(endpoint, []):
            for method in _methods(rule):
                assert method in METHODS, (endpoint, method, "the matrix sends GET and POST")
                undeclared = [who for who in (ANONYMOUS, *ROLES)
                              if expected(entry, rule, method, who) is None]
                assert not undeclared, (
                    f"{endpoint} {method} {rule.rule}: declare {method!r}: "
                    f"{{role: status}} for {undeclared} in tests/permission_matrix.py")


def _build():
    """Create one user per role (only that role), then every matrix object."""
    users = {role: make_user(roles=(role,)) for role in ROLES}
    users["other_admin"] = make_user(roles=("admin",))
    objs = {}
    for name, build in OBJECTS.items():
        objs[name] = build(users)
    db.session.commit()
    return users, objs


def _setup():
    """The matrix world in this test's database: built once per run, then an exact copy
    (tests/matrix_world.py)."""
    return matrix_world.world(_build)


def _url(rule, values: dict) -> str:
    missing = set(rule.arguments) - set(values)
    assert not missing, f"{rule.endpoint} {rule.rule}: 'params' must give {sorted(missing)}"
    built = rule.build({k: v for k, v in values.items() if k in rule.arguments},
                       append_unknown=False)
    assert built is not None, (rule.rule, values)
    return built[1]


def _request(client, rule, method: str, values: dict):
    url = _url(rule, values)
    if method == "GET":
        return client.get(url)
    return client.post(url, data={})


def _cases():
    for endpoint in sorted(RULES):
        for index, rule in enumerate(RULES[endpoint]):
            for method in _methods(rule):
                for who in (ANONYMOUS, *ROLES):
                    yield pytest.param(endpoint, index, method, who,
                                       id=f"{endpoint}-{rule.rule}-{method}-{who}")


@pytest.mark.parametrize(("endpoint", "index", "method", "who"), list(_cases()))
def test_route_status_per_role(app, client, auth, endpoint, index, method, who):
    entry = EXPECTED[endpoint]
    rule = RULES[endpoint][index]
    want = expected(entry, rule, method, who)
    assert want is not None, f"{endpoint} {method}: the matrix does not say for {who}"
    users, objs = _setup()
    values = entry["params"](objs, users) if "params" in entry else {}
    if who != ANONYMOUS:
        assert auth.login(users[who]).status_code == 302
    response = _request(client, rule, method, values)
    assert response.status_code == want, (
        f"{endpoint} {method} {rule.rule} as {who}: {response.status_code}, expected {want}"
    )
    if who == ANONYMOUS and want == LOGIN:
        assert "/login" in response.headers["Location"]


def _unrelated_cases():
    for endpoint in sorted(e for e in RULES if "unrelated" in EXPECTED.get(e, {})):
        for index, rule in enumerate(RULES[endpoint]):
            for method in _methods(rule):
                yield pytest.param(endpoint, index, method, id=f"{endpoint}-{rule.rule}-{method}")


def _upload_every_study_uid(user, folder) -> dict[int, int]:
    """Upload, as user, a file carrying each stored study's Study, Series and SOP Instance
    UIDs (knowing a UID must give nothing); return every study's instance count before."""
    import pydicom
    import sqlalchemy as sa

    from qaportal.models import Study
    from qaportal.studies import jobs
    from tests.studyfiles import modified_copy

    studies = db.session.scalars(sa.select(Study).order_by(Study.id)).all()
    counts = {s.id: s.instance_count for s in studies}
    paths = []
    for s in studies:
        series = s.series[0] if s.series else None
        sop = (series.instances[0].sop_uid if series is not None and series.instances
               else pydicom.uid.generate_uid())
        paths.append(modified_copy(
            "CT_small.dcm", folder / f"{s.id}.dcm", StudyInstanceUID=s.study_uid,
            SeriesInstanceUID=series.series_uid if series is not None else s.study_uid + ".1",
            SOPInstanceUID=sop))
    jobs.import_files(paths, user.id, jobs.new_batch(user, "cli").id)
    return counts


@pytest.mark.parametrize(("endpoint", "index", "method"), list(_unrelated_cases()))
def test_user_without_relation_to_the_object_gets_404(app, client, auth, endpoint, index,
                                                      method, tmp_path):
    import sqlalchemy as sa

    from qaportal.models import Study, StudyAccess

    entry = EXPECTED[endpoint]
    users, objs = _setup()
    stranger = make_user(roles=(entry["unrelated"],))
    db.session.commit()
    counts = _upload_every_study_uid(stranger, tmp_path)
    db.session.expire_all()
    assert {s.id: s.instance_count for s in db.session.scalars(
        sa.select(Study).where(Study.id.in_(counts)))} == counts
    assert db.session.scalars(sa.select(StudyAccess).where(
        StudyAccess.user_id == stranger.id)).all() == []
    assert auth.login(stranger).status_code == 302
    rule = RULES[endpoint][index]
    response = _request(client, rule, method, entry["params"](objs, users))
    assert response.status_code == 404


def _int_param_cases():
    for endpoint in sorted(RULES):
        entry = EXPECTED.get(endpoint)
        for index, rule in enumerate(RULES[endpoint]):
            ints = tuple(arg for arg, conv in rule._converters.items()
                         if isinstance(conv, IntegerConverter))
            if not ints:
                continue
            for method in _methods(rule):
                for who in ROLES:
                    if entry is None or expected(entry, rule, method, who) != 403:
                        yield pytest.param(endpoint, index, method, who, ints,
                                           id=f"{endpoint}-{rule.rule}-{method}-{who}")


@pytest.mark.parametrize(("endpoint", "index", "method", "who", "ints"),
                         list(_int_param_cases()))
def test_ids_that_do_not_exist_give_404(app, client, auth, endpoint, index, method, who, ints):
    entry = EXPECTED[endpoint]
    users, objs = _setup()
    values = entry["params"](objs, users) if "params" in entry else {}
    values.update(dict.fromkeys(ints, MISSING_ID))
    assert auth.login(users[who]).status_code == 302
    assert _request(client, RULES[endpoint][index], method, values).status_code == 404
