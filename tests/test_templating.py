"""Display filters for DICOM person names and sizes."""

import pytest

from qaportal.templating import filesize, person_name


@pytest.mark.parametrize(("raw", "shown"), [
    ("DOE^JANE", "DOE, JANE"),
    ("DOE^JANE^Q^DR^JR", "DR DOE, JANE Q JR"),
    ("DOE", "DOE"),
    ("^JANE", "JANE"),
    ("Yamada^Tarou=山田^太郎", "Yamada, Tarou"),
    ("", ""),
    (None, ""),
])
def test_person_name(raw, shown):
    assert person_name(raw) == shown


@pytest.mark.parametrize(("size", "shown"), [
    (0, "0 B"), (1023, "1023 B"), (39_000, "38.1 KB"), (251 * 1024**2, "251.0 MB"),
    (3 * 1024**3, "3.0 GB"),
])
def test_filesize(size, shown):
    assert filesize(size) == shown
