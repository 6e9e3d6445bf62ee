"""Server CPU per WADO-RS whole-study retrieve: Orthanc against the portal (gunicorn).

Wall-clock times move by tens of percent when other work shares the machine; the CPU the
server processes spend (user + system, from /proc) moves much less. Both servers get the
same 500-slice CT (as benchmarks/vs_orthanc.py builds it) by STOW-RS, then `--repeat`
retrieves of the whole study by one client; prints the server CPU and wall time of each,
with the medians of the first three (the portal: mostly a worker's first read) and of all.

    python benchmarks/retrieve_cpu.py [--workers 3] [--slices 500] [--repeat 12]

Linux only (/proc).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import vs_orthanc as bench

from tests.orthanc import Orthanc, unavailable

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes so far (ones that ended count nothing)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def portal_pids() -> list[int]:
    """The gunicorn processes this checkout's benchmark started (master and workers)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                ours = b"bench_wsgi:app" in fh.read()
            if ours and os.readlink(f"/proc/{name}/cwd") == str(bench.REPO):
                found.append(int(name))
        except OSError:
            continue
    return found


def measure(server: bench.Server, pids: Callable[[], list[int]], study: bench.Study,
            repeat: int) -> tuple[list[float], list[float]]:
    """STOW the study, wait until its files are settled, then time `repeat` retrieves."""
    bench.stow(server, bench.batches(study.blobs), 1)
    time.sleep(3)
    session = server.session()
    url = f"{server.root}/studies/{study.uid}"
    cpus, walls = [], []
    for _ in range(repeat):
        procs = pids()
        before, start = cpu_seconds(procs), time.perf_counter()
        size = bench.fetch(session, url, bench.DICOM_PARTS)
        walls.append(time.perf_counter() - start)
        cpus.append(cpu_seconds(procs) - before)
        if size < sum(map(len, study.blobs)):
            raise RuntimeError(f"retrieved {size} bytes, less than was stored")
    session.close()
    return cpus, walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=500)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=12)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    results = {}
    with tempfile.TemporaryDirectory(prefix="qaportal-retrieve-cpu-") as tmp:
        root = Path(tmp)
        study = bench.ct_study(root, "a", args.slices)
        reason = unavailable()
        if reason:
            print(f"Orthanc not measured: {reason}")
        else:
            with Orthanc(folder=root / "orthanc") as orthanc:
                server = bench.Server("Orthanc", orthanc.url + "/dicom-web")
                results["Orthanc"] = measure(server, lambda: [orthanc.proc.pid], study,
                                             args.repeat)
        with bench.portal(root, args.workers) as server:
            results["portal"] = measure(server, portal_pids, study, args.repeat)
    for name, (cpus, walls) in results.items():
        print(f"{name:8s} server CPU (s): first 3 median {statistics.median(cpus[:3]):.3f}, "
              f"all {statistics.median(cpus):.3f}; wall (s): first 3 median "
              f"{statistics.median(walls[:3]):.3f}, all {statistics.median(walls):.3f}")
        print("         CPU each:", " ".join(f"{x:.2f}" for x in cpus))


if __name__ == "__main__":
    sys.exit(main())
