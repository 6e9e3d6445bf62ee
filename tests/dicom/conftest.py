"""Fixtures for the DICOM library tests: real files from pydicom and pydicom-data."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file


def _find(name: str) -> Path:
    """Return a pydicom test file; fail loudly when it is missing (pydicom-data is a test
    dependency, so a missing file means a broken install, not an optional feature)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = get_testdata_file(name)
    if path is None:
        pytest.fail(f"{name} not available: install the test extras (pydicom-data)")
    return Path(str(path))


@pytest.fixture
def dicom_file() -> Callable[[str], Path]:
    """Look up a real test file by name."""
    return _find


@pytest.fixture
def ct_small() -> Path:
    return _find("CT_small.dcm")
