"""Turn user input (files, folders, zip archives) into candidate DICOM files, safely."""

from __future__ import annotations

import os
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_CHUNK = 1024 * 1024
_SKIPPED_NAMES = {"DICOMDIR", "Thumbs.db", "desktop.ini"}



@dataclass(frozen=True, slots=True)
class Received:
    """An uploaded file already in a private temporary file: its name, path and SHA-256."""

    name: str
    path: Path
    sha256: str | None = None


Input = str | os.PathLike[str] | tuple[str, str | os.PathLike[str]] | Received


@dataclass(frozen=True, slots=True)
class SourceLimits:
    """Bound what one upload may unpack to."""

    max_entries: int = 20_000
    max_total_bytes: int = 8 * 1024**3
    max_file_bytes: int = 2 * 1024**3
    max_ratio: float = 200.0
    # Below this an entry, or a whole archive's entries together, may compress well
    # without harm; above it the ratio applies to each entry and to their sum.
    ratio_min_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SourceItem:
    """Name a candidate file by its place in the user's input, or say why it was refused."""

    name: str
    path: Path | None = None
    error: str | None = None
    # For a file received into a private temporary file: its SHA-256 as it was written, and
    # owned=True: the store may take the file over (move it) instead of copying it.
    sha256: str | None = None
    owned: bool = False
    # The file's first bytes as they were written (or None): the header parse starts from
    # them instead of reading the file (written around the page cache: a disk read).
    head: bytes | None = None

    @property
    def ok(self) -> bool:
        """Tell whether the item is a file to try."""
        return self.error is None


def iter_files(paths: Iterable[Input], limits: SourceLimits | None = None) -> Iterator[SourceItem]:
    """Yield a SourceItem for every file in the inputs, and one per refused input or entry.

    An input is a path or a (display name, path) pair, where the display name is what the
    user called it (an upload's original filename). Zip entries are extracted one at a
    time to a private temporary folder; an entry's path is valid until the next item is
    requested, so consume (store) it before advancing. Closing the generator cleans up.
    """
    limits = limits or SourceLimits()
    with tempfile.TemporaryDirectory(prefix="qaportal-src-") as tmp:
        for entry in paths:
            if isinstance(entry, Received):
                yield from _iter_received(entry, limits, Path(tmp))
                continue
            display, path = entry if isinstance(entry, tuple) else (None, entry)
            path = Path(path)
            display = display or path.name or "input"
            if path.is_symlink():
                yield SourceItem(display, error="symbolic link skipped")
            elif path.is_dir():
                yield from _iter_folder(path, display, limits, Path(tmp))
            elif path.is_file():
                yield from _iter_file(path, display, limits, Path(tmp))
            else:
                yield SourceItem(display, error="not found")


