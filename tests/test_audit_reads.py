"""Every page or file that shows patient data writes an audit entry.

The walk takes every GET route of app.url_map, with the objects of the permission matrix
(planted studies among them), as each role the matrix lets in, and fails on any response
that shows a patient (name, patient id, accession number, pseudonym) or a study's images
and records nothing.
"""

from __future__ import annotations

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent, Study
from qaportal.templating import person_name
from tests.factories import make_user
from tests.permission_matrix import EXPECTED, OBJECTS, ROLES

# What a response may carry that is not patient data: the sign-in itself.
NOT_A_READ = {"auth.login"}
STUDY_ARGS = {"study_id", "series_id", "instance_id", "assignment_id"}
PATIENT_FILES = ("image/", "application/zip", "application/dicom", "application/octet-stream")


def _plant() -> set[str]:
    """Give every study text of its own and return what marks a page as showing one."""
    marks: set[str] = set()
    for study in db.session.scalars(sa.select(Study)):
        study.study_description = f"PLANTED STUDY {study.id}"
        study.clinical_history = f"PLANTED HISTORY {study.id}"
        if study.read is not None:
            study.read.report_text = f"PLANTED REPORT {study.id}"
        marks.update(filter(None, (study.patient_id, study.accession_number, study.pseudonym,
                                   study.patient_name, person_name(study.patient_name),
                                   study.study_description, study.clinical_history,
                                   study.read.report_text if study.read else None)))
    db.session.commit()
    return marks


def _last_seq() -> int:
    return db.session.scalar(sa.select(sa.func.coalesce(sa.func.max(AuditEvent.seq), 0)))


def _shows_patient_data(rule, response, marks: set[str]) -> str | None:
    if response.mimetype.startswith(PATIENT_FILES) and set(rule.arguments) & STUDY_ARGS:
        return response.mimetype
    text = response.get_data(as_text=True) if response.mimetype.startswith(
        ("text/", "application/json")) else ""
    return next((m for m in marks if m in text), None)


def test_every_get_that_shows_patient_data_records_an_audit_entry(app, client, auth):
    # Each request on its own: a frame right after another of its series is covered by
    # the entry of that series view (tested below), which would hide a silent route here.
    app.config["AUDIT_SERIES_VIEW_MINUTES"] = 0
    users = {role: make_user(roles=(role,)) for role in ROLES}
    users["other_admin"] = make_user(roles=("admin",))
    objs = {name: build(users) for name, build in OBJECTS.items()}
    db.session.commit()
    marks = _plant()
    rules = [r for r in app.url_map.iter_rules() if "GET" in r.methods and r.endpoint in EXPECTED]
    silent, shown = [], 0
    for role in ROLES:
        auth.logout()
        assert auth.login(users[role]).status_code == 302
        for rule in sorted(rules, key=lambda r: r.rule):
            entry = EXPECTED[rule.endpoint]
            method = entry.get("method") or "GET"
            if entry.get("GET", {}).get(role, entry[role] if method == "GET" else None) != 200:
                continue
            values = entry["params"](objs, users) if "params" in entry else {}
            url = rule.build({k: v for k, v in values.items() if k in rule.arguments},
                             append_unknown=False)[1]
            before = _last_seq()
            response = client.get(url)
            what = _shows_patient_data(rule, response, marks)
            # A streamed body not read to its end is closed now, inside this test's context,
            # not later by the garbage collector while another request's context is pushed.
            response.close()
            if response.status_code != 200 or what is None:
                continue
            shown += 1
            db.session.expire_all()
            reads = db.session.scalars(sa.select(AuditEvent.action).where(
                AuditEvent.seq > before, AuditEvent.action.not_in(NOT_A_READ))).all()
            if not reads:
                silent.append(f"{role} GET {url} ({rule.endpoint}) shows {what!r}")
    assert shown >= 10, "the walk found too few pages with patient data to mean anything"
    assert not silent, "patient data shown without an audit entry:\n" + "\n".join(silent)


def _series_views(study_id: int) -> list[dict]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(AuditEvent.details).where(
        AuditEvent.action == "study.series_viewed", AuditEvent.object_id == str(study_id))
        .order_by(AuditEvent.seq)))


def test_one_entry_per_series_view_not_per_frame(app, client, auth, login_as):
    from tests.permission_matrix import _viewer_instance

    user = login_as("radiologist")
    inst = _viewer_instance({"radiologist": user})
    db.session.commit()
    study_id, series_id = inst.series.study_id, inst.series_id
    frame = f"/studies/{study_id}/instances/{inst.id}/frames/0.png"
    thumb = f"/studies/{study_id}/series/{series_id}/thumbnail.png"
    # A frame fetched on its own is a read of the series: one entry.
    assert client.get(frame).status_code == 200
    assert [(d["series_id"], d["via"]) for d in _series_views(study_id)] == [(series_id, "frame")]
    # More frames and the thumbnail of the same series, within the window: nothing new.
    for url in (frame, frame + "?wc=40&ww=400", thumb):
        assert client.get(url).status_code == 200
    assert len(_series_views(study_id)) == 1
    # Opening the series in the viewer writes its own entry; its frames add none.
    assert client.get(f"/studies/{study_id}/series/{series_id}/frames.json").status_code == 200
    assert client.get(frame).status_code == 200
    assert len(_series_views(study_id)) == 2
    # Another user's view of the series is recorded for them.
    auth.logout()
    other = login_as("admin")
    assert client.get(thumb).status_code == 200
    views = _series_views(study_id)
    assert len(views) == 3 and views[-1]["via"] == "thumbnail"
    last = db.session.scalar(sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
    assert last.actor_id == other.id


def test_edit_page_and_opinion_form_record_the_read(app, client, login_as):
    from tests.factories import make_study

    user = login_as("radiologist", licenses=["CA"])
    study = make_study(user)
    db.session.commit()
    for url, page in ((f"/studies/{study.id}/edit", "edit"),
                      (f"/opinions/new/{study.id}", "opinion_new")):
        assert client.get(url).status_code == 200
        db.session.expire_all()
        last = db.session.scalar(sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
        assert (last.action, last.object_id, last.details["page"], last.actor_id) == (
            "study.viewed", str(study.id), page, user.id)
