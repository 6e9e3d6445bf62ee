"""The options of select, radio and checkbox-list fields, as WTForms SelectChoice objects.

WTForms 3.3 deprecates (value, label) tuples as `choices` and 3.4 drops them. A SelectChoice
iterates to four values, not two: code reading a field's choices uses `.value` and `.label`.
"""

from collections.abc import Iterable

from wtforms.fields.choices import SelectChoice


def choices(pairs: Iterable[tuple[object, str]]) -> list[SelectChoice]:
    """Return one SelectChoice per (value, label) pair, in order; values keep their type."""
    return [SelectChoice(value, label) for value, label in pairs]
