"""The standard's own Table E.1-1 (PS3.15 2024b) as data, and how a row becomes one action.

`qaportal/data/annex-e-ps3.15-2024b.txt` holds every row with a fixed tag: tag, keyword,
Basic Profile action and the option columns. annex_e.py keeps its hand-chosen rows and
takes every other row from here, so no attribute the standard lists goes unhandled.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

EDITION = "2024b"
DATA_FILE = f"annex-e-ps3.15-{EDITION}.txt"
# Option letters of the data file that this implementation supports, with the action the
# standard gives under the option: only then does the option retain the attribute.
SUPPORTED_OPTIONS = {"P": ("K", "patient"), "E": ("K", "device"), "T": ("C", "temporal")}


@dataclass(frozen=True, slots=True)
class StandardRow:
    """One row of Table E.1-1 as the standard prints it."""

    tag: int
    keyword: str
    basic: str  # e.g. "X", "Z/D", "X/Z/U*"
    options: dict[str, str]

    @property
    def allowed(self) -> set[str]:
        """Return the single actions the Basic Profile allows for this attribute."""
        return {a.rstrip("*") for a in self.basic.split("/")}

    def chosen_action(self) -> str:
        """Pick one action where the standard offers a choice (see annex_e's docstring)."""
        if self.basic == "X/Z/U*":
            return "K"  # a reference sequence: kept and walked, its UIDs replaced
        if "/" in self.basic:
            return "X" if "X" in self.allowed else "Z"
        return self.basic

    def chosen_option(self) -> str | None:
        """Return the supported option that retains this attribute, if any."""
        for letter, (action, name) in SUPPORTED_OPTIONS.items():
            if self.options.get(letter) == action:
                return name
        return None


def load_rows() -> list[StandardRow]:
    """Read the standard's rows from the package data."""
    text = resources.files("qaportal.data").joinpath(DATA_FILE).read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        tag, keyword, basic, *rest = line.split("\t")
        options = dict(o.split("=", 1) for o in " ".join(rest).split())
        rows.append(StandardRow(int(tag.strip("()").replace(",", ""), 16), keyword, basic,
                                options))
    return rows
