"""The audit log: hash chain, append-only trigger, verification, concurrency, browse, export."""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from qaportal import audit
from qaportal.models import AuditEvent, AuditHead, User
from qaportal.models.audit import DROP_TRIGGERS
from tests.factories import make_user


def _drop_triggers(db):
    """Do what an attacker with database rights would: remove the append-only guard."""
    for stmt in DROP_TRIGGERS[db.engine.dialect.name]:
        db.session.execute(sa.text(stmt))
    db.session.commit()


def _seed(db, n: int = 3) -> User:
    user = make_user()
    for i in range(n):
        audit.record("test.event", user, actor=user, number=i)
    db.session.commit()
    return user


def _verify_cli(app):
    return app.test_cli_runner().invoke(args=["audit-verify"])


def test_entries_chain_by_hash(db):
    user = _seed(db, 3)
    events = list(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)))
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].prev_hash == audit.GENESIS
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_hash == before.entry_hash
    first = events[0]
    assert (first.actor_id, first.actor_label, first.object_type, first.object_id) == (
        user.id, user.email, "users", str(user.id))
    assert first.occurred_at.tzinfo is not None
    assert first.entry_hash == audit.entry_hash(audit._fields(first))
    assert len(first.entry_hash) == 64
    head = db.session.get(AuditHead, 1)
    assert (head.seq, head.entry_hash) == (3, events[-1].entry_hash)


def test_audit_verify_intact_exits_0_with_the_count(app, db):
    _seed(db, 4)
    result = _verify_cli(app)
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "audit log intact: 4 entries"


def test_audit_verify_on_an_empty_log(app, db):
    result = _verify_cli(app)
    assert result.exit_code == 0 and "0 entries" in result.output


def test_tampered_row_is_named(app, db):
    _seed(db, 4)
    _drop_triggers(db)
    db.session.execute(sa.text("UPDATE audit_events SET action = 'test.innocent' WHERE seq = 2"))
    db.session.commit()
    result = _verify_cli(app)
    assert result.exit_code == 1
    assert "audit log broken at entry 2: content does not match its hash" in result.output


def test_rewritten_row_with_a_fresh_hash_breaks_the_next_link(app, db):
    _seed(db, 4)
    _drop_triggers(db)
    ev = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.seq == 2))
    ev.details = {"number": 99}
    ev.entry_hash = audit.entry_hash(audit._fields(ev))
    db.session.commit()
    result = _verify_cli(app)
    assert result.exit_code == 1 and "entry 3: link to the previous entry" in result.output


def test_deleted_last_row_is_detected(app, db):
    _seed(db, 4)
    _drop_triggers(db)
    db.session.execute(sa.text("DELETE FROM audit_events WHERE seq = 4"))
    db.session.commit()
    result = _verify_cli(app)
    assert result.exit_code == 1
    assert "broken at entry 4: entries after the last one present were removed" in result.output


def test_deleted_middle_row_is_detected(app, db):
    _seed(db, 4)
    _drop_triggers(db)
    db.session.execute(sa.text("DELETE FROM audit_events WHERE seq = 2"))
    db.session.commit()
    result = _verify_cli(app)
    assert result.exit_code == 1 and "entry 2: entry 2 is missing" in result.output


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET action = 'x' WHERE seq = 1",
    "DELETE FROM audit_events WHERE seq = 1",
    "DELETE FROM audit_events",
])
def test_the_database_refuses_update_and_delete(db, statement):
    _seed(db, 2)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        db.session.execute(sa.text(statement))
        db.session.commit()
    db.session.rollback()
    assert audit.verify().ok


def test_concurrent_writers_do_not_fork_the_chain(app, db):
    user_id = make_user().id
    db.session.commit()
    threads, per_thread, errors = 6, 8, []
    barrier = threading.Barrier(threads)

    def writer(n: int):
        try:
            with app.app_context():
                barrier.wait()
                for i in range(per_thread):
                    actor = db.session.get(User, user_id)  # a read first, as a request does
                    audit.record("test.concurrent", actor, actor=actor, thread=n, i=i)
                    db.session.commit()
                db.session.remove()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    pool = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not errors, errors
    result = audit.verify()
    assert result.ok, result
    assert result.count == threads * per_thread
    seqs = list(db.session.scalars(sa.select(AuditEvent.seq).order_by(AuditEvent.seq)))
    assert seqs == list(range(1, threads * per_thread + 1))


