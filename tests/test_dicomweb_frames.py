"""WADO-RS frames, rendered and thumbnail resources: real files from pydicom's test data and
pydicom-data, through the portal's HTTP endpoints and through dicomweb-client."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
import sqlalchemy as sa
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import get_frame
from pydicom.pixels import pixel_array
from requests.structures import CaseInsensitiveDict

from qaportal.dicom import generate_ct_series
from qaportal.dicomweb.access import deid_context, find_instance, find_series, find_study
from qaportal.dicomweb.negotiate import Offer, choose
from qaportal.extensions import db
from qaportal.models import AuditEvent, Instance, Study, User
from qaportal.studies import jobs
from qaportal.studies.access import grant_access
from tests.factories import make_user

EXPLICIT_LE = "1.2.840.10008.1.2.1"


def data_file(name: str) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = get_testdata_file(name)
    assert path, f"test file {name} is not installed (pydicom-data supplies it)"
    return Path(str(path))


def ingest(owner, *paths: Path) -> Study:
    batch = jobs.new_batch(owner, "test")
    run = jobs.import_files([(Path(p).name, p) for p in paths], owner.id, batch.id)
    assert run.stored == len(paths), run.errors
    (study_id,) = run.study_ids
    return db.session.get(Study, study_id)


def first_instance(study: Study) -> Instance:
    return study.series[0].instances[0]


def instance_url(study: Study, inst: Instance, ctx=None) -> str:
    uid = ctx.new_uid_for if ctx is not None else (lambda u: u)
    return (f"/dicomweb/studies/{uid(study.study_uid)}/series/{uid(inst.series.series_uid)}"
            f"/instances/{uid(inst.sop_uid)}")


def parts(response) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart/related answer into (headers, body) pairs."""
    ctype = response.headers["Content-Type"]
    assert ctype.startswith("multipart/related"), ctype
    boundary = ctype.split("boundary=")[1].split(";")[0].strip('"').encode()
    body = response.get_data()
    out = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk[2:].partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        out.append((headers, data[:-2]))  # the CRLF before the next boundary
    return out


def image(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def decoded(path: Path, index: int) -> bytes:
    arr = np.ascontiguousarray(pixel_array(str(path), index=index))
    return arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def encapsulated(path: Path, index: int) -> bytes:
    ds = dcmread(path)
    return get_frame(ds.PixelData, index, number_of_frames=int(ds.get("NumberOfFrames", 1)))


class FlaskAdapter(requests.adapters.BaseAdapter):
    """Send dicomweb-client's requests to the Flask test client (same session cookie)."""

    def __init__(self, client) -> None:
        super().__init__()
        self.client = client

    def send(self, request, **kwargs):
        url = urlsplit(request.url)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        resp = self.client.open(url.path, query_string=url.query, method=request.method,
                                headers=headers, data=request.body)
        out = requests.Response()
        out.status_code = resp.status_code
        out.headers = CaseInsensitiveDict(resp.headers)
        out._content = resp.get_data()
        out.raw = io.BytesIO(out._content)
        out.url, out.request, out.encoding = request.url, request, None
        return out

    def close(self) -> None:
        pass


def web_client(client) -> DICOMwebClient:
    session = requests.Session()
    session.mount("http://portal.test/", FlaskAdapter(client))
    return DICOMwebClient(url="http://portal.test/dicomweb", session=session)


# -- frames --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm",
                                  "MR_small_implicit.dcm"])
def test_native_frame_is_the_pixel_data(client, login_as, name):
    owner = login_as("radiologist")
    path = data_file(name)
    study = ingest(owner, path)
    response = client.get(instance_url(study, first_instance(study)) + "/frames/1")
    assert response.status_code == 200, response.data[:300]
    assert response.headers["Content-Type"].startswith(
        'multipart/related; type="application/octet-stream"')
    ((headers, body),) = parts(response)
    assert headers["Content-Type"] == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    assert headers["Content-Location"].endswith("/frames/1")
    # Little endian whatever the stored byte order: the array's bytes.
    assert body == decoded(path, 0)
    if name == "CT_small.dcm":
        assert body == dcmread(path).PixelData
    assert response.headers["Cache-Control"].startswith("private, max-age=")


