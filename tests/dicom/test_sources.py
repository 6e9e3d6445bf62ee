"""Input sources: folder recursion and zip safety checks made before any extraction."""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from qaportal.dicom import SourceLimits, iter_files, read_header


@pytest.fixture
def good(tmp_path: Path, ct_small: Path) -> Path:
    path = tmp_path / "good.dcm"
    shutil.copyfile(ct_small, path)
    return path


def _errors(items: list) -> dict[str, str]:
    return {i.name: i.error for i in items if i.error}


def _ok_names(items: list) -> list[str]:
    return [i.name for i in items if i.ok]


def test_folder_recursion_skips_hidden(tmp_path: Path, ct_small: Path) -> None:
    root = tmp_path / "upload"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for rel in ("a.dcm", "sub/b.dcm", "sub/deeper/c.dcm", ".hidden/d.dcm", ".DS_Store"):
        shutil.copyfile(ct_small, root / rel)
    (root / "DICOMDIR").write_bytes(b"x")
    items = list(iter_files([root]))
    assert _ok_names(items) == ["upload/a.dcm", "upload/sub/b.dcm", "upload/sub/deeper/c.dcm"]
    assert all(read_header(i.path).sop_uid for i in items)


def test_display_name_and_missing_input(tmp_path: Path, good: Path) -> None:
    items = list(iter_files([("scan from cd.dcm", good), tmp_path / "nope.dcm"]))
    assert items[0].name == "scan from cd.dcm" and items[0].path == good
    assert items[1].error == "not found"
    assert str(tmp_path) not in items[1].name


def test_symlink_in_folder_not_followed(tmp_path: Path, good: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    (root / "link.dcm").symlink_to(good)
    assert _errors(list(iter_files([root]))) == {"in/link.dcm": "symbolic link skipped"}


def _zip(path: Path, entries: dict[str, bytes], **kw: int) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name.startswith("LINK:"):
                info = zipfile.ZipInfo(name[5:])
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data)
    return path


def test_zip_hostile_entries_rejected_siblings_kept(tmp_path: Path, good: Path) -> None:
    dcm = good.read_bytes()
    inner = _zip(tmp_path / "inner.zip", {"x.dcm": dcm}).read_bytes()
    archive = _zip(
        tmp_path / "study.zip",
        {
            "series/1.dcm": dcm,
            "../evil.dcm": dcm,
            "/etc/evil.dcm": dcm,
            "C:/evil.dcm": dcm,
            "LINK:series/link.dcm": b"/etc/passwd",
            "nested.zip": inner,
            "renamed.dcm": inner,
            "__MACOSX/._1.dcm": b"junk",
            "series/2.dcm": dcm,
        },
    )
    items = list(iter_files([archive]))
    assert _ok_names(items) == ["study.zip/series/1.dcm", "study.zip/series/2.dcm"]
    errors = _errors(items)
    assert errors["study.zip/../evil.dcm"] == "unsafe entry: path traversal"
    assert errors["study.zip/etc/evil.dcm"] == "unsafe entry: absolute path"
    assert errors["study.zip/evil.dcm"] == "unsafe entry: absolute path"
    assert errors["study.zip/series/link.dcm"] == "unsafe entry: symbolic link"
    assert errors["study.zip/nested.zip"] == "nested archive not opened"
    assert errors["study.zip/renamed.dcm"] == "nested archive not opened"
    assert not (tmp_path / "evil.dcm").exists() and not Path("/etc/evil.dcm").exists()


def test_zip_entry_paths_are_cleaned_up(tmp_path: Path, good: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {f"{n}.dcm": good.read_bytes() for n in range(3)})
    seen = []
    for item in iter_files([archive]):
        assert item.path.is_file() and read_header(item.path).sop_uid
        seen.append(item.path)
    assert not any(p.exists() for p in seen)
    assert not seen[0].parent.exists()  # the private temporary folder is gone too


def test_too_many_entries(tmp_path: Path, good: Path) -> None:
    archive = _zip(tmp_path / "many.zip", {f"{n}.dcm": b"x" for n in range(6)})
    items = list(iter_files([archive, good], SourceLimits(max_entries=5)))
    assert items[0].error == "too many entries (6 > 5)"
    assert _ok_names(items) == ["good.dcm"]  # the other input still comes through


def test_zip_bomb_ratio_and_total_size(tmp_path: Path, good: Path) -> None:
    bomb = _zip(tmp_path / "bomb.zip", {"zeros.dcm": bytes(20 * 1024 * 1024), "ok.dcm": b"x"})
    items = list(iter_files([bomb]))
    assert _errors(items)["bomb.zip/zeros.dcm"].startswith("suspicious compression ratio")
    assert _ok_names(items) == ["bomb.zip/ok.dcm"]
    items = list(iter_files([bomb, good], SourceLimits(max_total_bytes=10 * 1024 * 1024)))
    assert items[0].error.startswith("archive too large when unpacked")
    assert _ok_names(items) == ["good.dcm"]


def test_corrupt_entry_and_bad_archive(tmp_path: Path, good: Path) -> None:
    archive = tmp_path / "stored.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("a.dcm", good.read_bytes())
        zf.writestr("b.dcm", good.read_bytes())
    data = bytearray(archive.read_bytes())
    data[1000] ^= 0xFF  # inside a.dcm's stored bytes: its CRC no longer matches
    archive.write_bytes(bytes(data))
    (tmp_path / "garbage.zip").write_bytes(b"PK\x03\x04 not really a zip")
    items = list(iter_files([archive, tmp_path / "garbage.zip", good]))
    errors = _errors(items)
    assert errors["stored.zip/a.dcm"].startswith("corrupt zip entry")
    assert errors["garbage.zip"] == "not a readable zip archive"
    assert _ok_names(items) == ["stored.zip/b.dcm", "good.dcm"]


def test_dicom_with_zip_like_preamble_is_not_unzipped(tmp_path: Path, good: Path) -> None:
    data = bytearray(good.read_bytes())
    data[:4] = b"PK\x03\x04"
    path = tmp_path / "polyglot.dcm"
    path.write_bytes(bytes(data))
    assert [i.path for i in iter_files([path])] == [path]


def test_zip_ratio_applies_to_the_archive_totals(tmp_path: Path, dicom_file) -> None:
    """Entries under 1 MiB each passed alone: 451 KB once unpacked to 200 files, 208 MB."""
    plan = dicom_file("rtplan.dcm").read_bytes()
    padded = plan + bytes(1_040_000 - len(plan))  # a real header, then trailing padding
    bomb = _zip(tmp_path / "small-bombs.zip", {f"s/{n:03d}.dcm": padded for n in range(60)})
    assert bomb.stat().st_size < 1_000_000 and all(
        i.file_size < 1024 * 1024 for i in zipfile.ZipFile(bomb).infolist())
    items = list(iter_files([bomb]))
    assert [(i.name, i.ok) for i in items] == [("small-bombs.zip", False)]
    assert items[0].error.startswith("suspicious compression ratio")
    assert "whole archive" in items[0].error


def test_zip_of_real_images_passes_the_archive_ratio(tmp_path: Path, dicom_file) -> None:
    names = ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "693_UNCR.dcm")
    archive = _zip(tmp_path / "study.zip",
                   {f"x/{n}": dicom_file(n).read_bytes() for n in names})
    items = list(iter_files([archive]))
    assert all(i.ok for i in items) and len(items) == len(names)
