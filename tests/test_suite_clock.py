"""The suite reads the clock when a test runs, never when a module is imported.

A run takes ~20 minutes; one that crossed midnight UTC compared dates taken at import with
dates the portal took later, and four report tests failed. This guard finds such constants.
"""

from __future__ import annotations

import ast
from pathlib import Path

CLOCK_CALLS = {"today", "now", "utcnow"}
TESTS = Path(__file__).parent


def _clock_calls_at_import(tree: ast.Module) -> list[int]:
    """Line numbers of clock calls in module-level statements (not inside def/class bodies)."""
    lines = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            # decorators run at import too (e.g. parametrize lists)
            nodes = [n for d in stmt.decorator_list for n in ast.walk(d)]
        else:
            nodes = list(ast.walk(stmt))
        for node in nodes:
            if isinstance(node, ast.Lambda):
                continue
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in CLOCK_CALLS:
                    lines.append(node.lineno)
    return lines


def test_guard_finds_a_module_level_date():
    tree = ast.parse("from datetime import date\nTODAY = date.today()\n"
                     "@pytest.mark.parametrize('d', [utcnow()])\ndef test_x(d):\n"
                     "    return date.today()\n")
    assert _clock_calls_at_import(tree) == [2, 3]


def test_no_test_module_reads_the_clock_at_import():
    offenders = []
    for path in sorted(TESTS.glob("**/*.py")):
        lines = _clock_calls_at_import(ast.parse(path.read_text(), str(path)))
        offenders += [f"{path.relative_to(TESTS)}:{n}" for n in lines]
    assert not offenders, offenders
