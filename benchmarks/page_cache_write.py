"""CPU of writing received 512 KB files: through the page cache against O_DIRECT.

Writes `--files` files of 526,038 bytes (a generated 512² CT slice's size) into a temporary
folder on the image store's filesystem (the instance folder by default), in the pieces the
multipart reader hands over, once as plain writes and once through
`qaportal.dicom.direct_write.DirectWriter`, alternating `--rounds` times, and prints the
writing process's CPU and wall time per file for each. Each file is then read back as the
header parse does (its first 16 KB). The files are kept until the end, as a store keeps
them, so every plain write takes fresh page-cache pages. Run from the repository root:
`python benchmarks/page_cache_write.py [--files 3000] [--rounds 2] [--folder DIR]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qaportal.dicom.direct_write import DirectWriter  # noqa: E402

SIZE = 526_038
PIECES = (300_000, SIZE - 300_000)  # a part split across two reads of the body


def write_files(folder: Path, count: int, direct: bool, source: memoryview) -> tuple[float, float]:
    """Write count files; return (CPU ms, wall ms) per file."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        fd, name = tempfile.mkstemp(dir=folder)
        try:
            writer = DirectWriter(fd) if direct else None
            at = 13  # not aligned, as a part's bytes in the read buffer
            for n in PIECES:
                if writer is not None:
                    writer.write(source[at:at + n])
                else:
                    os.write(fd, source[at:at + n])
                at += n
            if writer is not None:
                writer.close()
        finally:
            os.close(fd)
        with open(name, "rb") as fh:
            fh.read(16 * 1024)
    return ((time.process_time() - cpu) * 1000 / count,
            (time.perf_counter() - wall) * 1000 / count)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--folder", default=str(Path("instance") / "tmp"),
                    help="where to write (on the image store's filesystem)")
    args = ap.parse_args()
    Path(args.folder).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="page-cache-write-", dir=args.folder))
    source = memoryview(bytearray(os.urandom(SIZE + 64)))
    figures: dict[str, list[tuple[float, float]]] = {"page cache": [], "O_DIRECT": []}
    try:
        for r in range(args.rounds):
            for name, direct in (("page cache", False), ("O_DIRECT", True)):
                folder = root / f"{r}-{int(direct)}"
                folder.mkdir()
                figures[name].append(write_files(folder, args.files, direct, source))
                cpu, wall = figures[name][-1]
                print(f"round {r + 1}, {name:10}: {cpu:.3f} ms CPU, {wall:.3f} ms wall per file",
                      flush=True)
    finally:
        shutil.rmtree(root)
    for name, runs in figures.items():
        print(f"{name:10} median: {statistics.median(c for c, _ in runs):.3f} ms CPU, "
              f"{statistics.median(w for _, w in runs):.3f} ms wall per 512 KB file")


if __name__ == "__main__":
    main()
