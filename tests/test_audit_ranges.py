"""The audit chain checked in ranges (and in worker processes) gives a single pass's verdict.

Every scenario is verified with one range and with the chain cut into ranges of several
sizes, boundaries landing on the tampered entries; the verdicts must be identical.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from flask import current_app

from qaportal import audit, audit_anchor, audit_ranges, audit_verify
from tests.test_audit import _drop_triggers, _seed

N = 40


def _sql(db, statement: str, **params) -> None:
    db.session.execute(sa.text(statement), params)
    db.session.commit()


def _content(db, seq):
    _sql(db, "UPDATE audit_events SET action = 'test.innocent' WHERE seq = :s", s=seq)


def _rehash(db, seq):
    # A rewritten entry with a fresh hash: the next entry's link breaks.
    row = db.session.execute(sa.select(*audit_ranges.COLUMNS)
                             .where(audit_ranges.COLUMNS[0] == seq)).one()
    fields = {**audit_ranges.fields(row), "action": "test.rewritten"}
    _sql(db, "UPDATE audit_events SET action = 'test.rewritten', entry_hash = :h WHERE seq = :s",
         h=audit.entry_hash(fields), s=seq)


def _delete(db, seq):
    _sql(db, "DELETE FROM audit_events WHERE seq = :s", s=seq)


def _unsign(db, seq):
    _sql(db, "UPDATE audit_events SET entry_mac = NULL WHERE seq = :s", s=seq)


def _wrong_mac(db, seq):
    _sql(db, "UPDATE audit_events SET entry_mac = :m WHERE seq = :s", m="0" * 64, s=seq)


def _legacy_prefix(db, upto):
    # An installation from before anchoring (no anchor file yet): its first entries carry
    # no MAC (allowed), and one later entry without a MAC (not allowed).
    _sql(db, "UPDATE audit_events SET entry_mac = NULL WHERE seq <= :s OR seq = :t",
         s=upto, t=upto + 9)
    os.remove(current_app.config["AUDIT_ANCHOR_FILE"])


def _no_anchor_file(db, seq):
    os.remove(current_app.config["AUDIT_ANCHOR_FILE"])


SCENARIOS = {
    "intact": [],
    "content at a range start": [(_content, 11)],
    "content in the middle": [(_content, 23)],
    "rewritten with a fresh hash": [(_rehash, 10)],
    "middle entry deleted": [(_delete, 21)],
    "two entries deleted at a boundary": [(_delete, 20), (_delete, 21)],
    "tail deleted": [(_delete, N)],
    "no MAC late, wrong MAC later": [(_unsign, 17), (_wrong_mac, 33)],
    "wrong MAC early, no MAC later": [(_wrong_mac, 5), (_unsign, 31)],
    "legacy prefix and a late unsigned entry": [(_legacy_prefix, 12)],
    "legacy prefix only": [(_unsign, 1), (_unsign, 2), (_no_anchor_file, 0)],
    "MAC problem and a later broken hash": [(_wrong_mac, 8), (_content, 30)],
}


def _verdict(app):
    app.extensions.pop("qaportal_audit_legacy", None)
    r = audit_verify.verify()
    return (r.ok, r.count, r.bad_seq, r.reason, r.legacy, r.head_hash, r.checkpoints)


def _in_ranges(size):
    def check(session, after, upto, key, legacy, anchors):
        ranges = [(lo, min(lo + size, upto)) for lo in range(after, upto, size)]
        return audit_ranges.check_here(session.connection, ranges, key, legacy, anchors)
    return check


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_ranges_give_the_single_pass_verdict(app, db, monkeypatch, name):
    _seed(db, N)
    _drop_triggers(db)
    for change, seq in SCENARIOS[name]:
        change(db, seq)
    single = _verdict(app)
    assert single[0] == (name in ("intact", "legacy prefix only")), single
    for size in (1, 3, 10, 11, 39):
        monkeypatch.setattr(audit_verify, "_check", _in_ranges(size))
        assert _verdict(app) == single, (name, size)


def test_a_checkpoint_that_differs_is_named_whichever_range_holds_it(app, db, monkeypatch):
    _seed(db, N)
    path = app.config["AUDIT_ANCHOR_FILE"]
    key = app.config["AUDIT_KEY"]
    cp = audit_anchor.Checkpoint(26, "f" * 64, audit_anchor.now_iso(), 0)
    audit_anchor.append_checkpoint(path, key, cp, False)
    single = _verdict(app)
    assert not single[0] and single[2] == 26 and "differs from the checkpoint" in single[3]
    for size in (1, 5, 25, 26):
        monkeypatch.setattr(audit_verify, "_check", _in_ranges(size))
        assert _verdict(app) == single, size


def test_split_covers_the_range_once():
    for after, upto, parts in [(0, 10, 3), (5, 6, 4), (0, 0, 2), (100, 2_000_325, 2)]:
        ranges = audit_ranges.split(after, upto, parts)
        assert ranges[0][0] == after and ranges[-1][1] == upto
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
        assert len(ranges) <= max(1, parts)


def test_worker_processes_reach_the_same_verdicts(app, db):
    # The real path of a long pass: spawned processes, each with its own connection.
    _seed(db, N)
    app.config.update(AUDIT_VERIFY_WORKERS=2, AUDIT_VERIFY_PARALLEL_MIN=1)
    parallel = _verdict(app)
    app.config.update(AUDIT_VERIFY_WORKERS=1)
    assert parallel == _verdict(app) and parallel[0] and parallel[1] == N
    _drop_triggers(db)
    _content(db, 31)  # in the second worker's range
    app.config.update(AUDIT_VERIFY_WORKERS=2)
    parallel = _verdict(app)
    app.config.update(AUDIT_VERIFY_WORKERS=1)
    assert parallel == _verdict(app) and parallel[2] == 31 and not parallel[0]