# -- logins and changes are audited -----------------------------------------------------------


def test_user_role_and_credential_changes_are_audited(client, login_as, db):
    admin = login_as("admin")
    client.post("/admin/users/new", data={"email": "new@example.org", "full_name": "New Person",
                                          "roles": ["radiologist"]})
    new = db.session.scalar(sa.select(User).where(User.email == "new@example.org"))
    client.post(f"/admin/users/{new.id}", data={
        "email": "new@example.org", "full_name": "New Person",
        "roles": ["radiologist", "reviewer"], "active": "y",
    })
    client.post(f"/admin/users/{new.id}/licenses", data={
        "lic-jurisdiction": "ny", "lic-number": "NY-1", "lic-valid_from": "2024-01-01",
        "lic-valid_to": "2030-01-01",
    })
    client.post(f"/admin/users/{new.id}/reset")
    client.post(f"/admin/users/{new.id}/deactivate")
    events = list(db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.object_id == str(new.id),
                                    AuditEvent.action != "auth.login")
        .order_by(AuditEvent.seq)))
    assert [e.action for e in events] == [
        "user.created", "user.updated", "credential.license_added", "user.password_reset",
        "user.deactivated",
    ]
    assert all(e.actor_id == admin.id for e in events)
    assert events[1].details["changes"] == {
        "roles": [["radiologist"], ["radiologist", "reviewer"]]}
    assert events[2].details["jurisdiction"] == "NY"
    assert audit.verify().ok


# -- browsing, filtering, export ------------------------------------------------------------


def _browse_setup(db):
    alice = make_user(email="alice@example.test")
    bob = make_user(email="bob@example.test")
    audit.record("study.viewed", ("studies", 7), actor=alice)
    audit.record("study.viewed", ("studies", 8), actor=bob)
    audit.record("user.updated", bob, actor=alice, changes={"active": [True, False]})
    audit.record("auth.login_failed", actor_label="=HYPERLINK(\"http://evil.test\")",
                 reason="unknown account")
    audit.record("auth.login_failed", actor_label="\tcmd", reason="unknown account")
    db.session.commit()
    return alice, bob


def _rows(html: str) -> int:
    return html.count("<tr><td>")


@pytest.mark.parametrize(("query", "count"), [
    ({}, 5),
    ({"actor": "ALICE@"}, 2),
    ({"action": "study."}, 2),
    ({"object_type": "studies", "object_id": "8"}, 1),
    ({"date_from": "2000-01-01", "date_to": "2000-01-02"}, 0),
    ({"date_to": "2000-01-02"}, 0),
])
def test_audit_filters(client, login_as, db, query, count):
    _browse_setup(db)
    login_as("qa_manager")
    today = datetime.now(UTC).date()
    response = client.get("/audit/", query_string=query)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    # The qa manager's own sign-in is an entry too, unless a filter excludes it.
    own = 1 if set(query) <= {"date_from", "date_to"} and not query else 0
    assert _rows(html) == count + own
    if not query:
        one_day = {"date_from": today.isoformat(), "date_to": today.isoformat()}
        assert _rows(client.get("/audit/", query_string=one_day).get_data(as_text=True)) >= 6


def test_audit_pages_by_keyset_and_bad_cursors(app, client, login_as, db):
    """Older/Newer walk every entry once, newest first; the cursor names only a seq."""
    import re

    app.config["AUDIT_PAGE_SIZE"] = 2
    _browse_setup(db)
    login_as("admin")
    first = client.get("/audit/").get_data(as_text=True)
    total = db.session.scalar(sa.select(sa.func.max(AuditEvent.seq)))
    seen, html, hops = [], first, 0
    while True:
        seen += [int(n) for n in re.findall(r"<tr><td>(\d+)</td>", html)]
        older = re.search(r'href="([^"]+)">Older', html)
        if older is None:
            break
        assert re.search(r"cursor=n\d+(&|$)", older.group(1).replace("&amp;", "&"))
        html = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
        hops += 1
        assert "‹ Newer" in html
    # entries written while walking (each view is audited) come first, never twice
    assert seen == sorted(set(seen), reverse=True) and set(range(1, 6)) <= set(seen)
    assert hops >= 2 and len(seen) <= total + hops
    assert "‹ Newer" not in first
    for cursor in ("-5", "0", "abc", "n99999999999999999999", "p1' or 1=1"):
        resp = client.get("/audit/", query_string={"cursor": cursor})
        assert resp.status_code == 200 and _rows(resp.get_data(as_text=True)) == 2


