"""The audit chain anchored outside the database: entry MACs, checkpoints, syslog.

The attacks are what a database administrator can do with SQL alone: drop the
append-only triggers, delete or rewrite entries, recompute every later hash and the head.
"""

from __future__ import annotations

import json
import os
import socket
import stat

import pytest
import sqlalchemy as sa

from qaportal import audit, audit_anchor
from qaportal.models import AuditEvent
from tests.conftest import make_test_app
from tests.factories import make_user
from tests.test_audit import _drop_triggers, _seed, _verify_cli


def _rows(db) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)))


def _rechain(db, events: list[AuditEvent], start: int, prev: str, *, mac=None) -> str:
    """Renumber events from seq `start` and recompute their links and hashes via SQL."""
    for offset, ev in enumerate(events):
        fields = audit._fields(ev)
        fields.update(seq=start + offset, prev_hash=prev)
        new_hash = audit.entry_hash(fields)
        params = {"id": ev.id, "seq": start + offset, "prev": prev, "hash": new_hash}
        db.session.execute(sa.text(
            "UPDATE audit_events SET seq = :seq, prev_hash = :prev, entry_hash = :hash "
            "WHERE id = :id"), params)
        if mac is not None:  # a separate statement: today's main has no entry_mac column
            db.session.execute(sa.text("UPDATE audit_events SET entry_mac = :mac WHERE id = :id"),
                               {"mac": mac(new_hash), "id": ev.id})
        prev = new_hash
    return prev


def _set_head(db, seq: int, entry_hash: str) -> None:
    db.session.execute(sa.text("UPDATE audit_head SET seq = :seq, entry_hash = :hash WHERE id = 1"),
                       {"seq": seq, "hash": entry_hash})


def _delete_and_rehash(db, victim: int, *, mac=None) -> None:
    """The DBA attack: drop the triggers, delete one entry, recompute what follows."""
    _drop_triggers(db)
    events = _rows(db)
    before = events[victim - 2].entry_hash if victim > 1 else audit.GENESIS
    later = [e for e in events if e.seq > victim]
    db.session.execute(sa.text("DELETE FROM audit_events WHERE seq = :seq"), {"seq": victim})
    head = _rechain(db, later, victim, before, mac=mac)
    _set_head(db, len(events) - 1, head)
    db.session.commit()


def test_deleting_an_entry_and_recomputing_the_chain_is_detected(app, db):
    _seed(db, 6)
    _delete_and_rehash(db, 3)
    result = _verify_cli(app)
    assert "intact" not in result.output
    assert result.exit_code == 1
    assert ("audit log broken at entry 3: its MAC does not match: the entry was written or "
            "rewritten without the audit key") in result.output


def test_recomputed_entries_with_their_mac_removed_are_detected(app, db):
    _seed(db, 6)
    _delete_and_rehash(db, 3, mac=lambda h: None)
    result = _verify_cli(app)
    assert result.exit_code == 1
    assert "broken at entry 3: it carries no MAC although it was written after anchoring " \
           "began" in result.output


def test_removing_the_newest_entries_behind_a_checkpoint_is_detected(app, db):
    _seed(db, 4)
    assert _verify_cli(app).exit_code == 0  # writes a checkpoint of entry 4
    _drop_triggers(db)
    third = _rows(db)[2]
    db.session.execute(sa.text("DELETE FROM audit_events WHERE seq = 4"))
    _set_head(db, 3, third.entry_hash)
    db.session.commit()
    result = _verify_cli(app)
    assert result.exit_code == 1
    assert "broken at entry 4: the chain ends at entry 3 but the checkpoint of" in result.output
    assert "saw entry 4: later entries were removed" in result.output


