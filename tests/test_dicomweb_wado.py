"""WADO-RS: instances (transfer syntaxes, streaming), metadata, bulk data, access, audit."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
import sqlalchemy as sa

from qaportal.dicomweb.access import deid_context
from qaportal.extensions import db
from qaportal.models import AuditEvent, Instance, Series, Study
from qaportal.studies.storage import image_store
from tests.dicomweb_helpers import (
    DICOM_ANY,
    DICOM_DEFAULT,
    OCTET,
    datasets,
    ingest,
    one_study_of,
    parse_multipart,
    zeroed,
)
from tests.studyfiles import sample

EVRLE = "1.2.840.10008.1.2.1"
JP2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
# A JPEG 2000, an RLE, a JPEG baseline (YBR) and a multi-frame RLE next to CT and MR.
SAMPLES = ["CT_small.dcm", "MR_small.dcm", "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm",
           "SC_rgb_jpeg_dcmtk.dcm", "emri_small_RLE.dcm"]
PATIENT = {"PatientName": "QUIXPAT^WADOSENTINEL", "PatientID": "QXWADO0042"}


@pytest.fixture
def world(app, login_as, tmp_path):
    """The signed-in owner's study of six real files in six syntaxes."""
    owner = login_as("radiologist")
    paths = one_study_of(SAMPLES, tmp_path / "in", **PATIENT)
    study = ingest(owner, paths)
    return {"owner": owner, "study": study, "paths": paths}


def _instances(study: Study) -> list[Instance]:
    return list(db.session.scalars(
        sa.select(Instance).join(Series).where(Series.study_id == study.id)
        .order_by(Series.series_number)))


def _series_of(study: Study, name: str) -> tuple[Series, Instance]:
    index = SAMPLES.index(name)
    inst = _instances(study)[index]
    return inst.series, inst


def _retrievals(study: Study) -> list[dict]:
    return [e.details for e in db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "study.retrieved",
                                    AuditEvent.object_id == str(study.id))
        .order_by(AuditEvent.seq))]


# -- instances ----------------------------------------------------------------------------

def test_transfer_syntax_star_serves_each_file_as_stored(client, world):
    study = world["study"]
    response = client.get(f"/dicomweb/studies/{study.study_uid}", headers={"Accept": DICOM_ANY})
    assert response.status_code == 200
    ctype = response.headers["Content-Type"]
    assert 'type="application/dicom"' in ctype and "boundary=" in ctype
    assert "transfer-syntax" not in ctype  # the parts differ
    parts = parse_multipart(response)
    assert len(parts) == len(SAMPLES)
    for (headers, body), path, inst in zip(parts, world["paths"], _instances(study),
                                           strict=True):
        assert body == zeroed(path.read_bytes())
        syntax = str(pydicom.dcmread(path).file_meta.TransferSyntaxUID)
        assert headers["content-type"] == f"application/dicom; transfer-syntax={syntax}"
        assert headers["content-location"].endswith(
            f"/series/{inst.series.series_uid}/instances/{inst.sop_uid}")
    assert _retrievals(study) == [{"level": "study", "what": "instances", "count": 6,
                                   "mode": "full", "served": "stored"}]


@pytest.mark.parametrize("accept", [DICOM_DEFAULT, "*/*", None,
                                    f"{DICOM_DEFAULT}; transfer-syntax={EVRLE}"])
