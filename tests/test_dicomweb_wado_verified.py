"""A stored file is hashed once per process while it stays unchanged, as the viewer's frames
are: a second retrieve of the same study does not hash its files again, and a file changed
since is refused all the same."""

from __future__ import annotations

from qaportal.dicom import FilesystemStore
from tests.dicomweb_helpers import DICOM_ANY
from tests.dicomweb_world import corrupt, instances_of


def _count_hashing(monkeypatch) -> list[int]:
    """Count the store's checks of files against their SHA-256 (both of its ways)."""
    calls = [0]
    for name in ("read_verified", "verify"):
        real = getattr(FilesystemStore, name)

        def counting(self, *args, _real=real, **kwargs):
            calls[0] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(FilesystemStore, name, counting)
    return calls


def test_second_retrieve_does_not_hash_again_but_a_changed_file_is_refused(
        client, world, monkeypatch):
    study = world["study"]
    url = f"/dicomweb/studies/{study.study_uid}"
    calls = _count_hashing(monkeypatch)
    first = client.get(url, headers={"Accept": DICOM_ANY})
    assert first.status_code == 200
    body = first.get_data()  # the parts are produced (and their files read) as it is read
    hashed = calls[0]
    assert hashed == len(instances_of(study))  # each file checked once the first time
    second = client.get(url, headers={"Accept": DICOM_ANY})
    assert second.status_code == 200 and len(second.get_data()) == len(body)
    assert calls[0] == hashed  # unchanged files: not hashed again
    corrupt(instances_of(study)[0])
    third = client.get(url, headers={"Accept": DICOM_ANY})
    assert third.status_code == 500  # the changed file is hashed again and refused
