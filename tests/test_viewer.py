"""The viewer: frame order, rendering through HTTP, the frame cache, integrity, access, audit."""

from __future__ import annotations

import io
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file

from qaportal.dicom import generate_ct_series
from qaportal.disk_cache import DiskCache
from qaportal.extensions import db
from qaportal.models import AuditEvent, Instance, Series, Study
from qaportal.studies import jobs
from qaportal.studies.access import grant_access
from qaportal.studies.frames import ordered_frames, parse_window, round_window
from qaportal.studies.storage import image_store
from qaportal.studies.viewer_routes import frame_renderer
from tests.factories import make_user


def data_file(name: str) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = get_testdata_file(name)
    assert path, f"test file {name} is not installed"
    return Path(str(path))


def import_paths(owner, paths) -> Study:
    """Ingest real files for owner through the import job; return the (single) study."""
    batch = jobs.new_batch(owner, "test")
    run = jobs.import_files([(Path(p).name, p) for p in paths], owner.id, batch.id)
    assert run.stored == len(paths), run.errors
    (study_id,) = run.study_ids
    return db.session.get(Study, study_id)


def first_series(study: Study) -> Series:
    return study.series[0]


def frames_json(client, study: Study, series: Series | None = None) -> dict:
    series = series or first_series(study)
    response = client.get(f"/studies/{study.id}/series/{series.id}/frames.json")
    assert response.status_code == 200, response.data[:300]
    return response.get_json()