def test_default_is_explicit_little_endian_decoded_frame_by_frame(client, world, accept):
    study = world["study"]
    headers = {"Accept": accept} if accept else {}
    response = client.get(f"/dicomweb/studies/{study.study_uid}", headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"].endswith(f"; transfer-syntax={EVRLE}")
    served = datasets(response)
    for ds, path in zip(served, world["paths"], strict=True):
        original = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == EVRLE
        assert ds.preamble == bytes(128)
        assert ds.SOPInstanceUID == original.SOPInstanceUID
        assert np.array_equal(ds.pixel_array, original.pixel_array), path.name
    multi = served[SAMPLES.index("emri_small_RLE.dcm")]
    assert int(multi.NumberOfFrames) == 10 and multi.pixel_array.shape[0] == 10
    assert served[SAMPLES.index("SC_rgb_jpeg_dcmtk.dcm")].PhotometricInterpretation == "RGB"


def test_a_syntax_that_cannot_be_produced_is_406(client, world):
    study = world["study"]
    series, inst = _series_of(study, "CT_small.dcm")
    url = f"/dicomweb/studies/{study.study_uid}/series/{series.series_uid}"
    jp2k = f"{DICOM_DEFAULT}; transfer-syntax={JP2K_LOSSLESS}"
    response = client.get(url, headers={"Accept": jp2k})
    assert response.status_code == 406
    assert "transfer syntax" in response.get_json()["error"]
    # The whole study holds instances that are not JPEG 2000 either.
    assert client.get(f"/dicomweb/studies/{study.study_uid}",
                      headers={"Accept": jp2k}).status_code == 406
    # Not a multipart DICOM answer at all.
    assert client.get(url, headers={"Accept": "application/dicom+json"}).status_code == 406
    # The JPEG 2000 instance itself is served as stored.
    series, inst = _series_of(study, "MR_small_jp2klossless.dcm")
    response = client.get(f"/dicomweb/studies/{study.study_uid}/series/{series.series_uid}"
                          f"/instances/{inst.sop_uid}", headers={"Accept": jp2k})
    assert response.status_code == 200
    assert response.headers["Content-Type"].endswith(f"transfer-syntax={JP2K_LOSSLESS}")
    (ds,) = datasets(response)
    assert ds.file_meta.TransferSyntaxUID == JP2K_LOSSLESS
    assert len(_retrievals(study)) == 1  # refusals are not retrievals


def test_q_values_choose_per_instance(client, world):
    study = world["study"]
    url = f"/dicomweb/studies/{study.study_uid}"
    accept = (f"{DICOM_DEFAULT}; transfer-syntax={EVRLE}; q=0.5, "
              f"{DICOM_DEFAULT}; transfer-syntax={JP2K_LOSSLESS}; q=0.9")
    syntaxes = [str(ds.file_meta.TransferSyntaxUID)
                for ds in datasets(client.get(url, headers={"Accept": accept}))]
    expected = [EVRLE] * len(SAMPLES)
    expected[SAMPLES.index("MR_small_jp2klossless.dcm")] = JP2K_LOSSLESS
    assert syntaxes == expected
    # As stored is welcome but less than explicit little endian: everything decoded.
    accept = f"{DICOM_DEFAULT}; transfer-syntax=*; q=0.2, {DICOM_DEFAULT}"
    assert {str(ds.file_meta.TransferSyntaxUID)
            for ds in datasets(client.get(url, headers={"Accept": accept}))} == {EVRLE}
    # q=0 refuses a syntax: the CT is stored in explicit little endian, nothing else fits.
    series, inst = _series_of(study, "CT_small.dcm")
    accept = f"{DICOM_ANY}, {DICOM_DEFAULT}; transfer-syntax={EVRLE}; q=0"
    assert client.get(f"{url}/series/{series.series_uid}",
                      headers={"Accept": accept}).status_code == 406


def test_levels_and_unknown_uids(client, world):
    study = world["study"]
    series, inst = _series_of(study, "MR_small_RLE.dcm")
    base = f"/dicomweb/studies/{study.study_uid}"
    (ds,) = datasets(client.get(f"{base}/series/{series.series_uid}"))
    assert ds.SOPInstanceUID == inst.sop_uid
    (ds,) = datasets(client.get(f"{base}/series/{series.series_uid}/instances/{inst.sop_uid}"))
    assert ds.SOPInstanceUID == inst.sop_uid
    for url in (f"/dicomweb/studies/{study.study_uid}9", f"{base}/series/1.2.3",
                f"{base}/series/{series.series_uid}/instances/1.2.3",
                f"{base}/series/{series.series_uid}/instances/1.2.3/metadata"):
        response = client.get(url)
        assert response.status_code == 404 and response.get_json() == {"error": "not found"}
    details = _retrievals(study)
    assert [(d["level"], d["count"], d.get("series_id"), d.get("instance_id"))
            for d in details] == [("series", 1, series.id, None),
                                  ("instance", 1, series.id, inst.id)]


# -- metadata and bulk data ---------------------------------------------------------------

def test_metadata_with_bulk_data_uris_that_resolve(client, world):
    study = world["study"]
    response = client.get(f"/dicomweb/studies/{study.study_uid}/metadata")
    assert response.status_code == 200
    assert response.mimetype == "application/dicom+json"
    items = response.get_json()
    assert len(items) == len(SAMPLES)
    for item, path in zip(items, world["paths"], strict=True):
        original = pydicom.dcmread(path)
        assert item["0020000D"]["Value"] == [study.study_uid]
        assert item["00100010"]["Value"] == [{"Alphabetic": "QUIXPAT^WADOSENTINEL"}]
        assert "00020010" not in item  # the file meta is not part of the data set
        uri = item["7FE00010"]["BulkDataURI"]
        assert uri.startswith("http://localhost/dicomweb/studies/")
        bulk = client.get(uri, headers={"Accept": OCTET})
        assert bulk.status_code == 200, uri
        assert bulk.headers["Content-Type"].startswith(
            'multipart/related; type="application/octet-stream"')
        ((headers, value),) = parse_multipart(bulk)
        assert headers["content-type"] == f"application/octet-stream; transfer-syntax={EVRLE}"
        decoded = pydicom.dcmread(path)
        if decoded.file_meta.TransferSyntaxUID.is_compressed:
            decoded.decompress(generate_instance_uid=False)
        assert value == decoded.PixelData, path.name
        assert np.array_equal(
            np.frombuffer(value, original.pixel_array.dtype)[: original.pixel_array.size]
            .reshape(original.pixel_array.shape), original.pixel_array)
    # A private binary element of CT_small above the inline limit is bulk data too.
    ct = items[SAMPLES.index("CT_small.dcm")]
    bulk = client.get(ct["00431029"]["BulkDataURI"])
    ((_, value),) = parse_multipart(bulk)
    assert value == pydicom.dcmread(world["paths"][0])[0x00431029].value
    # Same answer as application/json; other types are refused.
    as_json = client.get(f"/dicomweb/studies/{study.study_uid}/metadata",
                         headers={"Accept": "application/json"})
    assert as_json.mimetype == "application/json" and as_json.get_json() == items
    assert client.get(f"/dicomweb/studies/{study.study_uid}/metadata",
                      headers={"Accept": "image/png"}).status_code == 406


def test_metadata_levels_cache_and_audit(client, world, app):
    study = world["study"]
    series, inst = _series_of(study, "CT_small.dcm")
    base = f"/dicomweb/studies/{study.study_uid}/series/{series.series_uid}"
    first = client.get(f"{base}/metadata").get_json()
    assert len(list((Path(app.config["CACHE_ROOT"]) / "dicomjson").glob("??/*.json"))) == 1
    again = client.get(f"{base}/metadata").get_json()
    assert again == first and len(first) == 1
    (one,) = client.get(f"{base}/instances/{inst.sop_uid}/metadata").get_json()
    assert one == first[0]
    assert [(d["level"], d["what"], d["count"]) for d in _retrievals(study)] == [
        ("series", "metadata", 1), ("series", "metadata", 1), ("instance", "metadata", 1)]


def test_bulk_data_is_one_series_view_per_window(client, world):
    study = world["study"]
    series, inst = _series_of(study, "CT_small.dcm")
    uri = (f"/dicomweb/studies/{study.study_uid}/series/{series.series_uid}/instances/"
           f"{inst.sop_uid}/bulkdata/7FE00010")
    for _ in range(3):
        assert client.get(uri).status_code == 200
    views = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "study.series_viewed",
        AuditEvent.object_id == str(study.id))).all()
    assert [v.details for v in views] == [
        {"series_id": series.id, "mode": "full", "via": "dicomweb-bulkdata"}]
    # Not bulk data: a text element, an absent one, a malformed path.
    for path in ("00100010", "00191099", "zz", "7FE00010/0/00080100"):
        assert client.get(uri.replace("7FE00010", path)).status_code == 404
    assert client.get(uri, headers={"Accept": "application/dicom"}).status_code == 406