def test_audit_count_is_capped(app, client, login_as, db):
    _browse_setup(db)
    login_as("admin")
    assert "More than" not in client.get("/audit/").get_data(as_text=True)
    app.config["LIST_COUNT_CAP"] = 3
    assert "More than 3 entries" in client.get("/audit/").get_data(as_text=True)


def test_viewing_and_exporting_are_audited(client, login_as, db):
    login_as("qa_manager")
    client.get("/audit/?action=auth.")
    client.get("/audit/export.csv")
    actions = list(db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.seq)))
    assert actions[-2:] == ["audit.viewed", "audit.exported"]


def test_csv_export_content_and_formula_escaping(client, login_as, db):
    alice, bob = _browse_setup(db)
    login_as("admin")
    response = client.get("/audit/export.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="audit-')
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["seq"] for r in rows] == [str(i) for i in range(1, len(rows) + 1)]
    first = rows[0]
    assert (first["actor_label"], first["action"], first["object_type"], first["object_id"]) \
        == ("alice@example.test", "study.viewed", "studies", "7")
    assert len(first["entry_hash"]) == 64 and rows[1]["prev_hash"] == first["entry_hash"]
    assert '"active": [true, false]' in rows[2]["details"]
    assert rows[3]["actor_label"] == "'=HYPERLINK(\"http://evil.test\")"
    assert rows[4]["actor_label"] == "'\tcmd"
    filtered = client.get("/audit/export.csv?actor=bob").get_data(as_text=True)
    assert len(list(csv.DictReader(io.StringIO(filtered)))) == 1


def test_recent_entries_on_the_home_page_of_qa_and_admin(client, login_as, db):
    _browse_setup(db)
    login_as("qa_manager")
    html = client.get("/").get_data(as_text=True)
    assert "Audit log" in html and "auth.login" in html


def test_timestamps_are_utc(db):
    _seed(db, 1)
    ev = db.session.scalar(sa.select(AuditEvent))
    assert ev.occurred_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - ev.occurred_at) < timedelta(minutes=1)


def test_batched_entries_are_written_together_in_order_at_the_end(app, db):
    user = _seed(db, 1)
    head_updates: list[str] = []

    def seen(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("UPDATE AUDIT_HEAD"):
            head_updates.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", seen)
    try:
        with audit.batched():
            for i in range(3):
                audit.record("test.batched", user, actor=user, number=i)
            with audit.batched():  # nested: written with the outer block
                audit.record("test.batched", user, actor=user, number=3)
            db.session.flush()
            assert db.session.scalar(sa.select(sa.func.count(AuditEvent.id))) == 1
        db.session.commit()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", seen)
    assert len(head_updates) == 2  # take the next seqs, then name the last entry
    events = list(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)))
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.details.get("number") for e in events[1:]] == [0, 1, 2, 3]
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
    head = db.session.get(AuditHead, 1)
    assert (head.seq, head.entry_hash) == (5, events[-1].entry_hash)
    assert audit.verify().ok
    audit.record("test.after", user, actor=user)  # unbatched again
    db.session.commit()
    assert db.session.get(AuditHead, 1).seq == 6
    assert audit.verify().ok


def test_a_batched_block_that_fails_writes_nothing(app, db):
    user = _seed(db, 2)
    with pytest.raises(RuntimeError), audit.batched():
        audit.record("test.batched", user, actor=user)
        raise RuntimeError("the caller's work failed")
    db.session.commit()
    assert db.session.get(AuditHead, 1).seq == 2
    assert [e.action for e in db.session.scalars(sa.select(AuditEvent))] == ["test.event"] * 2
    assert audit.verify().ok
