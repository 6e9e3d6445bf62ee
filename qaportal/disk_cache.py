"""A folder of derived files that can be made again: written atomically, bounded in size."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

# The rendered images' formats; a cache for other derived files names its own suffix.
IMAGE_SUFFIXES = (".png", ".jpg", ".gif")


class DiskCache:
    """Derived files on disk, keyed by content; written atomically; pruned oldest-first.

    Rendered frames (the default suffix), DICOMweb metadata (".json"), local copies of a
    remote store's files (no suffix). Names starting with "." are temporary files being
    written: never counted, never pruned.
    """

    def __init__(self, root: str | os.PathLike[str], max_bytes: int = 2 * 1024**3,
                 suffix: str = ".png") -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.suffix = suffix
        suffixes = IMAGE_SUFFIXES if suffix in IMAGE_SUFFIXES else (suffix,)
        self.globs = tuple(f"??/*{x}" for x in suffixes)
        self._lock = threading.Lock()
        self._approx_bytes: int | None = None

    @staticmethod
    def key(*parts: object) -> str:
        """Return the cache key (hex) for the parts that determine a rendering."""
        return hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()

    def path(self, key: str, ext: str | None = None) -> Path:
        """Return where the entry for key lives (ext: "png", "jpg"...; default the suffix)."""
        return self.root / key[:2] / (f"{key}.{ext}" if ext else f"{key}{self.suffix}")

    def get(self, key: str, ext: str | None = None) -> bytes | None:
        """Return the cached bytes, or None on a miss."""
        try:
            with open(self.path(key, ext), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def put(self, key: str, data: bytes, ext: str | None = None) -> None:
        """Write an entry: temp file in the same folder, then rename (readers never see half)."""
        dest = self.path(key, ext)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._grew(len(data))

    def _grew(self, added: int) -> None:
        with self._lock:
            if self._approx_bytes is None:
                self._approx_bytes = self.size()
            else:
                self._approx_bytes += added
            over = self._approx_bytes > self.max_bytes
        if over:
            self.prune()

    def size(self) -> int:
        """Return the bytes held by the cache."""
        return sum(p.stat().st_size for p in self._entries())

    def _entries(self) -> Iterator[Path]:
        for g in self.globs:
            for p in self.root.glob(g):
                if not p.name.startswith("."):
                    yield p

    def prune(self, target_ratio: float = 0.8) -> int:
        """Delete the oldest entries until the cache holds target_ratio of max_bytes."""
        entries = []
        for p in self._entries():
            with contextlib.suppress(FileNotFoundError):
                st = p.stat()
                entries.append((st.st_mtime, st.st_size, p))
        total = sum(e[1] for e in entries)
        removed = 0
        for _, size, p in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes * target_ratio:
                break
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                total -= size
                removed += 1
        with self._lock:
            self._approx_bytes = total
        return removed