def test_large_files_are_verified_then_streamed_and_their_headers_read_without_pixels(
        client, world, monkeypatch):
    """Above STREAM_ABOVE a file is checked in one pass and sent in chunks in a second, and
    its metadata parsed with its large values left on disk: the same answers."""
    from qaportal.dicom.json_model import to_json
    from qaportal.dicomweb import served

    monkeypatch.setattr(served, "STREAM_ABOVE", 1000)
    monkeypatch.setattr(served, "_CHUNK", 4096)
    study = world["study"]
    response = client.get(f"/dicomweb/studies/{study.study_uid}", headers={"Accept": DICOM_ANY})
    assert [body for _, body in parse_multipart(response)] == [
        zeroed(p.read_bytes()) for p in world["paths"]]
    items = client.get(f"/dicomweb/studies/{study.study_uid}/metadata").get_json()
    for item, path in zip(items, world["paths"], strict=True):
        base = item["7FE00010"]["BulkDataURI"][: -len("7FE00010")]
        assert item == to_json(pydicom.dcmread(path), base), path.name
    _corrupt(_instances(study)[1])
    series, inst = _series_of(study, "MR_small.dcm")
    url = f"/dicomweb/studies/{study.study_uid}/series/{series.series_uid}"
    assert client.get(url, headers={"Accept": DICOM_ANY}).status_code == 500


