"""Real DICOM files for tests: pydicom's samples, generated series, and broken copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file


def sample(name: str) -> Path:
    """Return the path of a pydicom (or pydicom-data) test file."""
    path = get_testdata_file(name)
    assert path, f"{name} is not available"
    return Path(path)


def copy_sample(name: str, dest_dir: Path, new_name: str | None = None) -> Path:
    """Copy a test file into dest_dir."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / (new_name or name)
    shutil.copyfile(sample(name), target)
    return target


def modified_copy(name: str, dest: Path, **changes) -> Path:
    """Write a copy of a test file with some header elements changed (keywords)."""
    ds = pydicom.dcmread(sample(name))
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest)
    return dest


def truncated_copy(name: str, dest: Path) -> Path:
    """Write the first half of a test file."""
    data = sample(name).read_bytes()
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data[: len(data) // 2])
    return dest
