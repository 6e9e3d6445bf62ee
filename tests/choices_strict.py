"""A pytest plugin: choices set on a field at run time are checked as WTForms checks those
given to its constructor.

WTForms 3.3 warns about (value, label) tuples only in `SelectField(choices=...)`; 3.4 drops
them wherever they come from. Here the `choices` setter warns too, with WTForms' message, so
that a route or a form's __init__ setting tuples fails its tests (pyproject.toml turns the
warning into an error).
"""

import warnings

import pytest
from wtforms.fields.choices import Choice, SelectField

MESSAGE = ("Passing SelectField choices as tuples is deprecated and will be removed in "
           "wtforms 3.4. Please use SelectChoice instead.")


def _has_tuples(value) -> bool:
    return isinstance(value, list | tuple) and any(
        isinstance(item, tuple) and not isinstance(item, Choice) for item in value)


@pytest.fixture(scope="session", autouse=True)
def _choices_checked_when_set():
    plain = SelectField.__dict__.get("choices")
    if not isinstance(plain, property) or plain.fset is None:
        yield  # another WTForms shape: its own constructor check is all there is
        return

    def checked(field, value):
        if _has_tuples(value):
            warnings.warn(MESSAGE, DeprecationWarning, stacklevel=2)
        plain.fset(field, value)

    SelectField.choices = plain.setter(checked)
    yield
    SelectField.choices = plain
