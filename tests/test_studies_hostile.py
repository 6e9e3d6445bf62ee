"""Hostile uploads end to end: each is refused by name in the batch, nothing of it is stored,
the good files beside it are, and the viewer never meets a bogus frame count."""

from __future__ import annotations

import zipfile

import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import Instance, Study, UploadBatch
from qaportal.studies import jobs
from tests.factories import make_user
from tests.studyfiles import (
    deflate_bomb,
    one_fragment_copy,
    overlong_element_copy,
    sample,
)

MiB = 1024 * 1024


@pytest.fixture
def owner(app):
    user = make_user(roles=("radiologist",), email="owner@example.test")
    db.session.commit()
    return user


def _small_bombs_zip(path):
    """60 entries under 1 MiB each (a real RT plan, then padding): 62 MB from ~150 KB."""
    plan = sample("rtplan.dcm").read_bytes()
    padded = plan + bytes(1_040_000 - len(plan))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for n in range(60):
            zf.writestr(f"plans/{n:03d}.dcm", padded)
    return path


def _import(owner, paths) -> UploadBatch:
    batch = jobs.new_batch(owner, "cli")
    jobs.import_files(paths, owner.id, batch.id)
    return db.session.get(UploadBatch, batch.id)


def test_hostile_files_are_refused_by_name_and_the_good_one_stored(app, owner, tmp_path):
    app.config["MAX_INFLATED_BYTES"] = 16 * MiB
    hostile = {
        "frames-300000.dcm": one_fragment_copy(tmp_path / "frames-300000.dcm", 300_000),
        "frames-max.dcm": one_fragment_copy(tmp_path / "frames-max.dcm", 2**31 - 1),
        "frames-2.dcm": one_fragment_copy(tmp_path / "frames-2.dcm", 2),
        "overlong.dcm": overlong_element_copy("rtplan.dcm", tmp_path / "overlong.dcm"),
        "deflate-bomb.dcm": deflate_bomb(tmp_path / "deflate-bomb.dcm", 64 * MiB),
        "small-bombs.zip": _small_bombs_zip(tmp_path / "small-bombs.zip"),
    }
    batch = _import(owner, [sample("MR_small.dcm"), *hostile.values()])
    assert batch.stored == 1
    errors = {e["file"]: e["error"] for e in batch.errors}
    zip_error = errors.pop("small-bombs.zip")
    assert zip_error.startswith("suspicious compression ratio (")
    assert zip_error.endswith(":1 over the whole archive)")
    assert errors == {
        "frames-300000.dcm": "too many frames: NumberOfFrames 300000 is over the limit "
                             "of 20000",
        "frames-max.dcm": "too many frames: NumberOfFrames 2147483647 is over the limit "
                          "of 20000",
        "frames-2.dcm": "NumberOfFrames 2 but only 1 pixel data fragment (a fragment holds "
                        "data of one frame at most)",
        "overlong.dcm": "truncated file: an element runs past the end of the data",
        "deflate-bomb.dcm": f"deflated data set inflates past the limit of {16 * MiB} bytes",
    }
    assert db.session.scalar(sa.select(sa.func.count(Instance.id))) == 1
    assert db.session.scalar(sa.select(sa.func.max(Instance.frames))) == 1


def test_the_frame_cap_setting_applies_at_ingest(app, owner):
    app.config["MAX_FRAMES_PER_INSTANCE"] = 9
    batch = _import(owner, [sample("emri_small_RLE.dcm")])
    assert batch.stored == 0
    assert batch.errors == [{"file": "emri_small_RLE.dcm", "error": "too many frames: "
                             "NumberOfFrames 10 is over the limit of 9"}]
    app.config["MAX_FRAMES_PER_INSTANCE"] = 10
    assert _import(owner, [sample("emri_small_RLE.dcm")]).stored == 1
    assert db.session.scalar(sa.select(Instance.frames)) == 10


def test_web_upload_of_a_frame_bomb_names_it_and_the_viewer_stays_small(client, login_as,
                                                                        tmp_path):
    login_as("radiologist")
    bomb = one_fragment_copy(tmp_path / "cine.dcm", 300_000)
    with open(bomb, "rb") as fh, open(sample("MR_small.dcm"), "rb") as good:
        res = client.post("/studies/upload", data={"files": [(fh, "cine.dcm"),
                                                             (good, "MR_small.dcm")]},
                          content_type="multipart/form-data", follow_redirects=True)
    page = res.get_data(as_text=True)
    assert "cine.dcm" in page and "NumberOfFrames 300000" in page
    study = db.session.scalars(sa.select(Study)).one()
    series = study.series[0]
    frames = client.get(f"/studies/{study.id}/series/{series.id}/frames.json").get_json()
    assert len(frames["frames"]) == 1