# -- errors -------------------------------------------------------------------------------

def _corrupt(inst: Instance) -> None:
    path = image_store().path(inst.storage_key)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


def test_first_file_corrupt_is_a_clean_500(client, world, caplog):
    study = world["study"]
    first = _instances(study)[0]
    _corrupt(first)
    with caplog.at_level(logging.ERROR):
        response = client.get(f"/dicomweb/studies/{study.study_uid}",
                              headers={"Accept": DICOM_ANY})
    assert response.status_code == 500
    assert response.get_json() == {
        "error": "a stored image could not be read; the error is logged"}
    assert f"instance {first.id} cannot be served (StoredFileCorrupt)" in caplog.text
    assert study.study_uid not in caplog.text and "QUIXPAT" not in caplog.text
    assert _retrievals(study) == []
    meta = client.get(f"/dicomweb/studies/{study.study_uid}/metadata")
    assert meta.status_code == 500


def test_a_later_file_missing_stops_the_stream(client, world, caplog):
    study = world["study"]
    insts = _instances(study)
    image_store().path(insts[2].storage_key).unlink()
    response = client.get(f"/dicomweb/studies/{study.study_uid}",
                          headers={"Accept": DICOM_ANY}, buffered=False)
    assert response.status_code == 200
    received = b""
    with caplog.at_level(logging.ERROR), pytest.raises(Exception) as excinfo:  # noqa: B017
        for chunk in response.response:
            received += chunk
    assert type(excinfo.value).__name__ == "StoredFileMissing"
    assert f"instance {insts[2].id} not sent (StoredFileMissing)" in caplog.text
    # The two parts before it went out whole, and no closing delimiter was written.
    assert zeroed(world["paths"][1].read_bytes()) in received
    assert not received.rstrip().endswith(b"--")


# -- de-identified and blind callers --------------------------------------------------------

def _forbidden(world) -> list[bytes]:
    study = world["study"]
    terms = [b"QUIXPAT", b"WADOSENTINEL", b"QXWADO0042", study.study_uid.encode()]
    for inst in _instances(study):
        terms += [inst.sop_uid.encode(), inst.series.series_uid.encode()]
    return terms


def _assert_clean(data: bytes, terms: list[bytes], where: str) -> None:
    for term in terms:
        assert term not in data, f"{term!r} leaked in {where}"