def png_array(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture
def ct_series(tmp_path) -> list[Path]:
    """Eight CT slices whose instance numbers are shuffled against their positions."""
    paths = generate_ct_series(tmp_path / "ct", slices=8, base=data_file("CT_small.dcm"))
    numbers = list(range(1, 9))
    random.Random(7).shuffle(numbers)
    for path, number in zip(paths, numbers, strict=True):
        ds = dcmread(path)
        ds.InstanceNumber = number
        ds.save_as(path)
    random.Random(3).shuffle(paths)  # ingest order must not matter either
    return paths


def test_frames_follow_anatomical_order_not_instance_numbers(client, login_as, ct_series):
    owner = login_as("radiologist")
    study = import_paths(owner, ct_series)
    data = frames_json(client, study)
    frames = data["frames"]
    assert len(frames) == 8
    positions = [f["position"] for f in frames]
    assert positions == sorted(positions) and len(set(positions)) == 8
    assert [f["instance_number"] for f in frames] != sorted(f["instance_number"] for f in frames)
    assert frames[0]["url"] == (f"/studies/{study.id}/instances/{frames[0]['instance_id']}"
                                "/frames/0.png")
    assert {p["name"] for p in data["presets"]} >= {"Default", "Brain", "Lung", "Bone", "Abdomen"}
    windows = {p["name"]: p["window"] for p in data["presets"]}
    assert windows["Brain"] == [40, 80]
    assert windows["Lung"] == [-600, 1500]
    assert windows["Bone"] == [400, 1800]
    assert windows["Abdomen"] == [40, 400]
    assert data["auto_window"] is not None  # CT_small has no window of its own


def test_ordered_frames_falls_back_to_instance_number_then_id_and_expands_frames():
    a = Instance(id=3, slice_position=None, instance_number=2, frames=1)
    b = Instance(id=1, slice_position=None, instance_number=1, frames=3)
    c = Instance(id=9, slice_position=-5.0, instance_number=7, frames=1)
    d = Instance(id=2, slice_position=None, instance_number=2, frames=1)
    order = [(f.instance.id, f.frame) for f in ordered_frames([a, b, c, d])]
    assert order == [(9, 0), (1, 0), (1, 1), (1, 2), (2, 0), (3, 0)]


def test_window_parameters_change_pixels(client, login_as, ct_series):
    owner = login_as("radiologist")
    study = import_paths(owner, ct_series[:1])
    url = frames_json(client, study)["frames"][0]["url"]
    brain = client.get(url + "?wc=40&ww=80")
    bone = client.get(url + "?wc=400&ww=1800")
    auto = client.get(url)
    for r in (brain, bone, auto):
        assert r.status_code == 200 and r.mimetype == "image/png"
        assert "X-Frame-Error" not in r.headers
    a, b, c = png_array(brain.data), png_array(bone.data), png_array(auto.data)
    assert a.shape == b.shape == c.shape == (128, 128)
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    # A narrow brain window saturates far more pixels than a wide bone window.
    assert (a == 255).sum() > (b == 255).sum()


def test_bad_window_is_a_400_and_missing_frame_a_404(client, login_as, ct_series):
    owner = login_as("radiologist")
    study = import_paths(owner, ct_series[:1])
    url = frames_json(client, study)["frames"][0]["url"]
    for query in ("?wc=abc&ww=10", "?wc=40", "?wc=40&ww=0", "?wc=nan&ww=5", "?wc=1&ww=1e300"):
        assert client.get(url + query).status_code == 400, query
    assert client.get(url.replace("/frames/0.png", "/frames/1.png")).status_code == 404


def test_cached_frame_is_identical_and_not_rendered_again(client, login_as, app, ct_series):
    owner = login_as("radiologist")
    study = import_paths(owner, ct_series[:2])
    url = frames_json(client, study)["frames"][1]["url"] + "?wc=40&ww=400"
    renderer = frame_renderer(app)
    before = renderer.renders
    first = client.get(url)
    assert first.headers["X-Frame-Cache"] == "miss" and renderer.renders == before + 1
    cached = list(Path(app.config["CACHE_ROOT"], "frames").glob("??/*.png"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    second = client.get(url)
    assert second.headers["X-Frame-Cache"] == "hit"
    assert renderer.renders == before + 1
    assert second.data == first.data
    assert cached[0].stat().st_mtime_ns == mtime
    # A window that rounds to the same value shares the entry.
    third = client.get(url.replace("wc=40", "wc=40.2"))
    assert third.headers["X-Frame-Cache"] == "hit"
    assert first.headers["Cache-Control"].startswith("private, max-age=")
    etag = first.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304


def test_corrupt_stored_file_gives_placeholder_naming_integrity(client, login_as, app, ct_series):
    owner = login_as("radiologist")
    study = import_paths(owner, ct_series[:1])
    frame = frames_json(client, study)["frames"][0]
    ok = client.get(frame["url"])
    assert ok.status_code == 200 and "X-Frame-Error" not in ok.headers
    inst = db.session.get(Instance, frame["instance_id"])
    path = image_store().path(inst.storage_key)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    bad = client.get(frame["url"] + "?wc=40&ww=400")  # not cached yet: read and verified
    assert bad.status_code == 200 and bad.mimetype == "image/png"
    assert "integrity" in bad.headers["X-Frame-Error"]
    assert bad.headers["Cache-Control"] == "no-store"
    assert png_array(bad.data).ndim == 2
    thumb = client.get(f"/studies/{study.id}/series/{first_series(study).id}/thumbnail.png")
    assert thumb.status_code == 200 and "integrity" in thumb.headers["X-Frame-Error"]
    download = client.get(f"/studies/{study.id}/deidentified.zip")
    assert download.status_code == 302  # refused with a message, not a 500
    assert "integrity" in client.get(download.headers["Location"]).get_data(as_text=True)
    path.unlink()
    gone = client.get(frame["url"] + "?wc=41&ww=400")
    assert gone.status_code == 200 and "missing" in gone.headers["X-Frame-Error"]


def test_frame_larger_than_render_limit_is_refused_before_decoding(client, login_as, app):
    app.config["RENDER_MAX_PIXELS"] = 100 * 100
    app.extensions.pop("qaportal_frame_renderer", None)
    owner = login_as("radiologist")
    study = import_paths(owner, [data_file("CT_small.dcm")])
    response = client.get(frames_json(client, study)["frames"][0]["url"])
    assert response.status_code == 200
    assert "too large" in response.headers["X-Frame-Error"]


REAL_FILES = [
    ("CT_small.dcm", 0), ("MR_small.dcm", 0), ("examples_ybr_color.dcm", 0),
    ("examples_ybr_color.dcm", 29), ("693_J2KI.dcm", 0), ("MR_small_RLE.dcm", 0),
    ("SC_rgb_jpeg_gdcm.dcm", 0), ("JPEG-LL.dcm", 0), ("RG1_UNCR.dcm", 0),
    ("US1_J2KR.dcm", 0), ("MR_small_jpeg_ls_lossless.dcm", 0), ("emri_small.dcm", 9),
    ("SC_rgb_rle.dcm", 0),
]


@pytest.mark.parametrize(("name", "frame"), REAL_FILES)
def test_real_files_render_through_http(client, login_as, name, frame):
    owner = login_as("radiologist")
    path = data_file(name)
    header = dcmread(path, stop_before_pixels=True)
    study = import_paths(owner, [path])
    data = frames_json(client, study)
    assert len(data["frames"]) == int(header.get("NumberOfFrames", 1) or 1)
    item = data["frames"][frame]
    response = client.get(item["url"])
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert "X-Frame-Error" not in response.headers, response.headers.get("X-Frame-Error")
    image = Image.open(io.BytesIO(response.data))
    assert image.size == (header.Columns, header.Rows) == (item["columns"], item["rows"])
    colour = header.PhotometricInterpretation.startswith(("RGB", "YBR"))
    assert (image.mode == "RGB") == colour and data["colour"] == colour
    thumb = client.get(f"/studies/{study.id}/series/{first_series(study).id}/thumbnail.png")
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.data)).size) <= 128