def test_frames_of_a_multiframe_file_in_the_order_asked(client, login_as):
    owner = login_as("radiologist")
    path = data_file("emri_small.dcm")  # 10 frames of 64 x 64, 16 bits
    study = ingest(owner, path)
    url = instance_url(study, first_instance(study))
    pixels, size = dcmread(path).PixelData, 64 * 64 * 2
    (_, second), = parts(client.get(url + "/frames/2"))
    assert second == pixels[size : 2 * size]
    got = [body for _, body in parts(client.get(url + "/frames/10,1,5"))]
    assert got == [pixels[9 * size :], pixels[:size], pixels[4 * size : 5 * size]]


COMPRESSED = [  # file, frame index, stored transfer syntax, its media type
    ("MR_small_jp2klossless.dcm", 0, "1.2.840.10008.1.2.4.90", "image/jp2"),
    ("693_J2KI.dcm", 0, "1.2.840.10008.1.2.4.91", "image/jp2"),
    ("MR_small_RLE.dcm", 0, "1.2.840.10008.1.2.5", "image/dicom-rle"),
    ("SC_rgb_rle_2frame.dcm", 1, "1.2.840.10008.1.2.5", "image/dicom-rle"),
    ("SC_rgb_jpeg_gdcm.dcm", 0, "1.2.840.10008.1.2.4.70", "image/jpeg"),
    ("examples_ybr_color.dcm", 1, "1.2.840.10008.1.2.4.50", "image/jpeg"),
    ("JPGExtended.dcm", 0, "1.2.840.10008.1.2.4.51", "image/jpeg"),
]


@pytest.mark.parametrize(("name", "index", "syntax", "media"), COMPRESSED)
def test_compressed_frame_decoded_or_as_stored(client, login_as, name, index, syntax, media):
    owner = login_as("radiologist")
    path = data_file(name)
    study = ingest(owner, path)
    url = instance_url(study, first_instance(study)) + f"/frames/{index + 1}"
    # Uncompressed by default: pydicom's decode of that frame, little endian.
    for accept in (None, 'multipart/related; type="application/octet-stream"'):
        resp = client.get(url, headers={"Accept": accept} if accept else {})
        assert resp.status_code == 200, resp.data[:300]
        ((headers, body),) = parts(resp)
        assert headers["Content-Type"].endswith(f"transfer-syntax={EXPLICIT_LE}")
        assert body == decoded(path, index)
    # The stored bytes when the stored syntax's media type is asked for...
    resp = client.get(url, headers={"Accept": f'multipart/related; type="{media}"'})
    assert resp.status_code == 200, resp.data[:300]
    assert resp.headers["Content-Type"].startswith(f'multipart/related; type="{media}"')
    ((headers, body),) = parts(resp)
    assert headers["Content-Type"] == f"{media}; transfer-syntax={syntax}"
    assert body == encapsulated(path, index)
    # ...or any syntax at all, as OHIF asks.
    resp = client.get(url, headers={"Accept": 'multipart/related; type="application/'
                                              'octet-stream"; transfer-syntax=*'})
    ((headers, body),) = parts(resp)
    assert headers["Content-Type"] == f"application/octet-stream; transfer-syntax={syntax}"
    assert body == encapsulated(path, index)
    # Another compressed syntax is not offered: no transcoding.
    resp = client.get(url, headers={"Accept": 'multipart/related; type="image/jls"'})
    assert resp.status_code == 406 and resp.is_json


