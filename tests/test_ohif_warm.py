"""The files of OHIF's first open are compressed ahead, once, when the server starts."""

from __future__ import annotations

import fcntl
import gzip
import os
import threading
import time

from qaportal.ohif import preload, static, warm
from tests.test_ohif import ohif_build  # noqa: F401  (fixture)

CHUNK = f"{preload.FIRST_IMAGE[0]}.bundle.0123456789abcdef.js"
LATER = "424242.bundle.0123456789abcdef.js"  # a chunk not needed for the first image
BODY = b"(()=>{console.log('first');})();" * 100


def _cached(app) -> set[str]:
    cache = static.gzip_cache(app)
    return {p.name.split(".js.")[0].split(".css.")[0] for p in cache.glob("*.gz")}


def _build(ohif_build):  # noqa: F811
    for name in (CHUNK, LATER):
        (ohif_build / "dist" / name).write_bytes(BODY)
    return ohif_build / "dist"


def test_precompress_makes_the_first_open_files_only(app, ohif_build):  # noqa: F811
    dist = _build(ohif_build)
    done = warm.precompress(dist, static.gzip_cache(app))
    assert done == ["app.bundle.abc.js", "app.bundle.css", CHUNK]
    assert _cached(app) == {"app.bundle.abc", "app.bundle", CHUNK[:-3]}
    gz = next(static.gzip_cache(app).glob(f"{CHUNK}.*.gz"))
    assert gzip.decompress(gz.read_bytes()) == BODY


def test_another_process_at_it_is_left_alone(app, ohif_build):  # noqa: F811
    dist = _build(ohif_build)
    cache = static.gzip_cache(app)
    cache.mkdir(parents=True)
    with open(cache / ".warming.lock", "w") as held:  # as another worker would hold it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert warm.precompress(dist, cache) == []
    assert _cached(app) == set()
    assert len(warm.precompress(dist, cache)) == 3  # released: done now


def test_the_first_request_starts_it_and_the_viewer_sends_the_result(app, client, login_as,
                                                                      ohif_build):  # noqa: F811
    _build(ohif_build)
    app.config["OHIF_PRECOMPRESS"] = True
    warm.init_app(app)
    client.get("/login")  # any first request, not the viewer's
    for thread in threading.enumerate():
        if thread.name == "ohif-precompress":
            thread.join()
    assert CHUNK[:-3] in _cached(app) and LATER[:-3] not in _cached(app)
    login_as("radiologist")
    got = client.get(f"/viewer/ohif/{CHUNK}", headers={"Accept-Encoding": "gzip"})
    assert got.headers["Content-Encoding"] == "gzip" and gzip.decompress(got.get_data()) == BODY


def test_off_under_testing_unless_asked(app, client, ohif_build):  # noqa: F811
    _build(ohif_build)
    client.get("/login")
    assert not any(t.name == "ohif-precompress" for t in threading.enumerate())
    assert _cached(app) == set()


def test_another_builds_gzips_and_leftovers_are_pruned_current_ones_kept(app, ohif_build):  # noqa: F811
    dist = _build(ohif_build)
    cache = static.gzip_cache(app)
    warm.precompress(dist, cache)
    static.gzipped(dist, LATER, cache)  # asked for by a browser: compressed on demand
    before = {p.name for p in cache.glob("*.gz")}
    assert len(before) == 4
    (dist / CHUNK).write_bytes(BODY * 2)  # a rebuilt build: the chunk changed
    (dist / LATER).unlink()  # another version of OHIF does not have this one
    leftover, fresh = cache / "tmpdead.tmp", cache / "tmpbusy.tmp"
    for path in (leftover, fresh):
        path.write_bytes(b"half")
    os.utime(leftover, (time.time() - 7200, time.time() - 7200))  # its writer died
    warm.precompress(dist, cache)
    after = {p.name for p in cache.glob("*.gz")}
    assert not any(n.startswith(LATER) for n in after)
    [chunk] = [n for n in after if n.startswith(CHUNK)]
    assert chunk not in before and gzip.decompress((cache / chunk).read_bytes()) == BODY * 2
    assert {n for n in after if not n.startswith(CHUNK)} == \
        {n for n in before if not n.startswith((CHUNK, LATER))}  # the others untouched
    assert not leftover.exists() and fresh.exists()  # a temporary file in use stays
    assert (cache / ".warming.lock").exists()
