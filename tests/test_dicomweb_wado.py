"""WADO-RS: instances (transfer syntaxes, streaming), metadata, bulk data, access, audit."""

from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest

from qaportal.jobs import tasks
from qaportal.studies.storage import image_store
from tests.dicomweb_helpers import (
    DICOM_ANY,
    DICOM_DEFAULT,
    datasets,
    ingest,
    parse_multipart,
    zeroed,
)
from tests.dicomweb_world import (
    EVRLE,
    JP2K_LOSSLESS,
    SAMPLES,
    corrupt,
    empty_metadata_cache,
    instances_of,
    retrievals,
    series_of,
)
from tests.studyfiles import sample

# -- instances ----------------------------------------------------------------------------

def test_transfer_syntax_star_serves_each_file_as_stored(client, world):
    study = world["study"]
    response = client.get(f"/dicomweb/studies/{study.study_uid}", headers={"Accept": DICOM_ANY})
    assert response.status_code == 200
    ctype = response.headers["Content-Type"]
    assert 'type="application/dicom"' in ctype and "boundary=" in ctype
    assert "transfer-syntax" not in ctype  # the parts differ
    assert response.headers["Cache-Control"] == "private, no-store"
    parts = parse_multipart(response)
    assert len(parts) == len(SAMPLES)
    for (headers, body), path, inst in zip(parts, world["paths"], instances_of(study),
                                           strict=True):
        assert body == zeroed(path.read_bytes())
        syntax = str(pydicom.dcmread(path).file_meta.TransferSyntaxUID)
        assert headers["content-type"] == f"application/dicom; transfer-syntax={syntax}"
        assert headers["content-location"].endswith(
            f"/series/{inst.series.series_uid}/instances/{inst.sop_uid}")
    assert retrievals(study) == [{"level": "study", "what": "instances", "count": 6,
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
    series, inst = series_of(study, "CT_small.dcm")
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
    series, inst = series_of(study, "MR_small_jp2klossless.dcm")
    response = client.get(f"/dicomweb/studies/{study.study_uid}/series/{series.series_uid}"
                          f"/instances/{inst.sop_uid}", headers={"Accept": jp2k})
    assert response.status_code == 200
    assert response.headers["Content-Type"].endswith(f"transfer-syntax={JP2K_LOSSLESS}")
    (ds,) = datasets(response)
    assert ds.file_meta.TransferSyntaxUID == JP2K_LOSSLESS
    assert len(retrievals(study)) == 1  # refusals are not retrievals


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
    series, inst = series_of(study, "CT_small.dcm")
    accept = f"{DICOM_ANY}, {DICOM_DEFAULT}; transfer-syntax={EVRLE}; q=0"
    assert client.get(f"{url}/series/{series.series_uid}",
                      headers={"Accept": accept}).status_code == 406


def test_levels_and_unknown_uids(client, world):
    study = world["study"]
    series, inst = series_of(study, "MR_small_RLE.dcm")
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
    details = retrievals(study)
    assert [(d["level"], d["count"], d.get("series_id"), d.get("instance_id"))
            for d in details] == [("series", 1, series.id, None),
                                  ("instance", 1, series.id, inst.id)]


# -- errors -------------------------------------------------------------------------------

def test_first_file_corrupt_is_a_clean_500(client, world, caplog, app):
    study = world["study"]
    first = instances_of(study)[0]
    tasks.warm_metadata(study.id, world["owner"].id)  # the worker cached the headers
    corrupt(first)
    with caplog.at_level(logging.ERROR):
        response = client.get(f"/dicomweb/studies/{study.study_uid}",
                              headers={"Accept": DICOM_ANY})
    assert response.status_code == 500
    assert response.get_json() == {
        "error": "a stored image could not be read; the error is logged"}
    assert f"instance {first.id} cannot be served (StoredFileCorrupt)" in caplog.text
    assert study.study_uid not in caplog.text and "QUIXPAT" not in caplog.text
    assert retrievals(study) == []
    # The headers cached after ingest (from the verified file) are still served; computed
    # from the file now, they fail the same way.
    assert client.get(f"/dicomweb/studies/{study.study_uid}/metadata").status_code == 200
    empty_metadata_cache(app)
    meta = client.get(f"/dicomweb/studies/{study.study_uid}/metadata")
    assert meta.status_code == 500


def test_a_later_file_missing_stops_the_stream(client, world, caplog):
    study = world["study"]
    insts = instances_of(study)
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