def test_frame_errors_and_not_acceptable(client, login_as):
    owner = login_as("radiologist")
    study = ingest(owner, data_file("CT_small.dcm"))
    url = instance_url(study, first_instance(study))
    for bad in ("0", "2", "1,1", "x", "1,", "-1"):
        resp = client.get(f"{url}/frames/{bad}")
        assert resp.status_code == 400 and resp.is_json, bad
    resp = client.get(url + "/frames/1", headers={"Accept": 'multipart/related; type="image/jp2"'})
    assert resp.status_code == 406 and "application/octet-stream" in resp.get_json()["error"]
    resp = client.get(url + "/frames/1", headers={"Accept": "application/dicom+json"})
    assert resp.status_code == 406
    # q=0 refuses what it names; the other type still answers.
    resp = client.get(url + "/frames/1", headers={
        "Accept": 'multipart/related; type="application/octet-stream"; q=0, */*'})
    assert resp.status_code == 406
    base = f"/dicomweb/studies/{study.study_uid}/series/{study.series[0].series_uid}"
    assert client.get(base + "/instances/1.2.3/frames/1").status_code == 404
    assert client.get(base.replace(study.study_uid, "1.2.3") + "/rendered").status_code == 404


def test_conditional_get_answers_304(client, login_as):
    owner = login_as("radiologist")
    study = ingest(owner, data_file("CT_small.dcm"))
    for suffix in ("/frames/1", "/rendered", "/thumbnail"):
        url = instance_url(study, first_instance(study)) + suffix
        first = client.get(url)
        assert first.status_code == 200 and first.headers["ETag"]
        assert "Accept" in first.headers["Vary"]
        again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304 and not again.data
        other = client.get(url + "?viewport=32,32" if suffix != "/frames/1" else url,
                           headers={"If-None-Match": '"other"'})
        assert other.status_code == 200


# -- rendered and thumbnail ------------------------------------------------------------------

def test_rendered_jpeg_by_default_png_on_request_window_and_viewport(client, login_as):
    owner = login_as("radiologist")
    study = ingest(owner, data_file("CT_small.dcm"))  # 128 x 128
    url = instance_url(study, first_instance(study)) + "/rendered"
    default = client.get(url)
    assert default.status_code == 200 and default.mimetype == "image/jpeg"
    assert image(default.data).size == (128, 128)
    png = client.get(url, headers={"Accept": "image/png"})
    assert png.mimetype == "image/png" and image(png.data).size == (128, 128)
    assert client.get(url, headers={"Accept": "image/*;q=0.5, image/png"}).mimetype == "image/png"

    def pixels(query: str) -> np.ndarray:
        resp = client.get(url + query, headers={"Accept": "image/png"})
        assert resp.status_code == 200, resp.data[:200]
        return np.asarray(image(resp.data))

    brain, bone = pixels("?window=40,80"), pixels("?window=400,1800")
    assert not np.array_equal(brain, bone)
    assert (brain == 255).sum() > (bone == 255).sum()
    assert not np.array_equal(pixels("?window=40,80,sigmoid"), brain)
    assert pixels("?viewport=64,32").shape == (32, 32)  # aspect kept: fits the smaller side
    assert pixels("?viewport=200,300").shape == (200, 200)
    crop = pixels("?viewport=100,100,0,0,64,32")  # the top half of the left half, scaled
    assert crop.shape == (50, 100)
    flipped = pixels("?viewport=64,32,64,0,-64,32")
    assert np.array_equal(flipped, pixels("?viewport=64,32,0,0,64,32")[:, ::-1])
    small = client.get(url + "?quality=10")
    big = client.get(url + "?quality=95")
    assert small.mimetype == "image/jpeg" and len(small.data) < len(big.data)
    for bad in ("?window=40", "?window=40,0", "?window=a,b", "?window=40,80,cubic",
                "?viewport=0,10", "?viewport=10,10,1", "?viewport=10,10,500,500,10,10",
                "?quality=0", "?quality=x"):
        assert client.get(url + bad).status_code == 400, bad
    assert client.get(url, headers={"Accept": "application/dicom"}).status_code == 406


