"""Which stored files have been checked against their SHA-256 and are unchanged since.

Hashing every file before serving it costs more than sending it, so a successful check is
remembered by the file's state: device, inode, size, mtime and ctime (nanoseconds), with
the key and the expected SHA-256. A file written, truncated, replaced or renamed over
since has another state (ctime moves on any write or attribute change and cannot be set
back by a user, even when mtime is) and is hashed again.

The record is kept in this process's memory and, when a folder is given, in a SQLite file
there (one row per stored file, written a study at a time), so the worker processes
sharing the folder do not hash a file another one verified. A record is signed
(HMAC-SHA256 with the application's secret over the key, the SHA-256, the state and the
time of the check): one written, copied from another file or edited by anyone without the
secret is ignored and the file hashed. A record is trusted
for `max_age_s` at most, so changes no state shows (a disk's silent corruption, a raw
write to the device) are found within that time; `qaportal studies verify-storage` hashes
every file at once.

A file read from a remembered state is checked again after the read (same state from the
open file), so a write during the read is not served unhashed. A file changed less than
`settle_s` before its check is hashed but not remembered: file times are coarse (a clock
tick, a second on some filesystems), so a second write within the same tick could keep
the state the check saw.

A store that is not a local folder (the DICOMweb store) is read through local copies: a
file is fetched once, checked against its SHA-256 (read_verified), written under the
records folder's `copies/` (named by its SHA-256, temp file then rename) and from then on
read there like a stored file. The copies are a cache: deleting them costs a fetch each;
past `copies_max_bytes` the oldest-fetched are deleted (a reader that loses its copy
between finding and opening it fetches it again).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path

from qaportal.disk_cache import DiskCache

from .errors import StoredFileCorrupt, StoredFileMissing
from .store import FilesystemStore, ImageStore

log = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
_MEMORY_LIMIT = 50_000  # states kept in memory per process
_BATCH = 256  # records written in one transaction at most
RECORDS_FILE = "verified.sqlite3"
_CLOCK_SKEW_S = 60  # a record dated later than now by more than this is not trusted

State = tuple[int, int, int, int, int]  # device, inode, size, mtime_ns, ctime_ns


def _state(st: os.stat_result) -> State:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class VerifiedFiles:
    """Read stored files checked against their SHA-256, hashing each state once."""

    def __init__(self, store: FilesystemStore | ImageStore,
                 root: str | os.PathLike[str] | None = None,
                 secret: bytes = b"", max_age_s: float = 24 * 3600,
                 settle_s: float = 2.0, copies_max_bytes: int = 20 * 1024**3) -> None:
        if root is not None and not secret:
            raise ValueError("shared verification records need a secret")
        self.store = store
        self.folder = Path(root) if root is not None else None
        self._copies: DiskCache | None = None  # local copies of a remote store's files
        if not hasattr(store, "file_name"):
            self._copies = DiskCache(
                self.folder / "copies" if self.folder is not None
                else tempfile.mkdtemp(prefix="qaportal-copies-"), copies_max_bytes, suffix="")
        self._db = _Records(self.folder / RECORDS_FILE) if self.folder is not None else None
        self._key = hmac.new(secret, b"qaportal stored-file verification", "sha256").digest()
        self.max_age_s = max_age_s
        self.settle_s = settle_s
        self.hashed = 0  # files hashed by this object (for tests and benchmarks)
        self._memory: OrderedDict[tuple, float] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: list[tuple[str, float, str]] = []
        self._local = threading.local()

    # --- reading -----------------------------------------------------------------------

    def read(self, key: str, sha256: str, head: int = 0) -> tuple[bytes, bytes]:
        """Return the stored file as (its first `head` bytes, the rest), verified.

        Split so a caller can send the rest without copying it (the preamble is replaced).
        Raises StoredFileMissing, or StoredFileCorrupt when the bytes do not match.
        """
        started = time.time()
        fp = self._open(key, sha256, buffering=0)[1]
        with fp:
            before = _state(os.fstat(fp.fileno()))
            first = _read_exactly(fp, head) if head else b""
            rest = fp.readall()
            after = _state(os.fstat(fp.fileno()))
        if before == after and self.known(key, sha256, before):
            return first, rest
        digest = hashlib.sha256(first)
        digest.update(rest)
        self.hashed += 1
        if digest.hexdigest() != sha256.lower():
            raise StoredFileCorrupt(key)
        if before == after and self._settled(before, started):
            self.remember(key, sha256, before)
        return first, rest

    def read_bytes(self, key: str, sha256: str) -> bytes:
        """Return the stored file's bytes, verified."""
        return self.read(key, sha256)[1]

    def checked_path(self, key: str, sha256: str) -> Path:
        """Return the stored file's path once its current state is verified (for readers
        that open the file by path: the renderer)."""
        started = time.time()
        name, fp = self._open(key, sha256)
        path = Path(name)
        with fp:
            before = _state(os.fstat(fp.fileno()))
            if self.known(key, sha256, before):
                return path
            digest = hashlib.sha256()
            while chunk := fp.read(_CHUNK):
                digest.update(chunk)
            after = _state(os.fstat(fp.fileno()))
        self.hashed += 1
        if digest.hexdigest() != sha256.lower():
            raise StoredFileCorrupt(key)
        if before == after and self._settled(before, started):
            self.remember(key, sha256, before)
        return path

    def _open(self, key: str, sha256: str, buffering: int = -1):
        """Open the local file holding key: return (its name, the open file).

        A local copy pruned between finding and opening it (another thread or process
        making room) is fetched again, once."""
        for attempt in (1, 2):
            name = self._file_name(key, sha256)
            try:
                return name, open(name, "rb", buffering=buffering)  # noqa: SIM115
            except FileNotFoundError as exc:
                if self._copies is None or attempt == 2:
                    raise StoredFileMissing(key) from exc
        raise AssertionError("unreachable")

    def _file_name(self, key: str, sha256: str) -> str:
        """Return the local file holding key: the store's own, or a verified local copy
        (fetched once; the copies are pruned oldest-fetched first past their size)."""
        if self._copies is None:
            return self.store.file_name(key)
        sha = sha256.lower()
        if len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
            raise StoredFileCorrupt(key)
        name = self._copies.path(sha)
        if not name.exists():
            data = self.store.read_verified(key, sha)  # raises Missing / Corrupt
            self._copies.put(sha, data)
        return str(name)

    # --- records -----------------------------------------------------------------------

    def known(self, key: str, sha256: str, state: State) -> bool:
        """Tell whether this exact state of the file was verified within max_age_s."""
        now = time.time()
        memo = (key, sha256.lower(), state)
        with self._lock:
            at = self._memory.get(memo)
        if at is not None and now - at <= self.max_age_s:
            return True
        at = self._load(key, sha256, state, now)
        if at is None:
            return False
        self._memorise(memo, at)
        return True

    def remember(self, key: str, sha256: str, state: State) -> None:
        """Record that the file in `state` matched sha256 (now).

        Inside `batch()` the shared record is written when the batch ends (one transaction
        for a whole study), else at once.
        """
        at = time.time()
        self._memorise((key, sha256.lower(), state), at)
        if self._db is None:
            return
        with self._lock:
            self._pending.append((key, at, self._mac(key, sha256, state, at)))
            full = len(self._pending) >= _BATCH
        if full or not getattr(self._local, "depth", 0):
            self.flush()

    @contextlib.contextmanager
    def batch(self, keys: Iterable[str] = ()) -> Iterator[None]:
        """Write the records of the files verified inside in one transaction at the end;
        read the shared records of `keys` (the files about to be read) in one query."""
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        keys = list(keys)
        if not depth and keys and self._db is not None:
            self._local.rows = self._db.read_many(keys)
        try:
            yield
        finally:
            self._local.depth -= 1
            if not self._local.depth:
                self._local.rows = {}
                self.flush()

    def flush(self) -> None:
        """Write the pending shared records (failing to is only a lost shortcut: logged)."""
        with self._lock:
            rows, self._pending = self._pending, []
        if rows and self._db is not None:
            self._db.write(rows)

    def _memorise(self, memo: tuple, at: float) -> None:
        with self._lock:
            self._memory[memo] = at
            self._memory.move_to_end(memo)
            if len(self._memory) > _MEMORY_LIMIT:
                self._memory.popitem(last=False)

    def _settled(self, state: State, started: float) -> bool:
        """Tell whether the file's last change came settle_s or more before the check."""
        return max(state[3], state[4]) < (started - self.settle_s) * 1e9

    def _mac(self, key: str, sha256: str, state: State, at: float) -> str:
        text = "\x00".join([key, sha256.lower(), *map(str, state), repr(at)])
        return hmac.new(self._key, text.encode("ascii"), "sha256").hexdigest()

    def _load(self, key: str, sha256: str, state: State, now: float) -> float | None:
        """Return when the shared record says this state was verified, if it is valid."""
        if self._db is None:
            return None
        rows = getattr(self._local, "rows", None)
        found = rows.get(key) if rows else None
        if found is None:
            found = self._db.read(key)
        if found is None:
            return None
        at, mac = found
        if not (now - self.max_age_s <= at <= now + _CLOCK_SKEW_S):
            return None
        if not hmac.compare_digest(mac, self._mac(key, sha256, state, at)):
            return None
        return at


