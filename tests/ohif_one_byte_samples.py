"""JavaScript function bodies with non-ASCII text, for qaportal/ohif/one_byte.py's tests.

ESCAPED bodies are rewritten to ASCII; each returns a value that a real engine must compute
the same from the original and the rewritten text (tests/e2e/test_ohif_one_byte_e2e.py).
REFUSED bodies hold a character an escape would not render exactly: they stay as published.
"""

from __future__ import annotations

ESCAPED = {
    "strings": r"""return ['Açıklama', "Ωμέγα — ok", 'emoji 😀 and 𝒜', "quote \" é", 'it\'s ü'];""",
    "escape before a non-ASCII character": r"""return ['\é', "\Ω", '\\é', "\\\Ω"];""",
    "json in a string": r"""return JSON.parse('{"Studies":"Études","Delete":"Sil","Ж":"жук"}');""",
    "regular expressions": r"""
        const re = /[éΩ/]+/g, un = /😀|𝒜/u, cls = /[^😀]/u, id = /\é/;
        const words = 'aΩé/b'.match(re), test = [un.test('x😀'), cls.test('😀'), id.test('é')];
        return {words, test, flags: [re.flags, un.flags], n: /Ω{2}/.test('ΩΩ')};""",
    "regular expression after a keyword": r"""
        function f(s) { return /Ж+/.exec(s)[0]; }
        return typeof /ж/ === 'object' && f('aЖЖb');""",
    "division is not a regular expression": r"""
        const a = 12, g = [6], h = (3); const s = 'é/Ω';
        return [a / 2 / 3, g[0] / 2 / 1, h / 3, s.split('/'), a /2/ 1];""",
    "comments": r"""
        // Ωμέγα: a line comment — with a dash
        /* Ж * / é — a block
           comment */ return 'ok' /* ü */; // 😀""",
    "untagged templates": r"""
        const n = 3, who = 'Ω';
        const nested = `outer ${`inner ${who}é`} — ${n > 2 ? `мн ${n}` : 'x'}`;
        return [`${n} ΩΩ`, `line
é`, nested, `\é`, `{${ {a: 'ж'}.a }}`];""",
    "template after return and in an object": r"""
        function f(x) { return `في خلال ${x}`; }
        const o = { k: `منذ ${1}`, l: [`Ж`] };
        return [f('a'), o.k, o.l[0]];""",
    "braces and strings in substitutions": r"""
        const obj = {a: {b: 'é}'}};
        return `x${ obj.a.b + '}' + "{" }y ${ (() => { return 'Ω'; })() } z`;""",
    "numbers": r"""return [1.5e-3 / 2, .5 / 1, 0x1F / 1, 10 / 2 / 'é'.length];""",
    "line continuation": "return 'a\\\r\nb — c';",
}

REFUSED = {
    "tagged template": r"""return String.raw`Ω${1}`;""",
    "tagged template, escaped character": "return tag`\\Ω`;",
    "member tag": r"""return obj.tag`é`;""",
    "identifier": r"""const café = 1; return café;""",
    "line separator in a comment": "// a\u2028 return 1;",
    "unterminated string": r"""return 'é;""",
    "unbalanced brace": r"""return 'é'; }""",
    "unclosed brace": r"""{ return 'é';""",
    "separator as a line continuation": "return 'a\\\u2028b — c';",
}