@pytest.fixture
def deid_caller(world, client, auth):
    """A colleague with a de-identified grant, signed in instead of the owner."""
    from qaportal.studies.access import grant_access
    from tests.factories import make_user

    colleague = make_user(roles=("radiologist",))
    grant_access(world["study"], colleague, mode="deidentified",
                 source=("opinion_request", 4242), by=world["owner"])
    db.session.commit()
    auth.logout()
    assert auth.login(colleague).status_code == 302
    return colleague


@pytest.fixture
def blind_caller(world, client, auth):
    """A peer reviewer of the study (a blind role), with a full grant, signed in."""
    from qaportal.models import OriginalRead, utcnow
    from tests.factories import make_assignment, make_user

    study = world["study"]
    read = OriginalRead(study_id=study.id, reader_id=world["owner"].id, report_text="ok",
                        finalized_at=utcnow(), entered_by_id=world["owner"].id)
    db.session.add(read)
    db.session.flush()
    reviewer = make_user(roles=("reviewer",))
    make_assignment(read, reviewer, deidentified=False)
    db.session.commit()
    auth.logout()
    assert auth.login(reviewer).status_code == 302
    return reviewer


@pytest.mark.parametrize("caller", ["deid_caller", "blind_caller"])
def test_deidentified_callers_see_only_remapped_data(client, world, caller, request):
    study = world["study"]
    # The owner's header is cached first: the cache keeps copies apart by how they are served.
    assert client.get(f"/dicomweb/studies/{study.study_uid}/metadata").status_code == 200
    request.getfixturevalue(caller)
    ctx = deid_context(study)
    terms = _forbidden(world)
    # The original UIDs exist nowhere for this caller.
    series, inst = _series_of(study, "MR_small_RLE.dcm")
    orig = f"/dicomweb/studies/{study.study_uid}"
    for url in (orig, f"{orig}/metadata", f"{orig}/series/{series.series_uid}",
                f"{orig}/series/{series.series_uid}/instances/{inst.sop_uid}/bulkdata/7FE00010"):
        assert client.get(url).status_code == 404, url
    new_study = ctx.new_uid_for(study.study_uid)
    new_series, new_sop = ctx.new_uid_for(series.series_uid), ctx.new_uid_for(inst.sop_uid)
    assert client.get(f"/dicomweb/studies/{new_study}/series/{series.series_uid}"
                      ).status_code == 404
    base = f"/dicomweb/studies/{new_study}"
    for accept in (DICOM_ANY, DICOM_DEFAULT):
        response = client.get(base, headers={"Accept": accept})
        assert response.status_code == 200
        _assert_clean(response.get_data(), terms, f"{caller} retrieve {accept}")
        served = datasets(response)
        assert len(served) == len(SAMPLES)
        for ds, inst_row in zip(served, _instances(study), strict=True):
            assert ds.StudyInstanceUID == new_study
            assert ds.SeriesInstanceUID == ctx.new_uid_for(inst_row.series.series_uid)
            assert ds.SOPInstanceUID == ctx.new_uid_for(inst_row.sop_uid)
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            assert str(ds.PatientName) == study.pseudonym and ds.PatientIdentityRemoved == "YES"
    meta = client.get(f"{base}/series/{new_series}/metadata")
    assert meta.status_code == 200
    _assert_clean(meta.get_data(), terms, f"{caller} metadata")
    (item,) = meta.get_json()
    assert item["00100010"]["Value"] == [{"Alphabetic": study.pseudonym}]
    assert item["00080018"]["Value"] == [new_sop]
    uri = item["7FE00010"]["BulkDataURI"]
    assert f"/studies/{new_study}/series/{new_series}/instances/{new_sop}/bulkdata/" in uri
    bulk = client.get(uri)
    assert bulk.status_code == 200
    ((_, value),) = parse_multipart(bulk)
    decoded = pydicom.dcmread(world["paths"][SAMPLES.index("MR_small_RLE.dcm")])
    decoded.decompress(generate_instance_uid=False)
    assert value == decoded.PixelData
    # Dates are shifted as in the de-identified zip.
    original = pydicom.dcmread(world["paths"][0])
    if original.get("StudyDate"):
        assert item["00080020"]["Value"] != [original.StudyDate]
    details = _retrievals(study)[1:]  # the owner's first
    assert {d["served"] for d in details} == {"deidentified"}
    assert json.dumps(details).find(study.study_uid) < 0


