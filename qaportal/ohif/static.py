"""The build's files as sent: gzip-compressed once (cached on disk), hashed ones immutable.

OHIF's build is ~200 MB of JavaScript, CSS and WebAssembly, most of it compressing to a
fifth. Each file is compressed the first time a browser asking for gzip needs it, into
<instance>/ohif-gzip/ (keyed by the file's size and mtime, written atomically, so workers
of one server share it and a rebuilt build is compressed again). Files whose name carries a
content hash (webpack's `name.<16 hex>.js`, `<16 hex>.wasm`) never change under that name:
the browser may keep them a year without asking. Caching stays private (behind sign-in).
The files of the first open are compressed ahead, when the server starts (warm.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from flask import current_app, send_file, send_from_directory

COMPRESSIBLE = frozenset({".js", ".css", ".wasm", ".json", ".map", ".svg", ".html", ".txt"})
HASHED = re.compile(r"(^|\.)[0-9a-f]{16,}\.[a-z0-9]+$")
IMMUTABLE = "private, max-age=31536000, immutable"
SHORT = "private, max-age=3600"


def cache_control(path: str) -> str:
    return IMMUTABLE if HASHED.search(path.rsplit("/", 1)[-1]) else SHORT


def gzip_cache(app) -> Path:
    return Path(app.instance_path) / "ohif-gzip"


def gzipped(dist: Path, path: str, cache: Path) -> Path:
    """Return the gzip of dist/path kept in cache, making it if missing or stale.

    One compressor per file at a time (an flock on <target>.lock): a request arriving while
    another process or thread (warm.py) compresses the same file waits for that result
    instead of compressing it again alongside."""
    source = dist / path
    st = source.stat()
    target = cache / f"{path}.{st.st_size}-{int(st.st_mtime)}.gz"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{target}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_file():
            _compress(source, target)
    return target


_GZ_NAME = re.compile(r"^(?P<name>.+)\.(?P<size>\d+)-(?P<mtime>\d+)\.gz$")
_LEFTOVER_AGE_S = 3600  # a temporary file this old was left by a process that died


def prune_stale(dist: Path, cache: Path) -> int:
    """Delete the cache's gzips of files the build no longer has as they were (another
    version fetched, a rebuilt build), their lock files, and temporary files left behind;
    return how many files went. A gzip being sent stays readable (open files outlive
    their names); a current one is never touched."""
    removed = 0
    now = time.time()
    for entry in cache.rglob("*"):
        if not entry.is_file() or entry.name == ".warming.lock":
            continue
        stale = False
        if entry.suffix == ".gz" and (m := _GZ_NAME.match(entry.name)):
            source = dist / entry.parent.relative_to(cache) / m["name"]
            try:
                st = source.stat()
                stale = (st.st_size, int(st.st_mtime)) != (int(m["size"]), int(m["mtime"]))
            except FileNotFoundError:
                stale = True
        elif entry.suffix in (".tmp", ".lock"):
            gz = entry.with_suffix("") if entry.suffix == ".lock" else None
            with contextlib.suppress(FileNotFoundError):
                old = now - entry.stat().st_mtime > _LEFTOVER_AGE_S
                stale = old and (gz is None or not gz.exists())
        if stale:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed += 1
    return removed


def _compress(source: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb",
                                                       compresslevel=6, mtime=0) as out:
            with source.open("rb") as src:
                shutil.copyfileobj(src, out)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def send(dist: Path, path: str, accept_encoding: str):
    """The response for dist/path: gzip when accepted and worth it, with its caching."""
    wants_gzip = "gzip" in accept_encoding.lower()
    if wants_gzip and Path(path).suffix in COMPRESSIBLE:
        response = send_file(gzipped(dist, path, gzip_cache(current_app)), mimetype=None,
                             conditional=True, download_name=Path(path).name, max_age=0)
        response.headers["Content-Encoding"] = "gzip"
        response.headers.pop("Content-Disposition", None)
    else:
        response = send_from_directory(dist, path, max_age=0)
    response.vary.add("Accept-Encoding")
    response.headers["Cache-Control"] = cache_control(path)
    return response
