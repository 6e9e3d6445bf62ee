"""Compile each URL rule's builder once per test run, not once per test's app.

Every test makes its own app (conftest.make_test_app), and most of create_app's time went
to Werkzeug compiling, for each of the ~140 rules, two URL-builder functions from a
generated Python AST (Rule._compile_builder: ast.walk + compile), ~0.1-0.2 s per app on
this machine, over 2,300 tests and two database passes.

The function Werkzeug generates holds no state of its own: it reads the rule's converters
through its first argument (it is bound to the rule) and its globals are empty. So it
depends only on what _compile_builder reads: the rule's text (the function's name), its
parsed trace, the names of its defaults, and append_unknown. This caches it under exactly
that key. A rule with a default for one of its own variables is not cached: the builder
then holds that default already converted by the rule's converter (Werkzeug's
"silly case"), which depends on the map.

tests/test_route_builders.py checks that the cached builders are the ones Werkzeug makes
(same code, same URLs) for every rule of the app, so a Werkzeug upgrade that changes what
the builder reads fails there instead of silently building wrong URLs.
"""

from __future__ import annotations

from werkzeug.routing.rules import Rule

_original = Rule._compile_builder
_cache: dict[tuple, object] = {}


def _key(rule: Rule, append_unknown: bool) -> tuple | None:
    defaults = rule.defaults or {}
    if any(is_dynamic and data in defaults for is_dynamic, data in rule._trace):
        return None
    return (rule.rule, tuple(rule._trace), tuple(str(k) for k in defaults), append_unknown)


def _compile_builder(self: Rule, append_unknown: bool = True):
    key = _key(self, append_unknown)
    if key is None:
        return _original(self, append_unknown)
    builder = _cache.get(key)
    if builder is None:
        builder = _cache[key] = _original(self, append_unknown)
    return builder


def install() -> None:
    Rule._compile_builder = _compile_builder


def original_builder(rule: Rule, append_unknown: bool):
    """What Werkzeug itself compiles for rule, without the cache."""
    return _original(rule, append_unknown)
