"""The de-identified download: pixel review flags, and stored files that cannot be used."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pydicom
import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import Instance, Study
from qaportal.studies.storage import image_store
from tests.studyfiles import modified_copy, sample


def _upload(client, *paths):
    files = [(open(p, "rb"), p.name) for p in paths]
    try:
        res = client.post("/studies/upload", data={"files": files},
                          content_type="multipart/form-data")
    finally:
        for fh, _ in files:
            fh.close()
    assert res.status_code == 302
    return db.session.scalars(sa.select(Study)).one()


def test_burned_in_yes_on_a_ct_is_flagged_on_the_page_and_in_the_zip(client, login_as,
                                                                      tmp_path):
    login_as("radiologist")
    path = modified_copy("CT_small.dcm", tmp_path / "ct.dcm", BurnedInAnnotation="YES")
    study = _upload(client, path)
    assert study.modalities == "CT" and study.burned_in_suspected
    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    assert "burned-in patient text" in page
    res = client.get(f"/studies/{study.id}/deidentified.zip")
    assert res.status_code == 200
    with zipfile.ZipFile(io.BytesIO(res.data)) as zf:
        manifest = zf.read(f"{study.pseudonym}/DEIDENTIFICATION.txt").decode()
    assert "PIXEL REVIEW NEEDED" in manifest
    assert "S001/I00001.dcm" in manifest


def test_ct_without_burned_in_text_has_no_notice_and_a_clean_manifest(client, login_as):
    login_as("radiologist")
    study = _upload(client, sample("CT_small.dcm"))
    assert not study.burned_in_suspected
    assert "burned-in patient text" not in client.get(f"/studies/{study.id}").get_data(
        as_text=True)
    with zipfile.ZipFile(io.BytesIO(client.get(f"/studies/{study.id}/deidentified.zip").data)) \
            as zf:
        manifest = zf.read(f"{study.pseudonym}/DEIDENTIFICATION.txt").decode()
    assert "PIXEL REVIEW NEEDED" not in manifest


@pytest.mark.parametrize(("damage", "message"), [
    ("alter", "failed its integrity check"),
    ("delete", "is missing"),
])
def test_download_with_a_bad_stored_file_is_a_clear_error_not_a_500(client, login_as, damage,
                                                                    message):
    login_as("radiologist")
    study = _upload(client, sample("CT_small.dcm"))
    path = image_store().path(db.session.scalars(sa.select(Instance.storage_key)).one())
    if damage == "alter":
        raw = bytearray(path.read_bytes())
        raw[-10] ^= 0xFF
        path.write_bytes(bytes(raw))
    else:
        path.unlink()
    res = client.get(f"/studies/{study.id}/deidentified.zip")
    assert res.status_code == 302 and res.location.endswith(f"/studies/{study.id}")
    page = client.get(res.location).get_data(as_text=True)
    assert f"A stored image {message}, so the de-identified copy cannot be built" in page


def test_download_of_an_image_pydicom_cannot_read_fully_is_a_clear_error(client, login_as,
                                                                         tmp_path):
    login_as("radiologist")
    # The header and pixel data are sound (so it is stored); an element after them is not.
    broken = tmp_path / "trailing.dcm"
    broken.write_bytes(sample("CT_small.dcm").read_bytes() + b"\xf0\x7f\x10\x00UM\x02\x00AB")
    study = _upload(client, broken)
    res = client.get(f"/studies/{study.id}/deidentified.zip")
    assert res.status_code == 302
    page = client.get(res.location).get_data(as_text=True)
    assert "could not be read for de-identification" in page and "S001/I00001" in page


def test_overlay_data_is_flagged_for_pixel_review_like_burned_in_annotation(client, login_as):
    login_as("radiologist")
    study = _upload(client, sample("MR-SIEMENS-DICOM-WithOverlays.dcm"))
    assert study.modalities == "MR" and study.burned_in_suspected
    assert "burned-in patient text" in client.get(f"/studies/{study.id}").get_data(as_text=True)
    res = client.get(f"/studies/{study.id}/deidentified.zip")
    with zipfile.ZipFile(io.BytesIO(res.data)) as zf:
        manifest = zf.read(f"{study.pseudonym}/DEIDENTIFICATION.txt").decode()
        image = zf.read(f"{study.pseudonym}/S001/I00001.dcm")
    assert "PIXEL REVIEW NEEDED" in manifest and "overlay data present" in manifest
    assert b"\x00\x60\x00\x30" not in image  # Overlay Data (6000,3000) removed (Table E.1-1: X)


def test_default_download_of_a_ct_with_empty_dates_keeps_them_empty(client, login_as,
                                                                     tmp_path):
    """The demo CT's base slice (693_UNCR) has InstanceCreationDate ''; retaining dates crashed."""
    login_as("radiologist")
    path = modified_copy("CT_small.dcm", tmp_path / "ct.dcm", InstanceCreationDate="",
                         StudyDate="")
    study = _upload(client, path)
    res = client.get(f"/studies/{study.id}/deidentified.zip?retain_dates=y")
    assert res.status_code == 200, res.location
    with zipfile.ZipFile(io.BytesIO(res.data)) as zf:
        ds = pydicom.dcmread(io.BytesIO(zf.read(f"{study.pseudonym}/S001/I00001.dcm")))
    assert ds.InstanceCreationDate == "" and ds.StudyDate == ""
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"


def _leftovers(app) -> list[str]:
    folder = Path(app.config["UPLOAD_TMP"])
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_download_leaves_no_zip_in_the_temporary_folder(app, client, login_as):
    login_as("radiologist")
    study = _upload(client, sample("CT_small.dcm"))
    before = _leftovers(app)
    for _ in range(2):
        res = client.get(f"/studies/{study.id}/deidentified.zip")
        assert res.status_code == 200 and zipfile.ZipFile(io.BytesIO(res.data)).namelist()
        res.close()
    assert _leftovers(app) == before
    assert not [n for n in _leftovers(app) if n.startswith("deid-")]


def test_start_up_removes_de_identified_zips_left_behind(tmp_path, db_url):
    from tests.conftest import make_test_app

    tmp = tmp_path / "instance" / "tmp"
    tmp.mkdir(parents=True)
    (tmp / "deid-abc123.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    (tmp / "recv-in-flight").write_bytes(b"an upload still being received")
    app = make_test_app(tmp_path, db_url)
    assert sorted(p.name for p in tmp.iterdir()) == ["recv-in-flight"]
    with app.app_context():
        db.engine.dispose()
