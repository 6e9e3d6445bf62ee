"""The run-wide cache of Werkzeug's URL builders (tests/route_builders.py) changes nothing."""

from __future__ import annotations

from flask import url_for

from qaportal.extensions import db
from tests import route_builders
from tests.conftest import make_test_app


def _code(func):
    c = func.__code__
    return (c.co_name, c.co_code, c.co_consts, c.co_names, c.co_varnames, c.co_argcount,
            func.__defaults__, func.__globals__.keys() - {"__builtins__"})


def test_every_rule_builds_with_the_code_werkzeug_compiles(app):
    rules = list(app.url_map.iter_rules())
    assert len(rules) > 100
    for rule in rules:
        for append_unknown, bound in ((False, rule._build), (True, rule._build_unknown)):
            assert bound.__self__ is rule
            fresh = route_builders.original_builder(rule, append_unknown)
            assert _code(bound.__func__) == _code(fresh), rule.rule


def test_a_second_app_reuses_the_builders_and_builds_the_same_urls(app, tmp_path, db_url):
    other = make_test_app(tmp_path / "other", db_url)
    mine = {r.endpoint: r for r in app.url_map.iter_rules()}
    theirs = {r.endpoint: r for r in other.url_map.iter_rules()}
    assert mine.keys() == theirs.keys()
    shared = [e for e in mine if mine[e]._build.__func__ is theirs[e]._build.__func__]
    assert len(shared) > 100
    with app.test_request_context():
        a = url_for("static", filename="x y.css", page=2)
    with other.test_request_context():
        b = url_for("static", filename="x y.css", page=2)
    assert a == b == "/static/x%20y.css?page=2"
    with other.app_context():
        db.engine.dispose()
