"""The listener's background sync of a stored instance: file and folder, awaited."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from qaportal.dicom.store import FilesystemStore, new_key
from qaportal.feeds.receiver import SYNC_THREADS, _BackgroundSync


@pytest.fixture
def pool():
    with ThreadPoolExecutor(SYNC_THREADS) as pool:
        yield pool


def test_wait_returns_once_file_and_folder_are_synced(tmp_path, pool):
    store = FilesystemStore(tmp_path / "images")
    source = tmp_path / "in.dcm"
    source.write_bytes(b"x" * 1000)
    key = new_key()
    store.adopt(key, source, sync=False)
    synced = _BackgroundSync(store, pool)
    synced.sync([key])
    futures = list(synced._pending)
    assert len(futures) == 2  # the file and its folder, side by side
    synced.wait()
    assert all(f.done() and f.exception() is None for f in futures)
    assert store.path(key).read_bytes() == b"x" * 1000
    assert synced.root == store.root  # everything else is the store's


def test_a_file_that_cannot_be_synced_fails_the_wait(tmp_path, pool):
    store = FilesystemStore(tmp_path / "images")
    key = new_key()
    store.path(key).parent.mkdir(parents=True)  # the folder exists, the file does not
    synced = _BackgroundSync(store, pool)
    synced.sync([key])
    futures = list(synced._pending)
    with pytest.raises(FileNotFoundError):
        synced.wait()
    assert all(f.done() for f in futures)  # nothing left running behind the error
    synced.wait()  # and nothing left to wait for
