"""Fetch OHIF's prebuilt viewer (@ohif/app from the npm registry) into an ignored folder.

The package is pinned: one version, checked against its sha512 integrity before anything is
unpacked; a mismatch is refused and nothing is written. Only the package's dist/ is kept,
as <dest>/dist, beside a stamp naming the version and integrity; a second run with the
same pin does nothing. Standard library only (run before or without the portal's venv):

    python3 -m qaportal.ohif.fetch [DEST]     (default: vendor/ohif of the checkout)
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

try:
    from qaportal.ohif import one_byte
except ImportError:  # run as a script (make ohif), before the virtualenv exists
    import one_byte  # type: ignore[no-redef]

PACKAGE = "@ohif/app"
VERSION = "3.13.2"
INTEGRITY = ("sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxF"
             "fpq+jd5xXZB9E8EA==")
TARBALL_URL = "https://registry.npmjs.org/@ohif/app/-/app-{version}.tgz"
STAMP = ".fetched"
# Where the portal serves the build. Its bundles load their chunks (and its CSS its fonts)
# from a path fixed at build time ("/"); unpacking points them here.
SERVED_AT = "/viewer/ohif/"
# Raise when the unpacking changes: a folder unpacked before is unpacked again. Browsers keep
# a hashed file a year without asking (static.IMMUTABLE), so a change of layout must not
# change what a file does, only how it is written: a browser may run the old bytes.
LAYOUT = 2
PUBLIC_PATH_MARK = '__webpack_require__.p = "/";'
DEFAULT_DEST = Path(__file__).resolve().parents[2] / "vendor" / "ohif"


class FetchError(Exception):
    """The viewer could not be fetched or did not match its pin."""


def integrity_of(path: Path) -> str:
    """Return the npm integrity string (sha512-<base64>) of a file."""
    digest = hashlib.sha512()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


def stamp_text(version: str = VERSION, integrity: str = INTEGRITY) -> str:
    return f"{PACKAGE}@{version} {integrity} served at {SERVED_AT} layout {LAYOUT}\n"


def is_current(dest: Path, version: str = VERSION, integrity: str = INTEGRITY) -> bool:
    """True when dest holds the pinned version, unpacked completely."""
    stamp = dest / STAMP
    return (stamp.is_file() and stamp.read_text() == stamp_text(version, integrity)
            and (dest / "dist" / "index.html").is_file())


def download(version: str, into: Path) -> Path:
    """Download the package tarball into a folder: with npm (its registry, proxy and cache
    settings) when installed, else straight from the public registry."""
    npm = shutil.which("npm")
    if npm:
        done = subprocess.run(  # noqa: S603 - npm from PATH, fixed arguments
            [npm, "pack", f"{PACKAGE}@{version}", "--pack-destination", str(into), "--silent",
             "--fetch-retries=1", "--fetch-timeout=120000"],  # offline: fail in minutes
            capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise FetchError(f"npm pack {PACKAGE}@{version} failed: "
                             f"{(done.stderr or done.stdout).strip()[-800:]}")
        found = sorted(into.glob("*.tgz"))
        if len(found) != 1:
            raise FetchError(f"npm pack {PACKAGE}@{version} left no tarball in {into}")
        return found[0]
    target = into / f"app-{version}.tgz"
    try:
        with urllib.request.urlopen(TARBALL_URL.format(version=version),  # noqa: S310
                                    timeout=120) as r, \
                open(target, "wb") as out:
            shutil.copyfileobj(r, out)
    except OSError as exc:
        raise FetchError(f"downloading {PACKAGE}@{version} failed: {exc}") from exc
    return target


def unpack(tarball: Path, dest: Path, integrity: str = INTEGRITY,
           version: str = VERSION) -> None:
    """Check the tarball against the pinned integrity, then unpack its dist/ into dest/dist.

    Refused (FetchError, dest untouched) when the hash differs or a member would land
    outside the folder. The new folder replaces the old one by renames.
    """
    got = integrity_of(tarball)
    if got != integrity:
        raise FetchError(f"{tarball.name}: integrity mismatch, refusing to unpack "
                         f"(expected {integrity}, got {got})")
    dest.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest))
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            members = []
            for m in tar.getmembers():
                name = m.name
                if not name.startswith("package/dist/"):
                    continue
                if not (m.isfile() or m.isdir()):
                    raise FetchError(f"{tarball.name}: {name} is not a file or folder")
                rel = Path(name[len("package/"):])
                if rel.is_absolute() or ".." in rel.parts:
                    raise FetchError(f"{tarball.name}: {name} would leave the folder")
                members.append(m)
            if not any(m.name == "package/dist/index.html" for m in members):
                raise FetchError(f"{tarball.name}: no package/dist/index.html")
            tar.extractall(work, members=members, filter="data")
        set_public_path(work / "package" / "dist")
        for name, why in to_one_byte(work / "package" / "dist"):
            print(f"fetch-ohif: {name} kept as published (not one-byte: {why})",
                  file=sys.stderr)
        old = dest / ".dist-old"
        shutil.rmtree(old, ignore_errors=True)
        (dest / STAMP).unlink(missing_ok=True)
        if (dest / "dist").exists():
            os.replace(dest / "dist", old)
        os.replace(work / "package" / "dist", dest / "dist")
        shutil.rmtree(old, ignore_errors=True)
        tmp = dest / (STAMP + ".tmp")
        tmp.write_text(stamp_text(version, integrity))
        os.replace(tmp, dest / STAMP)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def to_one_byte(dist: Path) -> list[tuple[str, str]]:
    """Write the non-ASCII characters of the build's scripts as escapes where that means
    the same (one_byte.py); return (file, why) for each script kept as published."""
    kept = []
    for path in sorted(dist.glob("*.js")):
        try:
            with open(path, encoding="utf-8", newline="") as f:
                text = f.read()
        except UnicodeDecodeError as exc:
            kept.append((path.name, f"not UTF-8 ({exc.reason} at byte {exc.start})"))
            continue
        done, why = one_byte.rewrite(text)
        if done is None:
            kept.append((path.name, why or "refused"))
        elif done is not text:
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "w", encoding="ascii", newline="") as f:
                f.write(done)
            os.replace(tmp, path)
    return kept


def set_public_path(dist: Path) -> int:
    """Point the bundles' chunk loading at SERVED_AT; return how many files changed. The
    files are edited as bytes (the marks are ASCII): nothing else in them changes."""
    changed = _replace_in(dist.glob("*.js"), PUBLIC_PATH_MARK,
                          f'__webpack_require__.p = "{SERVED_AT}";')
    if changed == 0:
        raise FetchError("no bundle sets webpack's public path: review qaportal/ohif/fetch.py "
                         "before bumping the OHIF version")
    # fonts: url(/x.woff2)
    return changed + _replace_in(dist.glob("*.css"), "url(/", f"url({SERVED_AT}")


def _replace_in(paths, old: str, new: str) -> int:
    changed = 0
    for path in paths:
        data = path.read_bytes()
        if old.encode() in data:
            path.write_bytes(data.replace(old.encode(), new.encode()))
            changed += 1
    return changed


def fetch(dest: Path = DEFAULT_DEST, version: str = VERSION,
          integrity: str = INTEGRITY) -> bool:
    """Make dest hold the pinned viewer; return False when it already did."""
    if is_current(dest, version, integrity):
        return False
    with tempfile.TemporaryDirectory(prefix="ohif-fetch-") as tmp:
        tarball = download(version, Path(tmp))
        unpack(tarball, dest, integrity, version)
    return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    dest = Path(args[0]) if args else DEFAULT_DEST
    try:
        changed = fetch(dest)
    except FetchError as exc:
        print(f"fetch-ohif: {exc}", file=sys.stderr)
        if (dest / "dist" / "index.html").is_file():  # another version or an older unpacking
            print(f"fetch-ohif: keeping the build already in {dest / 'dist'} "
                  f"({_stamp_of(dest)}); /viewer/ohif/ serves it until this succeeds.",
                  file=sys.stderr)
        else:
            print("fetch-ohif: the OHIF viewer is not installed; /viewer/ohif/ will answer "
                  "503 until this succeeds (check the network or the npm registry settings).",
                  file=sys.stderr)
        return 1
    if changed:
        print(f"fetch-ohif: {PACKAGE}@{VERSION} unpacked into {dest / 'dist'}")
    return 0


def _stamp_of(dest: Path) -> str:
    try:
        return (dest / STAMP).read_text().strip() or "no stamp"
    except OSError:
        return "no stamp"


if __name__ == "__main__":
    raise SystemExit(main())
