"""What OHIF loads before its first image, announced in index.html so it downloads at once.

OHIF's app bundle (17 MB of JavaScript) takes the browser most of a second to compile and
run; only then does webpack start loading the chunks the viewer needs, in four rounds (a
chunk's code asks for the next), each a round trip to the server. Announced up front as
<link rel="preload">, they download while the app bundle still runs, and each round then
finds its chunks in the browser's cache. They are asked for at low priority and the app
bundle at high (assets.rewrite_index), so that they do not slow the app bundle's download,
which everything waits for.

FIRST_IMAGE lists the webpack chunk ids (and the one font) OHIF 3.13 requested on the way
to its first image of a CT (measured with benchmarks/viewer.py, fresh browser profile). A
chunk named here but absent from the build is skipped; a chunk the build loads but not
named here is simply loaded late, as before. When bumping OHIF, re-list them (the chunks
requested before the first /frames/ request; docs/viewer-ohif.md, "Fetching and bumping
the version").
"""

from __future__ import annotations

from html import escape
from pathlib import Path

# Webpack chunk ids, in the order OHIF 3.13.2 asked for them; each loads <id>.bundle.<hash>.js
# and, for some, <id>.css.
FIRST_IMAGE = ("1673", "6938", "6489", "6495", "8478", "89", "6214", "2779", "2623", "6749",
               "5696", "1483", "9383", "7499", "8492", "9290", "4683", "1180", "3552", "341",
               "8097", "7248", "3833", "781", "9415", "3500", "9116", "100", "5406", "3760",
               "9068", "899", "5448", "5910", "1206", "7463")
FONTS = ("a34f9d1faa5f3315.woff2",)  # the UI's font (app.bundle.css); fetched in CORS mode


def files(dist: Path) -> list[tuple[str, str]]:
    """(file name, `as` kind) of the build's files to preload, in loading order."""
    out: list[tuple[str, str]] = []
    for chunk in FIRST_IMAGE:
        if (dist / f"{chunk}.css").is_file():
            out.append((f"{chunk}.css", "style"))
        out.extend((p.name, "script") for p in sorted(dist.glob(f"{chunk}.bundle.*.js")))
    out.extend((name, "font") for name in FONTS if (dist / name).is_file())
    return out


def links(dist: Path, base: str) -> str:
    """The <link rel="preload"> elements for files(dist), served under base."""
    tags = []
    for name, kind in files(dist):
        extra = ' type="font/woff2" crossorigin' if kind == "font" else ""
        tags.append(f'<link rel="preload" href="{escape(base + name)}" as="{kind}"{extra} '
                    'fetchpriority="low">')
    return "".join(tags)
