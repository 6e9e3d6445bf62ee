"""WADO-RS metadata (DICOM JSON, BulkDataURIs, cache) and bulk data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import sqlalchemy as sa

from qaportal.dicom.json_model import to_json
from qaportal.dicomweb import served
from qaportal.dicomweb.access import deid_context
from qaportal.extensions import db
from qaportal.jobs import queue, tasks
from qaportal.models import AuditEvent
from qaportal.studies import jobs
from tests.dicomweb_helpers import (
    DICOM_ANY,
    OCTET,
    parse_multipart,
    zeroed,
)
from tests.dicomweb_world import (
    EVRLE,
    SAMPLES,
    corrupt,
    instances_of,
    retrievals,
    series_of,
)
from tests.factories import make_user


def cached_headers(app) -> list[Path]:
    return sorted((Path(app.config["CACHE_ROOT"]) / "dicomjson").glob("??/*.json"))

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
    series, inst = series_of(study, "CT_small.dcm")
    base = f"/dicomweb/studies/{study.study_uid}/series/{series.series_uid}"
    first = client.get(f"{base}/metadata").get_json()
    assert len(cached_headers(app)) == 1
    again = client.get(f"{base}/metadata").get_json()
    assert again == first and len(first) == 1
    (one,) = client.get(f"{base}/instances/{inst.sop_uid}/metadata").get_json()
    assert one == first[0]
    assert [(d["level"], d["what"], d["count"]) for d in retrievals(study)] == [
        ("series", "metadata", 1), ("series", "metadata", 1), ("instance", "metadata", 1)]


def test_bulk_data_is_one_series_view_per_window(client, world):
    study = world["study"]
    series, inst = series_of(study, "CT_small.dcm")
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


def forbid_header_reads(monkeypatch) -> None:
    """From now on, computing a header (reading a file for its metadata) fails the test."""
    def no_file_read(*args):
        raise AssertionError("a header was computed")

    monkeypatch.setattr(served.Server, "header", no_file_read)


def _warm_jobs(app) -> list[tuple]:
    return [tuple(t.args) for t in queue(app).huey.pending() if t.name == "qaportal.warm_metadata"]


def test_ingest_queues_the_headers_of_the_new_instances(client, world, app, monkeypatch):
    """The import job queues the caching of what it stored (the worker computes it, not the
    upload's request): the first viewer to open a new study (OHIF asks for all of a
    series' headers at once) reads no file."""
    study, owner = world["study"], world["owner"]
    assert cached_headers(app) == []  # nothing computed in the import's own time
    assert _warm_jobs(app) == [(study.id, owner.id)]
    tasks.warm_metadata(study.id, owner.id)  # as the worker runs it
    assert len(cached_headers(app)) == len(SAMPLES)

    forbid_header_reads(monkeypatch)
    items = client.get(f"/dicomweb/studies/{study.study_uid}/metadata").get_json()
    for item, path in zip(items, world["paths"], strict=True):
        base = item["7FE00010"]["BulkDataURI"][: -len("7FE00010")]
        assert item == to_json(pydicom.dcmread(path), base), path.name
    # The same files again are duplicates: nothing stored, nothing queued or computed.
    queue(app).huey.flush()
    run = jobs.import_files([(p.name, p) for p in world["paths"]], owner.id,
                            jobs.new_batch(owner, "cli").id)
    assert (run.stored, run.duplicates) == (0, len(SAMPLES))
    assert _warm_jobs(app) == []
    assert served.warm_served(study.id, owner.id) == 0  # all cached: nothing to compute


@pytest.mark.parametrize("caller", ["deid_caller", "blind_caller"])
def test_a_grant_queues_the_headers_as_its_user_will_be_served_them(client, world, app, caller,
                                                                   request, monkeypatch):
    """Granting a study (a de-identified colleague, a blind reviewer) queues a job that
    computes the de-identified headers, so their first open reads no file either."""
    study = world["study"]
    queue(app).huey.flush()  # the ingest's own job (the owner's headers)
    user = request.getfixturevalue(caller)  # granted, committed, signed in
    assert _warm_jobs(app) == [(study.id, user.id)]
    tasks.warm_metadata(study.id, user.id)  # as the worker runs it
    assert len(cached_headers(app)) == len(SAMPLES)

    forbid_header_reads(monkeypatch)
    served_uid = deid_context(study).new_uid_for(study.study_uid)
    items = client.get(f"/dicomweb/studies/{served_uid}/metadata").get_json()
    assert len(items) == len(SAMPLES)
    assert study.study_uid not in str(items) and "QUIXPAT" not in str(items)
    # Nothing for someone who does not reach the study, or a deactivated user.
    stranger = make_user(roles=("radiologist",))
    assert served.warm_served(study.id, stranger.id) == 0
    user.active = False
    assert served.warm_served(study.id, user.id) == 0


def test_large_files_are_verified_then_streamed_and_their_headers_read_without_pixels(
        client, world, monkeypatch, app):
    """Above STREAM_ABOVE a file is checked in one pass and sent in chunks in a second, and
    its metadata parsed with its large values left on disk: the same answers."""
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
    corrupt(instances_of(study)[1])
    series, inst = series_of(study, "MR_small.dcm")
    url = f"/dicomweb/studies/{study.study_uid}/series/{series.series_uid}"
    assert client.get(url, headers={"Accept": DICOM_ANY}).status_code == 500

