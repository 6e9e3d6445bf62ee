"""Synthetic series generation from a real slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom import dcmread

from qaportal.dicom import generate_ct_series, read_header


def test_twenty_slice_series(tmp_path: Path) -> None:
    paths = generate_ct_series(tmp_path, slices=20, study_uid="1.2.826.0.1.3680043.8.498.1")
    headers = [read_header(p) for p in paths]
    assert len({h.sop_uid for h in headers}) == 20
    assert {h.study_uid for h in headers} == {"1.2.826.0.1.3680043.8.498.1"}
    assert len({h.series_uid for h in headers}) == 1
    assert [h.instance_number for h in headers] == list(range(1, 21))
    z = [h.image_position[2] for h in headers]
    assert all(b > a for a, b in zip(z, z[1:], strict=False))
    assert [h.slice_location for h in headers] == z
    first, second = (dcmread(p).pixel_array for p in paths[:2])
    assert not np.array_equal(first, second)
    assert all(
        dcmread(p).file_meta.MediaStorageSOPInstanceUID == h.sop_uid
        for p, h in zip(paths, headers, strict=True)
    )
