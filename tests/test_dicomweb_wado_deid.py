"""WADO-RS for de-identified and blind callers, strangers, and the reference client."""

from __future__ import annotations

import io
import json

import pydicom
import pytest

from qaportal.dicomweb.access import deid_context
from qaportal.extensions import db
from tests.dicomweb_helpers import (
    DICOM_ANY,
    DICOM_DEFAULT,
    datasets,
    parse_multipart,
    zeroed,
)
from tests.dicomweb_world import (
    EVRLE,
    JP2K_LOSSLESS,
    SAMPLES,
    instances_of,
    retrievals,
    series_of,
)

# -- de-identified and blind callers --------------------------------------------------------

def _forbidden(world) -> list[bytes]:
    study = world["study"]
    terms = [b"QUIXPAT", b"WADOSENTINEL", b"QXWADO0042", study.study_uid.encode()]
    for inst in instances_of(study):
        terms += [inst.sop_uid.encode(), inst.series.series_uid.encode()]
    return terms


def _assert_clean(data: bytes, terms: list[bytes], where: str) -> None:
    for term in terms:
        assert term not in data, f"{term!r} leaked in {where}"


@pytest.mark.parametrize("caller", ["deid_caller", "blind_caller"])
def test_deidentified_callers_see_only_remapped_data(client, world, caller, request):
    study = world["study"]
    # The owner's header is cached first: the cache keeps copies apart by how they are served.
    assert client.get(f"/dicomweb/studies/{study.study_uid}/metadata").status_code == 200
    request.getfixturevalue(caller)
    ctx = deid_context(study)
    terms = _forbidden(world)
    # The original UIDs exist nowhere for this caller.
    series, inst = series_of(study, "MR_small_RLE.dcm")
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
        for ds, inst_row in zip(served, instances_of(study), strict=True):
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
    details = retrievals(study)[1:]  # the owner's first
    assert {d["served"] for d in details} == {"deidentified"}
    assert json.dumps(details).find(study.study_uid) < 0


def test_callers_without_access_get_404(client, world, auth):
    from tests.factories import make_user

    study = world["study"]
    series, inst = series_of(study, "CT_small.dcm")
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
    assert retrievals(study) == []


@pytest.mark.parametrize("auth_by", ["token", "session"])
def test_dicomweb_client_retrieves_over_http(app, world, auth_by):
    """The reference client, through a real HTTP server, with a read token (as a PACS) or a
    signed-in session: study, instance as stored, series metadata, bulk data."""
    import threading

    import requests
    import sqlalchemy as sa
    from dicomweb_client.api import DICOMwebClient
    from werkzeug.serving import make_server

    from qaportal.auth import tokens
    from qaportal.models import AuditEvent
    from tests.factories import DEFAULT_PASSWORD

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        app.config["BASE_URL"] = base  # dicomweb-client's Host header has no port
        owner = world["owner"]
        if auth_by == "token":
            new = tokens.create(owner, label="PACS", scopes=("read",), expires_days=30,
                                by=owner)
            db.session.commit()
            dw = DICOMwebClient(f"{base}/dicomweb",
                                headers={"Authorization": f"Bearer {new.secret}"})
        else:
            session = requests.Session()
            assert session.post(f"{base}/login", data={"email": owner.email,
                                                       "password": DEFAULT_PASSWORD},
                                allow_redirects=False).status_code == 302
            dw = DICOMwebClient(f"{base}/dicomweb", session=session)
        study = world["study"]
        served = dw.retrieve_study(study.study_uid)
        assert sorted(ds.SOPInstanceUID for ds in served) == sorted(
            i.sop_uid for i in instances_of(study))
        assert {ds.file_meta.TransferSyntaxUID for ds in served} == {EVRLE}
        series, inst = series_of(study, "MR_small_jp2klossless.dcm")
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
    db.session.expire_all()
    rows = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action.in_(
        ("study.retrieved", "study.series_viewed"))).order_by(AuditEvent.seq)).all()
    assert [(r.action, r.actor_id, (r.details or {}).get("level")) for r in rows] == [
        ("study.retrieved", owner.id, "study"), ("study.retrieved", owner.id, "instance"),
        ("study.retrieved", owner.id, "series"), ("study.series_viewed", owner.id, None)]