def test_a_rewrite_with_a_stolen_key_still_differs_from_the_checkpoint(app, db):
    """Someone who also read the key re-MACs a rewritten chain; the anchor file, which the
    database account cannot rewrite, still names the entry."""
    _seed(db, 4)
    assert _verify_cli(app).exit_code == 0
    _drop_triggers(db)
    events = _rows(db)
    db.session.execute(sa.text("UPDATE audit_events SET details = :d WHERE seq = 2"),
                       {"d": json.dumps({"number": 99})})
    db.session.commit()
    events = _rows(db)
    key = app.config["AUDIT_KEY"]
    head = _rechain(db, events[1:], 2, events[0].entry_hash,
                    mac=lambda h: audit_anchor.entry_mac(key, h))
    _set_head(db, 4, head)
    db.session.commit()
    result = _verify_cli(app)
    assert result.exit_code == 1
    assert "broken at entry 4: it differs from the checkpoint of" in result.output


def test_moving_the_head_back_over_present_entries_is_detected(app, db):
    _seed(db, 4)
    _drop_triggers(db)
    _set_head(db, 2, _rows(db)[1].entry_hash)
    db.session.commit()
    result = _verify_cli(app)
    assert result.exit_code == 1 and "broken at entry 3" in result.output


def test_a_forged_anchor_line_is_refused(app, db):
    _seed(db, 2)
    path = app.config["AUDIT_ANCHOR_FILE"]
    forged = audit_anchor.Checkpoint(2, "f" * 64, audit_anchor.now_iso(), 0)
    with open(path, "a") as fh:
        fh.write(audit_anchor.checkpoint_line("another key of 32 characters....", forged))
    result = _verify_cli(app)
    assert result.exit_code == 1
    assert "anchor file line 2: not signed with this server's audit key" in result.output


def test_every_entry_carries_a_mac_and_checkpoints_come_every_n(tmp_path, db_url):
    app = make_test_app(tmp_path, db_url, AUDIT_CHECKPOINT_EVERY=3)
    from qaportal.extensions import db as _db

    with app.app_context():
        user = make_user()
        _db.session.flush()
        for i in range(7):
            audit.record("test.event", user, actor=user, number=i)
            _db.session.commit()
        key = app.config["AUDIT_KEY"]
        for ev in _rows(_db):
            assert ev.entry_mac == audit_anchor.entry_mac(key, ev.entry_hash)
        path = app.config["AUDIT_ANCHOR_FILE"]
        # The first entry starts the file; then every third one.
        assert [cp.seq for cp in audit_anchor.read_checkpoints(path, key)] == [1, 3, 6]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        key_file = tmp_path / "instance" / "audit-key"
        assert key_file.read_text().strip() == key
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        # The key never enters the database.
        with _db.engine.connect() as conn:
            for table in _db.metadata.sorted_tables:
                for row in conn.execute(table.select()):
                    assert key not in repr(tuple(row)), table.name
        assert audit.verify().ok
        _db.session.remove()
        _db.engine.dispose()


def test_a_rolled_back_entry_leaves_no_checkpoint(tmp_path, db_url):
    """A rolled-back entry's seq is used again: anchoring it would be a false alarm."""
    app = make_test_app(tmp_path, db_url, AUDIT_CHECKPOINT_EVERY=1)
    from qaportal.extensions import db as _db

    with app.app_context():
        audit.record("test.rolled_back", actor_label="test")
        _db.session.rollback()
        audit.record("test.kept", actor_label="test")
        _db.session.commit()
        cps = audit_anchor.read_checkpoints(app.config["AUDIT_ANCHOR_FILE"],
                                            app.config["AUDIT_KEY"])
        assert [(cp.seq, cp.entry_hash) for cp in cps] == [(1, _rows(_db)[0].entry_hash)]
        assert audit.verify().ok
        _db.session.remove()
        _db.engine.dispose()


def test_entries_from_before_anchoring_are_accepted_only_as_recorded(app, db):
    """An upgraded installation: old entries have no MAC; the anchor file fixes how many."""
    _seed(db, 3)
    _drop_triggers(db)
    db.session.execute(sa.text("UPDATE audit_events SET entry_mac = NULL"))
    db.session.commit()
    os.remove(app.config["AUDIT_ANCHOR_FILE"])
    app.extensions.pop("qaportal_audit_legacy", None)
    result = audit.verify()
    assert result.ok and result.legacy == 3
    audit.record("test.after_upgrade", actor_label="test")  # starts the anchor file
    db.session.commit()
    cps = audit_anchor.read_checkpoints(app.config["AUDIT_ANCHOR_FILE"], app.config["AUDIT_KEY"])
    assert [(cp.seq, cp.legacy) for cp in cps] == [(4, 3)]
    assert audit.verify().ok
    db.session.execute(sa.text("UPDATE audit_events SET entry_mac = NULL WHERE seq = 4"))
    db.session.commit()
    result = audit.verify()
    assert not result.ok and result.bad_seq == 4 and "no MAC" in result.reason