def test_monochrome1_is_inverted_relative_to_its_values(client, login_as):
    owner = login_as("radiologist")
    path = data_file("RG1_UNCR.dcm")
    study = import_paths(owner, [path])
    url = frames_json(client, study)["frames"][0]["url"]
    low = png_array(client.get(url + "?wc=100&ww=2").data)  # almost every value above: white
    assert low.mean() < 50  # MONOCHROME1: high values display dark


def test_series_view_is_audited_once_not_per_frame(client, login_as, ct_series):
    owner = login_as("radiologist")
    study = import_paths(owner, ct_series[:4])

    def count() -> int:
        return db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "study.series_viewed"))

    assert count() == 0
    data = frames_json(client, study)
    for f in data["frames"]:
        assert client.get(f["url"]).status_code == 200
    client.get(f"/studies/{study.id}/series/{first_series(study).id}/thumbnail.png")
    assert count() == 1
    event = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "study.series_viewed")).one()
    assert event.object_id == str(study.id) and event.details["series_id"] == data["series"]["id"]


def test_unrelated_radiologist_gets_404_everywhere(client, login_as, auth, ct_series):
    owner = login_as("radiologist")
    study = import_paths(owner, ct_series[:2])
    series = first_series(study)
    data = frames_json(client, study)
    urls = [f"/studies/{study.id}/viewer", f"/studies/{study.id}/series/{series.id}/frames.json",
            data["frames"][0]["url"], data["frames"][0]["url"] + "?wc=40&ww=80",
            f"/studies/{study.id}/series/{series.id}/thumbnail.png"]
    for url in urls:
        assert client.get(url).status_code == 200, url
    auth.logout()
    login_as("radiologist")
    for url in urls:
        assert client.get(url).status_code == 404, url


def test_instance_and_series_must_belong_to_the_study_in_the_url(client, login_as, tmp_path,
                                                                   ct_series):
    owner = login_as("radiologist")
    mine = import_paths(owner, ct_series[:1])
    other = import_paths(owner, [data_file("MR_small.dcm")])
    inst = first_series(other).instances[0]
    assert client.get(f"/studies/{mine.id}/instances/{inst.id}/frames/0.png").status_code == 404
    series_id = first_series(other).id
    assert client.get(f"/studies/{mine.id}/series/{series_id}/frames.json").status_code == 404
    assert client.get(f"/studies/{mine.id}/series/{series_id}/thumbnail.png").status_code == 404


