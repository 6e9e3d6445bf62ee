"""The chunks OHIF needs for its first image are announced in its page as preloads."""

from __future__ import annotations

import re

from qaportal.ohif import preload
from tests.test_ohif import ohif_build  # noqa: F401  (fixture)


def _add(build, name: str, data: bytes = b"(()=>{})();") -> None:
    (build / "dist" / name).write_bytes(data)


def _preloads(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<link rel="preload" href="([^"]+)" as="([a-z]+)"', html)


def test_first_image_chunks_are_preloaded_in_order(client, login_as,
                                                   ohif_build):  # noqa: F811
    login_as("radiologist")
    first, second = preload.FIRST_IMAGE[0], preload.FIRST_IMAGE[1]
    _add(ohif_build, f"{first}.bundle.0123456789abcdef.js")
    _add(ohif_build, f"{second}.css", b"a{}")
    _add(ohif_build, f"{second}.bundle.fedcba9876543210.js")
    _add(ohif_build, "424242.bundle.0123456789abcdef.js")  # a chunk not needed at first
    _add(ohif_build, preload.FONTS[0], b"wOF2")
    html = client.get("/viewer/ohif/viewer").get_data(as_text=True)
    assert _preloads(html) == [
        (f"/viewer/ohif/{first}.bundle.0123456789abcdef.js", "script"),
        (f"/viewer/ohif/{second}.css", "style"),
        (f"/viewer/ohif/{second}.bundle.fedcba9876543210.js", "script"),
        (f"/viewer/ohif/{preload.FONTS[0]}", "font")]
    # After the app's own script and stylesheet, which keep the lead.
    assert html.index('<link rel="preload"') > html.index("app.bundle.css")
    assert '<script defer fetchpriority="high" src="/viewer/ohif/app.bundle.abc.js">' in html
    assert all('fetchpriority="low"' in tag
               for tag in re.findall(r'<link rel="preload"[^>]*>', html))
    assert re.search(r'as="font" type="font/woff2" crossorigin', html)
    for href, _kind in _preloads(html):  # each is a file served, behind sign-in as the rest
        assert client.get(href).status_code == 200, href


def test_chunks_missing_from_the_build_are_not_announced(client, login_as,
                                                         ohif_build):  # noqa: F811
    login_as("radiologist")
    html = client.get("/viewer/ohif/viewer").get_data(as_text=True)
    assert _preloads(html) == []
    assert 'src="/viewer/ohif/app.bundle.abc.js"' in html