def test_callers_without_access_get_404(client, world, auth):
    from tests.factories import make_user

    study = world["study"]
    series, inst = _series_of(study, "CT_small.dcm")
    stranger = make_user(roles=("radiologist",))
    db.session.commit()
    auth.logout()
    assert auth.login(stranger).status_code == 302
    base = f"/dicomweb/studies/{study.study_uid}"
    inst_url = f"{base}/series/{series.series_uid}/instances/{inst.sop_uid}"
    for url in (base, f"{base}/metadata", f"{base}/series/{series.series_uid}",
                f"{base}/series/{series.series_uid}/metadata", inst_url,
                f"{inst_url}/metadata", f"{inst_url}/bulkdata/7FE00010",
                "/dicomweb/studies/" + deid_context(study).new_uid_for(study.study_uid)):
        response = client.get(url)
        assert response.status_code == 404 and response.get_json() == {"error": "not found"}
    auth.logout()
    response = client.get(base)
    assert response.status_code == 401
    assert _retrievals(study) == []


# -- streaming ----------------------------------------------------------------------------

def test_a_large_study_streams_in_bounded_memory(client, login_as, tmp_path):
    import tracemalloc

    from qaportal.dicom import generate_ct_series

    owner = login_as("radiologist")
    paths = generate_ct_series(tmp_path / "ct", slices=200, base=sample("CT_small.dcm"))
    study = ingest(owner, paths)
    total = sum(p.stat().st_size for p in paths)
    tracemalloc.start()
    try:
        response = client.get(f"/dicomweb/studies/{study.study_uid}",
                              headers={"Accept": DICOM_ANY}, buffered=False)
        parts = size = 0
        for chunk in response.response:
            size += len(chunk)
            parts += chunk.count(b"Content-Type: application/dicom")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parts == 200 and size > total
    # About 0.75 MB here (a part or two, the rows, the request) against the study's 7 MB.
    assert peak < total / 5, (peak, total)


def test_dicomweb_client_retrieves_over_http(app, world, tmp_path):
    """The reference client, through a real HTTP server: study, metadata, bulk data."""
    import threading

    import requests
    from dicomweb_client.api import DICOMwebClient
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        app.config["BASE_URL"] = base  # dicomweb-client's Host header has no port
        session = requests.Session()
        from tests.factories import DEFAULT_PASSWORD

        assert session.post(f"{base}/login", data={"email": world["owner"].email,
                                                   "password": DEFAULT_PASSWORD},
                            allow_redirects=False).status_code == 302
        dw = DICOMwebClient(f"{base}/dicomweb", session=session)
        study = world["study"]
        served = dw.retrieve_study(study.study_uid)
        assert sorted(ds.SOPInstanceUID for ds in served) == sorted(
            i.sop_uid for i in _instances(study))
        assert {ds.file_meta.TransferSyntaxUID for ds in served} == {EVRLE}
        series, inst = _series_of(study, "MR_small_jp2klossless.dcm")
        as_stored = dw.retrieve_instance(study.study_uid, series.series_uid, inst.sop_uid,
                                         media_types=(("application/dicom", "*"),))
        assert as_stored.file_meta.TransferSyntaxUID == JP2K_LOSSLESS
        (meta,) = dw.retrieve_series_metadata(study.study_uid, series.series_uid)
        (pixels,) = dw.retrieve_bulkdata(meta["7FE00010"]["BulkDataURI"])
        original = pydicom.dcmread(io.BytesIO(zeroed(world["paths"][2].read_bytes())))
        original.decompress(generate_instance_uid=False)
        assert pixels == original.PixelData
    finally:
        server.shutdown()
        thread.join(timeout=5)
