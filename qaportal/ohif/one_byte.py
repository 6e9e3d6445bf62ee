"""OHIF's scripts rewritten so that the browser keeps them as one-byte text.

A JavaScript engine holds a script's source as one byte per character when every character
is Latin-1, and as two bytes per character as soon as one is not. OHIF's app bundle (17 MB)
carries its translations (Arabic, Chinese, Russian...) and date-fns' locales as literal
text, so Chromium decodes it, scans it and keeps it as 34 MB of two-byte text on every
open, even when the compiled code comes from its cache (docs/viewer-ohif.md, "One-byte
scripts").

`escape` writes each non-ASCII character as a `\\uXXXX` escape (two, a surrogate pair, above
U+FFFF) where that escape means exactly the character: inside string literals, regular
expression literals, comments, and untagged template literals (whose raw text nothing can
read). It refuses (returns None, and the file is served as published) when such a
character stands anywhere an escape would not mean the same: in a tagged template (the tag
function sees the raw text), in code outside a literal (an identifier), or as a line or
paragraph separator outside a string (it ends a comment); and when its scan does not end
cleanly (an unterminated literal or comment, an unbalanced brace: the scan lost track, so
nothing it found can be trusted). Standard library only: unpacking runs before the portal's
virtualenv exists (qaportal/ohif/fetch.py).
"""

from __future__ import annotations

# After one of these words a "/" starts a regular expression, not a division.
_REGEX_AFTER_WORDS = frozenset((
    "return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case",
    "do", "else", "yield", "await"))
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")
_SEPARATORS = ("\u2028", "\u2029")
# Characters above this are written as escapes: all non-ASCII, so that the browser's UTF-8
# decoding is its ASCII fast path too.
LIMIT = 0x7F


class Refused(Exception):
    """The file holds a non-ASCII character that an escape would not render exactly."""


