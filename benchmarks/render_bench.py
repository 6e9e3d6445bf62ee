"""Print header-parse rate and median render times for 512² CT (uncompressed and JPEG 2000)."""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from pydicom.data import get_testdata_file

from qaportal.dicom import generate_ct_series, read_header, render_frame


def _median_ms(fn: Callable[[], object], runs: int = 30) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        paths = generate_ct_series(Path(tmp), slices=500)
        print(f"generate 500 slices: {time.perf_counter() - start:.2f} s")
        start = time.perf_counter()
        for path in paths:
            read_header(path)
        print(f"read_header: {len(paths) / (time.perf_counter() - start):.0f} instances/s")
    for name in ("693_UNCR.dcm", "693_J2KI.dcm", "CT_small.dcm"):
        path = get_testdata_file(name)
        if path:
            print(f"render {name}: {_median_ms(lambda p=path: render_frame(p)):.1f} ms median")


if __name__ == "__main__":
    main()