class _Records:
    """The shared records: one SQLite file (WAL) that every worker process opens itself."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        # A connection is never shared with a forked child: it opens its own.
        if self._conn is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=2.0, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a record lost in a crash: re-hashed
            conn.execute("CREATE TABLE IF NOT EXISTS verified (key TEXT PRIMARY KEY, "
                         "at REAL NOT NULL, mac TEXT NOT NULL) WITHOUT ROWID")
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def read(self, key: str) -> tuple[float, str] | None:
        try:
            with self._lock:
                row = self._connection().execute(
                    "SELECT at, mac FROM verified WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error:
            log.warning("verification records unreadable", exc_info=True)
            return None
        return _valid(row)

    def read_many(self, keys: list[str]) -> dict[str, tuple[float, str]]:
        found: dict[str, tuple[float, str]] = {}
        try:
            with self._lock:
                rows = self._connection().execute(
                    "SELECT key, at, mac FROM verified WHERE key IN "
                    "(SELECT value FROM json_each(?))", (json.dumps(keys),)).fetchall()
            for key, *row in rows:
                if (valid := _valid(row)) is not None:
                    found[key] = valid
        except sqlite3.Error:
            log.warning("verification records unreadable", exc_info=True)
        return found

    def write(self, rows: list[tuple[str, float, str]]) -> None:
        try:
            with self._lock:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany("INSERT OR REPLACE INTO verified (key, at, mac) "
                                     "VALUES (?, ?, ?)", rows)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error:
            log.warning("verification records not written", exc_info=True)


def _valid(row) -> tuple[float, str] | None:
    """Return (at, mac) from a row of the records if it has their types."""
    if row is None or not isinstance(row[0], float) or not isinstance(row[1], str):
        return None
    return row[0], row[1]


def _read_exactly(fp, n: int) -> bytes:
    """Read up to n bytes (fewer only at the end of the file)."""
    data = fp.read(n)
    while len(data) < n:
        more = fp.read(n - len(data))
        if not more:
            break
        data += more
    return data
