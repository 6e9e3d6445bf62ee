"""The bounded folder of derived files (rendered frames, DICOMweb headers, local copies of
an archive's files): files without a suffix, and temporary files being written."""

from __future__ import annotations

import os

from qaportal.disk_cache import DiskCache


def test_entries_without_a_suffix_are_bounded_and_a_file_being_written_is_left_alone(
        tmp_path):
    cache = DiskCache(tmp_path / "copies", max_bytes=10_000, suffix="")
    writing = cache.path("ab" + "0" * 62).parent / ".tmp-in-progress"
    writing.parent.mkdir(parents=True)
    writing.write_bytes(bytes(50_000))  # another writer's temporary file, not yet renamed
    keys = [f"ab{i:062x}" for i in range(30)]
    for key in keys:
        cache.put(key, bytes(1000))
        os.utime(cache.path(key), ns=(0, 10**9 * (keys.index(key) + 1)))  # fetched in order
    assert cache.size() <= 10_000
    assert writing.exists() and writing.stat().st_size == 50_000  # neither counted nor pruned
    kept = [k for k in keys if cache.path(k).exists()]
    assert kept == keys[-len(kept):] and cache.get(keys[-1]) == bytes(1000)  # the newest
    assert cache.path(keys[0]).name == keys[0]  # named by the key alone