def test_two_app_servers_sharing_the_key_each_anchor_the_one_chain(tmp_path, db_url):
    """Scale-out: each server keeps its own anchor file; all check against the one chain."""
    key = "k" * 64
    first = make_test_app(tmp_path / "a", db_url, AUDIT_KEY=key, AUDIT_CHECKPOINT_EVERY=2)
    second = make_test_app(tmp_path / "b", db_url, AUDIT_KEY=key, AUDIT_CHECKPOINT_EVERY=2)
    from qaportal.extensions import db as _db

    try:
        for i in range(6):
            with (first if i % 2 else second).app_context():
                audit.record("test.scale_out", actor_label="test", number=i)
                _db.session.commit()
        for app in (first, second):
            with app.app_context():
                result = _verify_cli(app)
                assert result.exit_code == 0, result.output
                assert audit_anchor.read_checkpoints(app.config["AUDIT_ANCHOR_FILE"], key)
    finally:
        for app in (first, second):
            with app.app_context():
                _db.session.remove()
                _db.engine.dispose()


def test_a_server_with_another_key_is_named(tmp_path, db_url):
    other = make_test_app(tmp_path / "other", db_url, AUDIT_KEY="o" * 64)
    app = make_test_app(tmp_path / "main", db_url, AUDIT_KEY="m" * 64)
    from qaportal.extensions import db as _db

    try:
        with other.app_context():
            audit.record("test.other_key", actor_label="test")
            _db.session.commit()
        with app.app_context():
            result = audit.verify()
            assert not result.ok and result.bad_seq == 1 and "MAC does not match" in result.reason
    finally:
        for each in (other, app):
            with each.app_context():
                _db.session.remove()
                _db.engine.dispose()


def test_checkpoints_go_to_syslog_when_it_listens(app, db, tmp_path, monkeypatch):
    path = str(tmp_path / "log.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    monkeypatch.setattr(audit_anchor, "SYSLOG_SOCKET", path)
    monkeypatch.setattr(audit_anchor, "_syslog", None)
    logger = audit_anchor.logging.getLogger("qaportal.audit.checkpoint")
    handlers = list(logger.handlers)
    try:
        _seed(db, 1)
        message = sock.recv(4096).decode()
        assert "qaportal-audit: checkpoint" in message
        assert json.loads(message.split("checkpoint ", 1)[1].rstrip("\x00"))["seq"] == 1
    finally:
        for handler in logger.handlers[len(handlers):]:
            logger.removeHandler(handler)
            handler.close()
        monkeypatch.setattr(audit_anchor, "_syslog", None)
        sock.close()


def test_no_syslog_socket_is_no_failure(app, db, monkeypatch):
    monkeypatch.setattr(audit_anchor, "SYSLOG_SOCKET", "/nonexistent/log")
    monkeypatch.setattr(audit_anchor, "_syslog", None)
    _seed(db, 2)
    assert _verify_cli(app).exit_code == 0


@pytest.mark.parametrize("key", ["short"])
def test_a_short_audit_key_is_refused(tmp_path, key):
    from qaportal import create_app
    from qaportal.config import ConfigError

    with pytest.raises(ConfigError, match="AUDIT_KEY"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x",
                    "INSTANCE_PATH": str(tmp_path), "AUDIT_KEY": key})


def test_an_unreadable_anchor_file_is_exit_3(app, db):
    _seed(db, 1)
    path = app.config["AUDIT_ANCHOR_FILE"]
    os.remove(path)
    os.mkdir(path)  # reading it fails even for root, unlike a mode change
    result = _verify_cli(app)
    assert result.exit_code == 3 and "anchor file cannot be read" in result.output
