"""Checks for short single-line text: names, titles, credentials.

A line break, tab, NUL or an invisible Unicode control (bidi overrides, zero-width
characters) in a name breaks e-mail headers, CSV and PDF exports, and can make one name
look like another. Such fields refuse them with a clear message instead of storing them.
"""

from __future__ import annotations

import unicodedata

from wtforms.validators import ValidationError

PLAIN_TEXT_MESSAGE = ("Use letters, digits, spaces and punctuation only: no line breaks, tabs "
                      "or invisible control characters.")


def control_characters(text: str) -> list[str]:
    """Return the control characters (Unicode Cc and Cf) in text, as U+XXXX codes."""
    return sorted({f"U+{ord(c):04X}" for c in text
                   if unicodedata.category(c) in ("Cc", "Cf")})


def plain_text_problem(text: str | None) -> str | None:
    """Return why text is not plain single-line text, or None."""
    found = control_characters(text or "")
    if not found:
        return None
    return f"{PLAIN_TEXT_MESSAGE} Found: {', '.join(found[:5])}."


class PlainText:
    """WTForms validator: refuse control characters (CR/LF, tab, bidi controls...)."""

    field_flags = {}

    def __call__(self, form, field) -> None:
        problem = plain_text_problem(field.data if isinstance(field.data, str) else None)
        if problem:
            raise ValidationError(problem)
