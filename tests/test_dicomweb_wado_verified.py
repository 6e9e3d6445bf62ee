"""A stored file is hashed once per file state, and the record is shared by the worker
processes: a second retrieve, or a retrieve by another process, does not hash the files
again, and a file changed since (even keeping its size and mtime) is refused all the same."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from qaportal.studies.viewer_routes import frame_renderer
from tests.dicomweb_helpers import DICOM_ANY
from tests.dicomweb_world import corrupt, instances_of

SETTLE_S = 0.2  # files changed more recently than this are hashed but not remembered


@pytest.fixture
def settled(app, world):
    """The study's files, older than the settling time (the default, 2 s, would slow tests)."""
    with app.app_context():
        frame_renderer(app).verified.settle_s = SETTLE_S
    time.sleep(SETTLE_S + 0.05)
    return world


def _hashed(app) -> int:
    with app.app_context():
        return frame_renderer(app).verified.hashed


def _verify_in_another_process(app, instances) -> None:
    """Verify the files in a separate Python process, as another gunicorn worker would."""
    with app.app_context():
        verified = frame_renderer(app).verified
        args = [str(verified.store.root), str(verified.folder), app.config["SECRET_KEY"],
                *(f"{i.storage_key}:{i.sha256}" for i in instances)]
    code = (
        "import sys\n"
        "from qaportal.dicom import FilesystemStore\n"
        "from qaportal.dicom.verified import VerifiedFiles\n"
        "store_root, root, secret, *files = sys.argv[1:]\n"
        f"v = VerifiedFiles(FilesystemStore(store_root), root, secret.encode(), "
        f"settle_s={SETTLE_S})\n"
        "for f in files:\n"
        "    v.read(*f.split(':'))\n"
        "assert v.hashed == len(files)\n")
    subprocess.run([sys.executable, "-c", code, *args], check=True, timeout=60)


def _corrupt_keeping_size_and_mtime(path) -> None:
    st = os.stat(path)
    corrupt_bytes = bytearray(path.read_bytes())
    corrupt_bytes[-10] ^= 0xFF
    path.write_bytes(bytes(corrupt_bytes))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == st.st_mtime_ns
    assert os.stat(path).st_size == st.st_size


def test_second_retrieve_does_not_hash_again_but_a_changed_file_is_refused(
        app, client, settled):
    study = settled["study"]
    url = f"/dicomweb/studies/{study.study_uid}"
    before = _hashed(app)
    first = client.get(url, headers={"Accept": DICOM_ANY})
    assert first.status_code == 200
    body = first.get_data()  # the parts are produced (and their files read) as it is read
    hashed = _hashed(app) - before
    assert hashed == len(instances_of(study))  # each file checked once the first time
    second = client.get(url, headers={"Accept": DICOM_ANY})
    assert second.status_code == 200 and len(second.get_data()) == len(body)
    assert _hashed(app) - before == hashed  # unchanged files: not hashed again
    corrupt(instances_of(study)[0])
    third = client.get(url, headers={"Accept": DICOM_ANY})
    assert third.status_code == 500  # the changed file is hashed again and refused


def test_a_file_verified_by_another_process_is_not_hashed_again_until_it_changes(
        app, client, settled):
    study = settled["study"]
    instances = instances_of(study)
    url = f"/dicomweb/studies/{study.study_uid}"
    _verify_in_another_process(app, instances)
    before = _hashed(app)
    ok = client.get(url, headers={"Accept": DICOM_ANY})
    assert ok.status_code == 200 and len(ok.get_data()) > sum(i.size_bytes for i in instances)
    assert _hashed(app) == before  # the other process's records were trusted
    # Changed after the other process verified it, with size and mtime put back: the
    # ctime differs, so the record no longer applies and the file is hashed and refused.
    with app.app_context():
        path = frame_renderer(app).store.path(instances[-1].storage_key)
    _corrupt_keeping_size_and_mtime(path)
    refused = client.get(f"{url}/series/{instances[-1].series.series_uid}/instances/"
                         f"{instances[-1].sop_uid}", headers={"Accept": DICOM_ANY})
    assert refused.status_code == 500
    assert _hashed(app) == before + 1