def test_rendered_frames_series_and_study(client, login_as, tmp_path):
    owner = login_as("radiologist")
    paths = generate_ct_series(tmp_path / "ct", slices=4, base=data_file("CT_small.dcm"))
    study = ingest(owner, *paths)
    series = study.series[0]
    resp = client.get(f"/dicomweb/studies/{study.study_uid}/series/{series.series_uid}"
                      "/rendered?viewport=64,64")
    assert resp.status_code == 200, resp.data[:300]
    assert resp.headers["Content-Type"].startswith('multipart/related; type="image/jpeg"')
    got = parts(resp)
    assert len(got) == 4
    assert all(h["Content-Type"] == "image/jpeg" and image(b).size == (64, 64) for h, b in got)
    # Anatomical order: by slice position.
    by_uid = {i.sop_uid: i.slice_position for i in series.instances}
    positions = [by_uid[h["Content-Location"].split("/instances/")[1].split("/")[0]]
                 for h, _ in got]
    assert positions == sorted(positions)
    study_resp = client.get(f"/dicomweb/studies/{study.study_uid}/rendered",
                            headers={"Accept": 'multipart/related; type="image/png"'})
    assert [image(b).format for _, b in parts(study_resp)] == ["PNG"] * 4
    assert client.get(f"/dicomweb/studies/{study.study_uid}/rendered",
                      headers={"Accept": "image/jpeg"}).status_code == 406

    multi = ingest(owner, data_file("emri_small.dcm"))
    url = instance_url(multi, first_instance(multi))
    one = client.get(url + "/frames/3/rendered", headers={"Accept": "image/png"})
    assert one.mimetype == "image/png" and image(one.data).size == (64, 64)
    first = client.get(url + "/frames/1/rendered", headers={"Accept": "image/png"})
    assert one.data != first.data
    assert client.get(url + "/rendered", headers={"Accept": "image/png"}).data == first.data
    several = client.get(url + "/frames/1,3/rendered")
    assert [b for _, b in parts(several)][1] == client.get(url + "/frames/3/rendered").data
    assert client.get(url + "/frames/11/rendered").status_code == 400


def test_thumbnails_at_every_level(client, login_as, tmp_path):
    owner = login_as("radiologist")
    paths = generate_ct_series(tmp_path / "ct", slices=3, base=data_file("693_UNCR.dcm"))
    study = ingest(owner, *paths)  # 512 x 512
    series = study.series[0]
    inst = first_instance(study)
    base = f"/dicomweb/studies/{study.study_uid}"
    own = instance_url(study, inst)
    urls = [base + "/thumbnail", f"{base}/series/{series.series_uid}/thumbnail",
            own + "/thumbnail", own + "/frames/1/thumbnail"]
    for url in urls:
        resp = client.get(url)
        assert resp.status_code == 200 and resp.mimetype == "image/jpeg", url
        assert image(resp.data).size == (128, 128)
        sized = client.get(url + "?viewport=40,20", headers={"Accept": "image/png"})
        assert sized.mimetype == "image/png" and image(sized.data).size == (20, 20)
    # The study's and the series' thumbnail is the middle slice.
    middle = sorted(series.instances, key=lambda i: i.slice_position)[1]
    assert client.get(urls[0]).data == client.get(instance_url(study, middle) + "/thumbnail").data
    assert client.get(instance_url(study, inst) + "/frames/1,2/thumbnail").status_code == 400


# -- access and audit --------------------------------------------------------------------------

def test_access_deidentified_caller_and_strangers(client, auth, login_as):
    owner = login_as("radiologist")
    study = ingest(owner, data_file("MR_small_RLE.dcm"))
    inst = first_instance(study)
    reader = make_user(roles=("radiologist",))
    stranger = make_user(roles=("radiologist",))
    grant_access(study, reader, mode="deidentified", source=("test", 1), by=owner)
    db.session.commit()
    auth.logout()
    ctx = deid_context(study)
    remapped, original = instance_url(study, inst, ctx), instance_url(study, inst)
    suffixes = ["/frames/1", "/rendered", "/thumbnail", "/frames/1/rendered"]
    auth.login(reader)
    for suffix in suffixes:
        assert client.get(original + suffix).status_code == 404, suffix
        resp = client.get(remapped + suffix)
        assert resp.status_code == 200, (suffix, resp.data[:200])
        assert study.study_uid.encode() not in resp.data
        assert inst.sop_uid not in str(resp.headers)
    (headers, body), = parts(client.get(remapped + "/frames/1"))
    assert body == decoded(data_file("MR_small_RLE.dcm"), 0)
    assert ctx.new_uid_for(inst.sop_uid) in headers["Content-Location"]
    series_url = remapped.split("/instances/")[0]
    assert client.get(series_url + "/rendered").status_code == 200
    assert client.get(series_url.split("/series/")[0] + "/thumbnail").status_code == 200
    auth.logout()
    auth.login(stranger)
    for suffix in suffixes:
        assert client.get(original + suffix).status_code == 404
        assert client.get(remapped + suffix).status_code == 404
    auth.logout()
    assert client.get(original + "/frames/1").status_code == 401


