"""Compress the files of OHIF's first open ahead, when the server starts serving.

static.py compresses each build file the first time a browser needs it: for the ~23 MB a
first open loads (the app bundle, its stylesheet, the chunks of the first image), that was
seconds added to the first open after each deployment. So the first request a server
process handles starts one background thread that compresses them into the shared cache
(<instance>/ohif-gzip/). One process of a server does it (an flock on a file in the cache,
released by the kernel if that process dies); the others find it done or being done. The
request that starts it does not wait. Files already cached cost one stat each.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from pathlib import Path

from qaportal.ohif import assets, preload, static

log = logging.getLogger(__name__)
_started: set[int] = set()
_lock = threading.Lock()


def first_open_files(dist: Path) -> list[str]:
    """The build's files a first open of the viewer loads, the app bundle first."""
    names = sorted(p.name for p in dist.glob("app.bundle.*.js"))
    names += [n for n in ("app.bundle.css",) if (dist / n).is_file()]
    names += [name for name, _kind in preload.files(dist)]
    names += sorted(p.name for p in dist.glob("histogram-worker.bundle.*.js"))
    return [n for n in names if Path(n).suffix in static.COMPRESSIBLE]


def precompress(dist: Path, cache: Path) -> list[str]:
    """Compress first_open_files(dist) into cache unless another process is at it.

    Return the names this call made sure of ([] when another process holds the lock)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".warming.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return []
        done = []
        for name in first_open_files(dist):
            static.gzipped(dist, name, cache)
            done.append(name)
        # Another build version's gzips are never asked for again: this is the one moment
        # a process owns the cache's upkeep.
        static.prune_stale(dist, cache)
        return done


def _run(dist: Path, cache: Path) -> None:
    try:
        precompress(dist, cache)
    except OSError:  # a build being replaced, a full disk: files compress on demand then
        log.warning("OHIF: compressing the first open's files ahead failed", exc_info=True)


def start(app) -> None:
    """Once per process and app: compress in the background if the build is there."""
    with _lock:
        if id(app) in _started:
            return
        _started.add(id(app))
    with app.app_context():
        dist = assets.dist_dir()
    if (dist / "index.html").is_file():
        threading.Thread(target=_run, args=(dist, static.gzip_cache(app)),
                         name="ohif-precompress", daemon=True).start()


def init_app(app) -> None:
    """Start on the first request (not in CLI runs), unless OHIF_PRECOMPRESS is false
    (off by default under TESTING)."""
    if not app.config.get("OHIF_PRECOMPRESS", not app.testing):
        return

    @app.before_request
    def _precompress_ohif():
        start(app)