@pytest.fixture
def sentinel_file(tmp_path) -> Path:
    ds = dcmread(data_file("CT_small.dcm"))
    ds.PatientName = "SENTINEL^PATIENT"
    ds.PatientID = "SENTINELID42"
    path = tmp_path / "sentinel.dcm"
    ds.save_as(path)
    return path


def test_deidentified_grant_sees_no_patient_identifiers(client, login_as, auth, sentinel_file):
    owner = login_as("radiologist")
    study = import_paths(owner, [sentinel_file])
    full = client.get(f"/studies/{study.id}/viewer").get_data(as_text=True)
    assert client.get(f"/studies/{study.id}/viewer").status_code == 200
    full_json = frames_json(client, study)
    assert full_json["overlay"]["patient"] == "SENTINEL, PATIENT"  # the owner sees the name
    auth.logout()
    reader = login_as("radiologist")
    grant_access(study, reader, mode="deidentified", source=("test", 1), by=owner)
    db.session.commit()
    page = client.get(f"/studies/{study.id}/viewer")
    assert page.status_code == 200
    data = client.get(f"/studies/{study.id}/series/{first_series(study).id}/frames.json")
    assert "SENTINEL" not in page.get_data(as_text=True)
    assert "SENTINEL" not in data.get_data(as_text=True)
    assert data.get_json()["overlay"] == {
        "patient": study.pseudonym, "patient_id": study.pseudonym, "deidentified": True,
        "study_date": data.get_json()["overlay"]["study_date"]}
    assert "SENTINEL" not in full  # the page itself carries no identifiers, even in full mode
    frame = client.get(data.get_json()["frames"][0]["url"])
    assert frame.status_code == 200 and "X-Frame-Error" not in frame.headers


def test_study_page_shows_series_cards_with_viewer_links(client, login_as, ct_series):
    owner = login_as("radiologist")
    study = import_paths(owner, ct_series[:2])
    series = first_series(study)
    html = client.get(f"/studies/{study.id}").get_data(as_text=True)
    assert f"/studies/{study.id}/series/{series.id}/thumbnail.png" in html
    assert f"/studies/{study.id}/viewer?series={series.id}" in html
    viewer = client.get(f"/studies/{study.id}/viewer?series={series.id}").get_data(as_text=True)
    assert f'data-initial-series="{series.id}"' in viewer and "js/viewer.js" in viewer


def test_window_rounding_and_parsing():
    assert round_window(40.2, 400.4) == (40, 400)
    assert round_window(0.1234, 0.5678) == (0.123, 0.568)
    assert parse_window(None, None) is None and parse_window("", "") is None
    assert parse_window("-600", "1500") == (-600, 1500)
    for wc, ww in (("1", "-1"), ("x", "1"), ("1", None), ("inf", "3")):
        with pytest.raises(ValueError):
            parse_window(wc, ww)


def test_frame_cache_stays_within_its_bound(tmp_path):
    cache = DiskCache(tmp_path / "c", max_bytes=10_000)
    for i in range(30):
        cache.put(cache.key("frame", i), bytes(1000))
    assert cache.size() <= 10_000
    assert cache.get(cache.key("frame", 29)) == bytes(1000)  # the newest survive
    assert not list((tmp_path / "c").glob("??/.tmp-*"))


def test_owner_of_unrelated_study_cannot_use_make_user_grant_leak(client, login_as, auth,
                                                                   ct_series):
    owner = login_as("radiologist")
    study = import_paths(owner, ct_series[:1])
    qa = make_user(roles=("qa_manager",))
    db.session.commit()
    auth.logout()
    auth.login(qa)
    assert client.get(f"/studies/{study.id}/viewer").status_code == 200
    assert frames_json(client, study)["overlay"]["deidentified"] is False