def test_audit_once_per_series_not_per_frame(client, login_as, tmp_path):
    owner = login_as("radiologist")
    study = ingest(owner, *generate_ct_series(tmp_path / "ct", slices=3,
                                              base=data_file("CT_small.dcm")))
    series = study.series[0]
    for inst in series.instances:
        url = instance_url(study, inst)
        for suffix in ("/frames/1", "/rendered", "/thumbnail", "/frames/1/rendered"):
            assert client.get(url + suffix).status_code == 200
    assert client.get(f"/dicomweb/studies/{study.study_uid}/rendered").status_code == 200
    events = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "study.series_viewed", AuditEvent.object_id == str(study.id))).all()
    assert len(events) == 1
    assert events[0].details["series_id"] == series.id and events[0].details["via"] == "dicomweb"


# -- dicomweb-client ---------------------------------------------------------------------------

def test_dicomweb_client_retrieves_frames_and_rendered(client, login_as):
    owner = login_as("radiologist")
    path = data_file("MR_small_jp2klossless.dcm")
    study = ingest(owner, path)
    inst = first_instance(study)
    uids = (study.study_uid, inst.series.series_uid, inst.sop_uid)
    dw = web_client(client)
    (frame,) = dw.retrieve_instance_frames(*uids, frame_numbers=[1])
    assert frame == decoded(path, 0)
    (frame,) = dw.retrieve_instance_frames(*uids, frame_numbers=[1],
                                           media_types=("application/octet-stream",))
    assert frame == decoded(path, 0)
    (frame,) = dw.retrieve_instance_frames(
        *uids, frame_numbers=[1], media_types=(("image/jp2", "1.2.840.10008.1.2.4.90"),))
    assert frame == encapsulated(path, 0)
    with pytest.raises(requests.HTTPError) as err:
        dw.retrieve_instance_frames(*uids, frame_numbers=[1],
                                    media_types=(("image/jp2", "1.2.840.10008.1.2.4.91"),))
    assert err.value.response.status_code == 406
    jpeg = dw.retrieve_instance_rendered(*uids, media_types=("image/jpeg",))
    assert image(jpeg).format == "JPEG"
    png = dw.retrieve_instance_frames_rendered(*uids, frame_numbers=[1],
                                               media_types=("image/png",),
                                               params={"window": "600,1200"})
    assert image(png).format == "PNG" and image(png).size == (64, 64)


# -- pieces ------------------------------------------------------------------------------------

def test_negotiation_treats_the_type_parameter_as_a_range():
    native = Offer("multipart/related", {"type": "application/octet-stream"})
    jp2 = Offer("multipart/related", {"type": "image/jp2"})
    assert choose('multipart/related; type="*/*"', [native, jp2]) == native
    assert choose('multipart/related; type="image/*"', [native, jp2]) == jp2
    assert choose('multipart/related; type="image/jpeg"', [native, jp2]) is None