def _escaped(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


class _Scan:
    """One pass over the source; out collects the rewritten text."""

    def __init__(self, src: str):
        self.src, self.i, self.n = src, 0, len(src)
        self.out: list[str] = []
        self.last = ""  # the last significant token's kind: "word:<w>", "num", or a punctuator
        self.braces: list[str] = []  # per open "{": "code", or "tagged"/"untagged" (a ${)

    def fail(self, why: str) -> None:
        raise Refused(f"{why} at offset {self.i}")

    # A span of literal or comment text up to (not including) position end, escaped.
    def emit_escaped(self, start: int, end: int) -> None:
        chunk = self.src[start:end]
        if all(ord(c) <= LIMIT for c in chunk):
            self.out.append(chunk)
            return
        self.out.append("".join(_escaped(c) if ord(c) > LIMIT else c for c in chunk))

    def run(self) -> str:
        src = self.src
        while self.i < self.n:
            c = src[self.i]
            if c in "\"'":
                self.string(c)
            elif c == "`":
                self.template()
            elif c == "/" and src.startswith("//", self.i):
                self.line_comment()
            elif c == "/" and src.startswith("/*", self.i):
                self.block_comment()
            elif c == "/":
                if self.regex_allowed():
                    self.regex()
                else:
                    self.punct(c)
            elif c in _WORD_CHARS:
                self.word()
            elif ord(c) > LIMIT:
                self.fail(f"U+{ord(c):04X} outside a literal")
            elif c in " \t\r\n\f\v":
                self.out.append(c)
                self.i += 1
            elif c == "{":
                self.braces.append("code")
                self.punct(c)
            elif c == "}":
                if not self.braces:
                    self.fail("unbalanced }")
                kind = self.braces.pop()
                if kind != "code":  # the end of a template's ${...}
                    self.out.append(c)
                    self.i += 1
                    self.template_rest(kind == "tagged")
                else:
                    self.punct(c)
            else:
                self.punct(c)
        if self.braces:
            self.fail("unclosed {")
        return "".join(self.out)

    def punct(self, c: str) -> None:
        self.out.append(c)
        self.i += 1
        self.last = c

    def word(self) -> None:
        start = self.i
        while self.i < self.n and self.src[self.i] in _WORD_CHARS:
            self.i += 1
        w = self.src[start:self.i]
        self.out.append(w)
        self.last = "num" if w[0].isdigit() else f"word:{w}"
        if w[0].isdigit() and self.i < self.n and self.src[self.i] == ".":
            # 1.5, 1.e3: the rest of a number (a "." then digits) stays a number
            j = self.i + 1
            while j < self.n and (self.src[j] in _WORD_CHARS or self.src[j] in "+-"
                                  and self.src[j - 1] in "eE"):
                j += 1
            self.out.append(self.src[self.i:j])
            self.i = j

    def regex_allowed(self) -> bool:
        last = self.last
        if last.startswith("word:"):
            return last[5:] in _REGEX_AFTER_WORDS
        return last not in ("num", ")", "]")  # after "}" a statement, so a literal, starts

    def string(self, quote: str) -> None:
        src, start = self.src, self.i
        self.i += 1
        while True:
            if self.i >= self.n:
                self.fail("unterminated string")
            c = src[self.i]
            if c == quote:
                break
            if c == "\\":
                nxt = src[self.i + 1:self.i + 2]
                if nxt in _SEPARATORS:
                    self.fail("line continuation by a separator")
                if nxt == "\r" and src.startswith("\n", self.i + 2):  # continuation, CRLF
                    self.i += 3
                    continue
                start = self.backslash(start)
                continue
            if c in "\r\n":
                self.fail("newline in a string")
            self.i += 1
        self.i += 1
        self.emit_escaped(start, self.i)
        self.last = "num"  # a value: "/" after it divides

    def backslash(self, start: int) -> int:
        """At a backslash in a literal's text (written from start on): step over the escape
        and return where the text still to write starts. "\\X", X non-ASCII, means X in a
        string, a regular expression (an identity escape) and a template's cooked value:
        the pair is written as X's escape alone."""
        nxt = self.src[self.i + 1:self.i + 2]
        if nxt and ord(nxt) > LIMIT:
            self.emit_escaped(start, self.i)
            self.out.append(_escaped(nxt))
            self.i += 2
            return self.i
        self.i += 2
        return start

    def regex(self) -> None:
        src, start, in_class = self.src, self.i, False
        self.i += 1
        while True:
            if self.i >= self.n or src[self.i] in "\r\n" or src[self.i] in _SEPARATORS:
                self.fail("unterminated regular expression")
            c = src[self.i]
            if c == "\\":
                start = self.backslash(start)
                continue
            if c == "[":
                in_class = True
            elif c == "]":
                in_class = False
            elif c == "/" and not in_class:
                break
            self.i += 1
        self.i += 1
        while self.i < self.n and self.src[self.i] in _WORD_CHARS:  # flags
            self.i += 1
        self.emit_escaped(start, self.i)
        self.last = "num"

    def line_comment(self) -> None:
        start = self.i
        while self.i < self.n and self.src[self.i] not in "\r\n":
            if self.src[self.i] in _SEPARATORS:
                self.fail("a separator ends a comment")
            self.i += 1
        self.emit_escaped(start, self.i)

    def block_comment(self) -> None:
        end = self.src.find("*/", self.i + 2)
        if end < 0:
            self.fail("unterminated comment")
        end += 2
        if any(s in self.src[self.i:end] for s in _SEPARATORS):
            self.fail("a separator in a comment")
        self.emit_escaped(self.i, end)
        self.i = end

    def template(self) -> None:
        # Untagged (after an operator or a keyword such as return), only the cooked value is
        # ever seen, and an escape cooks to the same characters. Tagged, the tag function
        # also sees the raw text: refused. After "}" it cannot be told apart: refused.
        tagged = not self.regex_allowed() or self.last == "}"
        self.out.append("`")
        self.i += 1
        self.template_rest(tagged)

    def template_rest(self, tagged: bool) -> None:
        """From inside a template's text to its closing backquote or its next ${."""
        src, start = self.src, self.i
        while True:
            if self.i >= self.n:
                self.fail("unterminated template")
            c = src[self.i]
            if c == "\\":
                if tagged and ord(src[self.i + 1:self.i + 2] or "a") > LIMIT:
                    self.fail("a non-ASCII character in a tagged template")
                start = self.backslash(start)
                continue
            if ord(c) > LIMIT and tagged:
                self.fail(f"U+{ord(c):04X} in a tagged template")
            if c == "`":
                self.i += 1
                self.emit_escaped(start, self.i)
                self.last = "num"
                return
            if c == "$" and src.startswith("${", self.i):
                self.i += 2
                self.emit_escaped(start, self.i)
                self.braces.append("tagged" if tagged else "untagged")
                self.last = "{"
                return
            self.i += 1


def rewrite(source: str) -> tuple[str | None, str | None]:
    """(source with every non-ASCII character escaped, None), or (None, why) when that
    would change what it means (see the module's text). ASCII text is returned as is."""
    if all(ord(c) <= LIMIT for c in source):
        return source, None
    try:
        return _Scan(source).run(), None
    except Refused as exc:
        return None, str(exc)


def escape(source: str) -> str | None:
    """rewrite's text: the escaped source, or None when it is refused."""
    return rewrite(source)[0]


def why_refused(source: str) -> str | None:
    """rewrite's reason: why the source is refused, or None when it is not."""
    return rewrite(source)[1]