def _iter_folder(root: Path, display: str, limits: SourceLimits, tmp: Path) -> Iterator[SourceItem]:
    """Walk a folder in sorted order, skipping hidden files and symbolic links."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        rel_dir = Path(dirpath).relative_to(root)
        for fname in sorted(filenames):
            if _hidden(fname) or fname in _SKIPPED_NAMES:
                continue
            full = Path(dirpath) / fname
            name = (PurePosixPath(display) / rel_dir.as_posix() / fname).as_posix()
            if full.is_symlink():
                yield SourceItem(name, error="symbolic link skipped")
            elif full.is_file():
                yield from _iter_file(full, name, limits, tmp)


def _iter_file(path: Path, display: str, limits: SourceLimits, tmp: Path) -> Iterator[SourceItem]:
    """Yield a plain file, or the contents of a zip archive."""
    if _looks_like_zip(path):
        yield from _iter_zip(path, display, limits, tmp)
    else:
        yield SourceItem(display, path=path)


def _iter_received(entry: Received, limits: SourceLimits, tmp: Path) -> Iterator[SourceItem]:
    """Yield a received file as owned (the store may move it), or the entries of a zip."""
    if _looks_like_zip(entry.path):
        yield from _iter_zip(entry.path, entry.name, limits, tmp)
    else:
        yield SourceItem(entry.name, path=entry.path, sha256=entry.sha256, owned=True)


def _looks_like_zip(path: Path) -> bool:
    """Tell a zip archive from a DICOM file (whose preamble might mimic a zip header)."""
    try:
        with path.open("rb") as fp:
            head = fp.read(132)
    except OSError:
        return False
    if head[128:132] == b"DICM":
        return False
    return head[:4] in ZIP_MAGIC or path.suffix.lower() == ".zip"


def _iter_zip(archive: Path, display: str, limits: SourceLimits, tmp: Path) -> Iterator[SourceItem]:
    """Check a whole archive before extracting anything, then stream its entries out."""
    declared = _declared_entry_count(archive)
    if declared is not None and declared > limits.max_entries:
        yield SourceItem(display, error=f"too many entries ({declared} > {limits.max_entries})")
        return
    try:
        zf = zipfile.ZipFile(archive)
    except Exception:  # noqa: BLE001 - BadZipFile, OSError, ValueError, struct.error...
        yield SourceItem(display, error="not a readable zip archive")
        return
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > limits.max_entries:
            yield SourceItem(
                display, error=f"too many entries ({len(infos)} > {limits.max_entries})"
            )
            return
        total = sum(i.file_size for i in infos)
        if total > limits.max_total_bytes:
            yield SourceItem(display, error=f"archive too large when unpacked ({total} bytes)")
            return
        problems = [_entry_problem(info, limits) for info in infos]
        ratio = _archive_ratio(archive, [i for i, p in zip(infos, problems, strict=True)
                                         if p is None and not _hidden_entry(i.filename)],
                               limits.ratio_min_bytes)
        if ratio is not None and ratio > limits.max_ratio:
            # Many small entries that each pass stay a bomb together (451 KB -> 208 MB).
            yield SourceItem(display, error=f"suspicious compression ratio ({ratio:.0f}:1 "
                                            "over the whole archive)")
            return
        written = 0
        for n, (info, problem) in enumerate(zip(infos, problems, strict=True)):
            name = _entry_display(display, info)
            # Entry names never become paths (targets are numbered), so one hostile entry
            # is refused on its own and its siblings still come through.
            if problem:
                yield SourceItem(name, error=problem)
                continue
            if _hidden_entry(info.filename):
                continue
            target = tmp / f"entry-{n:06d}"
            error, size = _extract(zf, info, target, limits, limits.max_total_bytes - written)
            written += size
            if error:
                target.unlink(missing_ok=True)
                yield SourceItem(name, error=error)
                continue
            try:
                yield SourceItem(name, path=target)
            finally:
                target.unlink(missing_ok=True)


def _entry_problem(info: zipfile.ZipInfo, limits: SourceLimits) -> str | None:
    """Return why an entry must not be extracted, judging only its central directory record."""
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "unsafe entry: absolute path"
    if ".." in parts:
        return "unsafe entry: path traversal"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "unsafe entry: symbolic link"
    if info.flag_bits & 0x1:
        return "encrypted entry"
    if name.lower().endswith(".zip"):
        return "nested archive not opened"
    if info.file_size > limits.max_file_bytes:
        return f"entry too large ({info.file_size} bytes)"
    if info.file_size >= limits.ratio_min_bytes:
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > limits.max_ratio:
            return f"suspicious compression ratio ({ratio:.0f}:1)"
    return None


def _archive_ratio(archive: Path, infos: list[zipfile.ZipInfo], min_bytes: int) -> float | None:
    """Return what the entries to extract unpack to per byte of archive, or None if small.

    The denominator is their compressed sizes, never more than the archive itself: entries
    that overlap (share compressed bytes) cannot make the archive look less dense.
    """
    total = sum(i.file_size for i in infos)
    if total < min_bytes:
        return None
    try:
        size = archive.stat().st_size
    except OSError:
        size = 0
    packed = min(sum(i.compress_size for i in infos), size or 1)
    return total / max(packed, 1)


def _extract(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limits: SourceLimits, budget: int
) -> tuple[str | None, int]:
    """Stream one entry to target, re-checking sizes as bytes arrive since headers can lie."""
    cap = min(info.file_size, limits.max_file_bytes, budget)
    size = 0
    try:
        with zf.open(info) as src, target.open("xb") as dst:
            while chunk := src.read(_CHUNK):
                if size == 0 and chunk[:4] in ZIP_MAGIC:
                    return "nested archive not opened", 0
                size += len(chunk)
                if size > cap:
                    return "entry larger than declared", size
                dst.write(chunk)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        NotImplementedError,
        zlib.error,  # damaged deflate stream
    ) as exc:
        return f"corrupt zip entry ({exc.__class__.__name__})", size
    except RuntimeError as exc:  # e.g. encrypted entry without password
        return f"unreadable zip entry ({exc})", size
    except Exception as exc:  # noqa: BLE001 - any other failure is this entry's alone
        return f"unreadable zip entry ({exc.__class__.__name__})", size
    return None, size


def _declared_entry_count(archive: Path) -> int | None:
    """Read the entry count from the end-of-central-directory record before parsing it all."""
    try:
        with archive.open("rb") as fp:
            fp.seek(0, os.SEEK_END)
            size = fp.tell()
            fp.seek(max(0, size - 65557))
            tail = fp.read()
    except OSError:
        return None
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or len(tail) < pos + 22:
        return None
    count = struct.unpack("<H", tail[pos + 10 : pos + 12])[0]
    return None if count == 0xFFFF else count  # Zip64: let zipfile count them


def _entry_display(archive_display: str, info: zipfile.ZipInfo) -> str:
    """Name an entry as archive/inner/path without leading slashes or drive letters."""
    inner = info.filename.replace("\\", "/").lstrip("/")
    if len(inner) > 1 and inner[1] == ":":
        inner = inner[2:].lstrip("/")
    return f"{archive_display}/{inner}"


def _hidden(name: str) -> bool:
    """Tell whether a file or folder name is hidden or OS clutter."""
    return name.startswith(".") or name == "__MACOSX"


def _hidden_entry(filename: str) -> bool:
    """Tell whether any component of a zip entry name is hidden or OS clutter."""
    return any(_hidden(p) for p in PurePosixPath(filename.replace("\\", "/")).parts)
