"""OHIF's build files as sent: gzip when accepted, validators, immutable hashed assets."""

from __future__ import annotations

import gzip

from tests.test_ohif import ohif_build  # noqa: F401  (fixture)

HASHED = "/viewer/ohif/100.bundle.cb02411ce321d4e4.js"
BODY = b"(()=>{console.log('x');})();" * 200


def _add(build, name: str, data: bytes) -> None:
    (build / "dist" / name).write_bytes(data)


def test_gzip_when_accepted_identity_otherwise(client, login_as, ohif_build):  # noqa: F811
    login_as("radiologist")
    _add(ohif_build, HASHED.rsplit("/", 1)[1], BODY)
    zipped = client.get(HASHED, headers={"Accept-Encoding": "gzip, br"})
    assert zipped.status_code == 200 and zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.get_data()) == BODY
    assert zipped.mimetype == "text/javascript" and "Accept-Encoding" in zipped.headers["Vary"]
    assert "Content-Disposition" not in zipped.headers
    plain = client.get(HASHED)
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
    assert plain.get_data() == BODY
    assert zipped.headers["ETag"] != plain.headers["ETag"]


def test_hashed_files_are_immutable_others_short_and_private(client, login_as,
                                                             ohif_build):  # noqa: F811
    login_as("radiologist")
    _add(ohif_build, HASHED.rsplit("/", 1)[1], BODY)
    _add(ohif_build, "0ddf166f7a343eda.wasm", b"\0asm" + b"\0" * 100)
    hashed = client.get(HASHED).headers["Cache-Control"]
    assert hashed == "private, max-age=31536000, immutable"
    assert client.get("/viewer/ohif/0ddf166f7a343eda.wasm").headers["Cache-Control"] == hashed
    plain = client.get("/viewer/ohif/app.bundle.css").headers["Cache-Control"]
    assert plain == "private, max-age=3600"


def test_etag_revalidation_gives_304_for_both_encodings(client, login_as,
                                                        ohif_build):  # noqa: F811
    login_as("radiologist")
    _add(ohif_build, HASHED.rsplit("/", 1)[1], BODY)
    for headers in ({"Accept-Encoding": "gzip"}, {}):
        etag = client.get(HASHED, headers=headers).headers["ETag"]
        again = client.get(HASHED, headers={**headers, "If-None-Match": etag})
        assert again.status_code == 304, headers


def test_a_changed_file_is_compressed_again(client, login_as, ohif_build):  # noqa: F811
    import os

    login_as("radiologist")
    name = "app.bundle.abc.js"
    client.get(f"/viewer/ohif/{name}", headers={"Accept-Encoding": "gzip"})
    _add(ohif_build, name, BODY)
    os.utime(ohif_build / "dist" / name, (1e9, 1e9))
    got = client.get(f"/viewer/ohif/{name}", headers={"Accept-Encoding": "gzip"})
    assert gzip.decompress(got.get_data()) == BODY


def test_static_files_still_need_sign_in(client, ohif_build):  # noqa: F811
    resp = client.get("/viewer/ohif/app.bundle.abc.js", headers={"Accept-Encoding": "gzip"})
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_a_file_being_compressed_is_waited_for_not_compressed_twice(app, ohif_build):  # noqa: F811
    import fcntl
    import threading

    from qaportal.ohif import static

    name = HASHED.rsplit("/", 1)[1]
    _add(ohif_build, name, BODY)
    dist, cache = ohif_build / "dist", static.gzip_cache(app)
    st = (dist / name).stat()
    target = cache / f"{name}.{st.st_size}-{int(st.st_mtime)}.gz"
    cache.mkdir(parents=True)
    got = []
    with open(f"{target}.lock", "w") as held:  # another worker is compressing it
        fcntl.flock(held, fcntl.LOCK_EX)
        waiter = threading.Thread(target=lambda: got.append(static.gzipped(dist, name, cache)))
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive() and not target.exists()  # waiting, not compressing
        target.write_bytes(gzip.compress(b"the other worker's result"))
    waiter.join()
    assert got == [target]
    assert gzip.decompress(target.read_bytes()) == b"the other worker's result"
