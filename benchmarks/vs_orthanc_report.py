"""The table benchmarks/vs_orthanc.py prints (each pair, the ratio, the targets) and its
per-request profile summary."""

from __future__ import annotations

from pathlib import Path

ROWS = [  # key, label, unit, higher is better, target (portal / Orthanc), target text
    ("stow_1", "STOW-RS, 1 client", "inst/s", True, 2.0, ">= 2x Orthanc"),
    ("stow_1_cpu_ms", "  (server CPU)", "ms/inst", False, None, ""),
    ("stow_4", "STOW-RS, 4 clients", "inst/s", True, 2.0, ">= 2x Orthanc"),
    ("stow_4_cpu_ms", "  (server CPU)", "ms/inst", False, None, ""),
    ("retrieve_s", "WADO-RS whole study", "s", False, 1.2, "within 1.2x Orthanc"),
    ("retrieve_mb_s", "  (throughput)", "MB/s", True, None, ""),
    ("metadata_ms", "series metadata", "ms", False, 1.0, "faster than Orthanc"),
    ("frame_ms", "one frame", "ms", False, None, ""),
    ("rendered_ms", "one rendered frame", "ms", False, None, ""),
    ("qido_page_ms", "QIDO 1,000 studies: page of 100", "ms", False, 1.0, "faster than Orthanc"),
    ("qido_date_ms", "QIDO 1,000 studies: StudyDate range", "ms", False, 1.0,
     "faster than Orthanc"),
]


def report(portal_fig: dict, orthanc_fig: dict | None) -> None:
    print(f"\n{'':34} {'portal':>10} {'Orthanc':>10} {'ratio':>7}  target")
    missed = []
    for key, label, unit, higher, target, text in ROWS:
        p = portal_fig.get(key)
        o = (orthanc_fig or {}).get(key)
        ps, os_ = (f"{v:10.3g}" if v is not None else f"{'n/a':>10}" for v in (p, o))
        ratio = ""
        verdict = ""
        if p and o:
            r = p / o
            ratio = f"{r:6.2f}x"
            if target is not None:
                ok = r >= target if higher else (r <= target if target > 1 else r < target)
                verdict = "met" if ok else "MISSED"
                if not ok:
                    missed.append(label.strip())
        print(f"{label:34} {ps} {os_} {ratio:>7}  {unit}; {text} {verdict}".rstrip())
    print("ratio = portal / Orthanc (for times, lower is faster)")
    if orthanc_fig and portal_fig:
        print("targets met" if not missed else "targets missed: " + "; ".join(missed))


def summarise_profiles(folder: Path, top: int = 25) -> None:
    """Print, per kind of request, where the portal's time went (cumulative)."""
    import pstats
    import re

    kinds: dict[str, list[Path]] = {}
    for f in folder.glob("*.prof"):
        # ProfilerMiddleware names files METHOD.path.with.dots.<ms>ms.<time>.prof
        kind = re.sub(r"\.[0-9]+ms\.[0-9]+\.prof$", "", f.name)
        kind = re.sub(r"\.[0-9]+(\.[0-9]+)+", ".UID", kind)
        kinds.setdefault(kind, []).append(f)
    for kind, files in sorted(kinds.items()):
        print(f"\n== {kind}: {len(files)} requests")
        stats = pstats.Stats(*map(str, files))
        stats.sort_stats("cumulative").print_stats(top)
