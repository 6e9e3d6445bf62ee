"""The de-identified download: pixel review flags, and stored files that cannot be used."""

from __future__ import annotations

import io
import zipfile

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
