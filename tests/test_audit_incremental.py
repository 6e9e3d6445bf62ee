"""`qaportal audit-verify --incremental`: from the last verified checkpoint, what follows.

The attacks are the same as in test_audit_anchor (SQL with the triggers dropped); what is
new is where the pass starts, and that only a checkpoint written by a verifying pass may be
that start (a checkpoint written beside an entry is a sighting, not a verdict).
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from qaportal import audit, audit_anchor
from tests.conftest import make_test_app
from tests.test_audit import _drop_triggers, _seed
from tests.test_audit_anchor import _rows


def _cli(app, *args):
    return app.test_cli_runner().invoke(args=["audit-verify", *args])


def _checkpoints(app) -> list[audit_anchor.Checkpoint]:
    return audit_anchor.read_checkpoints(app.config["AUDIT_ANCHOR_FILE"],
                                         app.config["AUDIT_KEY"])


def _more(db, n: int) -> None:
    for i in range(n):
        audit.record("test.more", None, actor_label="tester", number=i)
    db.session.commit()


def test_a_full_pass_writes_a_verified_checkpoint(app, db):
    _seed(db, 4)
    assert _cli(app).exit_code == 0
    last = _checkpoints(app)[-1]
    assert (last.seq, last.verified) == (4, True)
    assert last.entry_hash == _rows(db)[-1].entry_hash
    # the flag is covered by the line's MAC: a line claiming it without the key is refused
    with open(app.config["AUDIT_ANCHOR_FILE"]) as fh:
        lines = fh.read().splitlines()
    forged = json.loads(lines[-1]) | {"seq": 3, "hash": _rows(db)[2].entry_hash}
    with open(app.config["AUDIT_ANCHOR_FILE"], "a") as fh:
        fh.write(json.dumps(forged) + "\n")
    result = _cli(app, "--incremental")
    assert result.exit_code == 1 and "not signed with this server's audit key" in result.output


def test_incremental_checks_only_what_came_after(app, db):
    _seed(db, 5)
    assert _cli(app).exit_code == 0
    _more(db, 3)
    result = _cli(app, "--incremental")
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("audit log intact: 8 entries (3 checked after the verified "
                            "checkpoint of ")
    assert first.endswith(" at entry 5)")
    # its own checkpoint is verified too: the next incremental pass starts at 8
    assert (_checkpoints(app)[-1].seq, _checkpoints(app)[-1].verified) == (8, True)
    _more(db, 1)
    assert "(1 checked after" in _cli(app, "--incremental").output


def test_without_a_verified_checkpoint_incremental_is_a_full_pass(app, db):
    _seed(db, 3)
    result = _cli(app, "--incremental")
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "audit log intact: 3 entries"


def test_a_sighting_is_not_a_starting_point(tmp_path, db_url):
    """Checkpoints written every N entries were never verified: an entry rewritten before
    one of them is still found by an incremental pass."""
    app = make_test_app(tmp_path, db_url, AUDIT_CHECKPOINT_EVERY=3)
    from qaportal.extensions import db

    with app.app_context():
        for i in range(7):  # one transaction each: a checkpoint is written per commit
            audit.record("test.event", None, actor_label="tester", number=i)
            db.session.commit()
        assert [(cp.seq, cp.verified) for cp in _checkpoints(app)] == [
            (1, False), (3, False), (6, False)]
        _drop_triggers(db)
        db.session.execute(sa.text("UPDATE audit_events SET details = :d WHERE seq = 2"),
                           {"d": json.dumps({"number": 99})})
        db.session.commit()
        result = _cli(app, "--incremental")
        assert result.exit_code == 1
        assert "broken at entry 2: content does not match its hash" in result.output
        db.session.remove()


def test_a_change_after_the_checkpoint_is_found(app, db):
    _seed(db, 4)
    assert _cli(app).exit_code == 0
    _more(db, 3)
    _drop_triggers(db)
    db.session.execute(sa.text("UPDATE audit_events SET action = 'x.forged' WHERE seq = 6"))
    db.session.commit()
    result = _cli(app, "--incremental")
    assert result.exit_code == 1
    assert "broken at entry 6: content does not match its hash" in result.output


def test_the_checkpoint_entry_itself_is_rehashed(app, db):
    _seed(db, 4)
    assert _cli(app).exit_code == 0
    _more(db, 2)
    _drop_triggers(db)
    db.session.execute(sa.text("UPDATE audit_events SET details = :d WHERE seq = 4"),
                       {"d": json.dumps({"number": 99})})
    db.session.commit()
    result = _cli(app, "--incremental")
    assert result.exit_code == 1
    assert "broken at entry 4: it differs from the verified checkpoint of" in result.output


def test_entries_removed_back_to_the_checkpoint_are_found(app, db):
    _seed(db, 4)
    assert _cli(app).exit_code == 0
    _drop_triggers(db)
    db.session.execute(sa.text("DELETE FROM audit_events WHERE seq = 4"))
    db.session.execute(sa.text("UPDATE audit_head SET seq = 3, entry_hash = :h WHERE id = 1"),
                       {"h": _rows(db)[2].entry_hash})
    db.session.commit()
    result = _cli(app, "--incremental")
    assert result.exit_code == 1
    assert "broken at entry 4" in result.output and "later entries were removed" in result.output


def test_entry_time_text_is_the_one_the_chain_was_hashed_with():
    """_iso moved from strftime to isoformat for speed; every stored hash depends on it."""
    from datetime import UTC, datetime, timedelta, timezone

    for ts in (datetime(2026, 12, 5, 5, 10, 13, 781167, UTC),
               datetime(2024, 1, 1, tzinfo=UTC),
               datetime(2025, 6, 30, 23, 59, 59, 1, timezone(timedelta(hours=-5)))):
        assert audit._iso(ts) == ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