def test_deidentified_instance_lookup_loads_only_the_match(app, tmp_path):
    owner, reader = make_user(roles=("radiologist",)), make_user(roles=("radiologist",))
    db.session.commit()
    study = ingest(owner, *generate_ct_series(tmp_path / "ct", slices=6,
                                              base=data_file("CT_small.dcm")))
    grant_access(study, reader, mode="deidentified", source=("test", 1), by=owner)
    db.session.commit()
    ctx = deid_context(study)
    series = study.series[0]
    wanted = series.instances[3]
    wanted_id, reader_id = wanted.id, reader.id
    uids = [ctx.new_uid_for(u) for u in (study.study_uid, series.series_uid, wanted.sop_uid)]
    db.session.expunge_all()
    target = find_study(db.session.get(User, reader_id), uids[0])
    assert target.deidentified
    series = find_series(target, uids[1])
    loaded: list[int] = []

    def on_load(obj, context):
        loaded.append(obj.id)

    sa.event.listen(Instance, "load", on_load)
    try:
        found = find_instance(target, series, uids[2])
    finally:
        sa.event.remove(Instance, "load", on_load)
    assert found.id == wanted_id
    # Only the matching row became an object: the others were hashed from (id, UID) pairs.
    assert loaded == [wanted_id]


def test_own_study_lookup_asks_for_no_grants(app):
    owner = make_user(roles=("radiologist",))
    db.session.commit()
    study = ingest(owner, data_file("CT_small.dcm"))
    study_uid = study.study_uid
    assert owner.has_role("radiologist")  # user and roles loaded before counting
    statements: list[str] = []

    def listen(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", listen)
    try:
        target = find_study(owner, study_uid)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", listen)
    assert target.study.id == study.id and not target.deidentified
    assert len(statements) == 1  # the visible-studies select; no grant or blind-role lookup


def test_api_token_caller_retrieves_frames_and_thumbnails(app, client):
    from qaportal.auth import tokens

    owner = make_user(roles=("radiologist",))
    db.session.commit()
    path = data_file("693_J2KI.dcm")
    study = ingest(owner, path)
    inst = first_instance(study)
    secret = tokens.create(owner, label="PACS", scopes=("read",), expires_days=30,
                           by=owner).secret
    db.session.commit()
    dw = web_client(client)
    dw._session.headers["Authorization"] = f"Bearer {secret}"
    uids = (study.study_uid, inst.series.series_uid, inst.sop_uid)
    (frame,) = dw.retrieve_instance_frames(*uids, frame_numbers=[1])
    assert frame == decoded(path, 0)
    (stored,) = dw.retrieve_instance_frames(*uids, frame_numbers=[1],
                                            media_types=("image/jp2",))
    assert stored == encapsulated(path, 0)
    url = instance_url(study, inst) + "/thumbnail"
    resp = client.get(url, headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 200 and image(resp.data).size == (128, 128)
    assert client.get(url, headers={"Authorization": "Bearer qap_wrong"}).status_code == 401
    viewed = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "study.series_viewed")).all()
    assert [(e.actor_id, e.details["via"]) for e in viewed] == [(owner.id, "dicomweb")]


def test_large_answers_stream_part_by_part(client, login_as):
    owner = login_as("radiologist")
    path = data_file("color3d_jpeg_baseline.dcm")  # 120 frames of 640 x 480 RGB, JPEG
    study = ingest(owner, path)
    url = instance_url(study, first_instance(study)) + "/frames/" + ",".join(
        str(n) for n in range(1, 12))  # 11 x 900 KiB decoded: past the buffered size
    resp = client.get(url)
    assert resp.status_code == 200 and resp.is_streamed
    assert "Content-Length" not in resp.headers
    got = parts(resp)
    assert [h["Content-Location"].rsplit("/", 1)[1] for h, _ in got] == [
        str(n) for n in range(1, 12)]
    assert got[10][1] == decoded(path, 10)


def test_a_stored_file_failing_its_checksum_is_never_served(client, login_as):
    from qaportal.studies.storage import image_store

    owner = login_as("radiologist")
    study = ingest(owner, data_file("CT_small.dcm"))
    inst = first_instance(study)
    stored = image_store().path(inst.storage_key)
    data = bytearray(stored.read_bytes())
    data[-500] ^= 0xFF  # one pixel byte changed on disk
    stored.write_bytes(bytes(data))
    for suffix in ("/frames/1", "/rendered", "/thumbnail"):
        resp = client.get(instance_url(study, inst) + suffix)
        assert resp.status_code == 500 and resp.is_json, suffix
        assert "integrity" in resp.get_json()["error"]
