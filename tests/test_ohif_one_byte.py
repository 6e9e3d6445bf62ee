"""OHIF's scripts written as ASCII at unpacking (qaportal/ohif/one_byte.py, fetch.to_one_byte).

What the rewritten text computes is compared with the original's in Chromium by
tests/e2e/test_ohif_one_byte_e2e.py; here, what is rewritten, what is refused, and that the
unpacking applies it and says what it kept.
"""

from __future__ import annotations

import re

import pytest

from qaportal.ohif import fetch, one_byte
from tests.ohif_one_byte_samples import ESCAPED, REFUSED
from tests.test_ohif import _package


@pytest.mark.parametrize("name", sorted(ESCAPED))
def test_samples_become_ascii_and_nothing_else_changes(name):
    src = ESCAPED[name]
    assert "\\u" not in src  # so that every escape in the output is one the scan wrote
    out = one_byte.escape(src)
    assert out is not None, one_byte.why_refused(src)
    assert out.isascii() and out != src
    assert one_byte.escape(out) == out  # a second pass finds nothing to do
    # Undo the escapes: the original comes back, but for "\X" (X non-ASCII), which means X.
    assert _unescaped(out) == re.sub(r"(?<!\\)((?:\\\\)*)\\([^\x00-\x7f])", r"\1\2", src)


def _unescaped(text: str) -> str:
    """text with each \\uXXXX replaced by its UTF-16 unit, surrogate pairs joined."""
    units = re.sub(r"\\u([0-9a-f]{4})", lambda m: chr(int(m[1], 16)), text)
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def test_characters_become_exact_escapes():
    assert one_byte.escape("x = 'é';") == "x = '\\u00e9';"
    assert one_byte.escape("x = 'Ж😀';") == "x = '\\u0416\\ud83d\\ude00';"
    # "\é" is é: the backslash goes with it, it does not escape the escape.
    assert one_byte.escape("x = '\\é';") == "x = '\\u00e9';"
    assert one_byte.escape("x = '\\\\é';") == "x = '\\\\\\u00e9';"
    assert one_byte.escape("y = /[é/]/;") == "y = /[\\u00e9/]/;"
    assert one_byte.escape("z = `a ${b} Ω`;") == "z = `a ${b} \\u03a9`;"
    assert one_byte.escape("// Ω\r\nw = 1;") == "// \\u03a9\r\nw = 1;"  # CRLF kept


def test_ascii_text_is_returned_as_is():
    src = "const a = `x ${y}`; // plain"
    assert one_byte.escape(src) is src
    assert one_byte.why_refused(src) is None


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_samples_say_why(name):
    src = REFUSED[name]
    assert one_byte.escape(src) is None
    assert one_byte.why_refused(src)


def test_division_and_regular_expressions_are_told_apart():
    # Were "/ 2 /" taken for a regular expression, the string after it would be skipped
    # and its character left unescaped.
    assert one_byte.escape("a = b / 2 / 'é';") == "a = b / 2 / '\\u00e9';"
    assert one_byte.escape("a = (b) / 2 / 'é';") == "a = (b) / 2 / '\\u00e9';"
    # Were "/'/" taken for a division, the quote would open a string that never ends.
    assert one_byte.escape("return /'/.test(s) + 'é';") == "return /'/.test(s) + '\\u00e9';"


def test_unpacking_writes_scripts_as_ascii_and_keeps_what_it_refuses(tmp_path, capsys):
    plain = b"var a = 1 / 2; // ASCII only\r\n"
    tarball = _package(tmp_path, **{
        "package/dist/1.bundle.x.js": "t = {de: 'Übersicht', ar: `منذ ${n}`};\r\n".encode(),
        "package/dist/2.bundle.y.js": "s = String.raw`Ω`;".encode(),
        "package/dist/3.bundle.z.js": plain,
        "package/dist/4.bundle.w.js": b"s = '\xe9';",  # Latin-1 bytes: not UTF-8
    })
    dest = tmp_path / "ohif"
    fetch.unpack(tarball, dest, fetch.integrity_of(tarball))
    dist = dest / "dist"
    one = (dist / "1.bundle.x.js").read_bytes()
    assert one == (b"t = {de: '\\u00dcbersicht', ar: `\\u0645\\u0646\\u0630 ${n}`};\r\n")
    assert (dist / "2.bundle.y.js").read_bytes() == "s = String.raw`Ω`;".encode()
    assert (dist / "3.bundle.z.js").read_bytes() == plain  # nothing to do, not rewritten
    assert not list(dist.glob("*.tmp"))
    err = capsys.readouterr().err
    assert "2.bundle.y.js kept as published" in err and "tagged template" in err
    assert (dist / "4.bundle.w.js").read_bytes() == b"s = '\xe9';"
    assert "4.bundle.w.js kept as published (not one-byte: not UTF-8" in err
    assert "1.bundle.x.js" not in err


def test_the_fetched_build_is_ascii_throughout():
    dist = fetch.DEFAULT_DEST / "dist"
    if not fetch.is_current(fetch.DEFAULT_DEST):
        pytest.skip("the OHIF build is not fetched here (make ohif: needs the npm registry)")
    scripts = sorted(dist.glob("*.js"))
    assert len(scripts) > 40
    not_ascii = [p.name for p in scripts if not p.read_bytes().isascii()]
    assert not_ascii == []
