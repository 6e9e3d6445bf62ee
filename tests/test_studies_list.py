"""The study list: search by patient name, MRN or accession (POST only), filters, sorting,
pages; a search never matches the real identity of a study the user sees de-identified."""

from __future__ import annotations

import re
from datetime import date, timedelta

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent
from qaportal.studies.access import grant_access
from qaportal.studies.routes import PAGE_SIZE
from tests.factories import (
    DEFAULT_PASSWORD,
    make_assignment,
    make_opinion_request,
    make_study,
    make_user,
)


def _names(response) -> list[str]:
    html = response.get_data(as_text=True)
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [row.split("</a>", 1)[0].rsplit(">", 1)[1]
            for row in body.split("<tr>")[1:] if "</a>" in row]


def _search(client, **fields):
    data = {"q": "", "modality": "", "date_from": "", "date_to": "", "status": "",
            "sort": "uploaded_desc", "cursor": ""}
    data.update(fields)
    return client.post("/studies/", data=data)


def _world(owner):
    today = date.today()
    a = make_study(owner, patient_name="HARTLEY^ANNA", modality="CT",
                   description="CT HEAD W/O CONTRAST", study_date=today - timedelta(days=40))
    b = make_study(owner, patient_name="OKAFOR^BEN", modality="MR",
                   description="MR LUMBAR SPINE", study_date=today - timedelta(days=5))
    c = make_study(owner, patient_name="PRICE^CARLA", modality="CT/PT",
                   description="PET-CT WHOLE BODY", study_date=today - timedelta(days=400))
    db.session.commit()
    return a, b, c


def test_search_by_name_mrn_and_accession(client, login_as):
    owner = login_as("radiologist")
    a, b, c = _world(owner)
    assert _names(_search(client, q="okafor")) == ["OKAFOR, BEN"]
    assert _names(_search(client, q="Hartley Anna")) == ["HARTLEY, ANNA"]
    assert _names(_search(client, q=c.patient_id.lower())) == ["PRICE, CARLA"]
    assert _names(_search(client, q=a.accession_number)) == ["HARTLEY, ANNA"]
    response = _search(client, q="nobody-like-this")
    assert _names(response) == []
    assert "No study you can see matches this search." in response.get_data(as_text=True)


def test_filters_by_modality_date_and_sorts(client, login_as):
    owner = login_as("radiologist")
    _world(owner)
    assert sorted(_names(_search(client, modality="CT"))) == ["HARTLEY, ANNA", "PRICE, CARLA"]
    assert _names(_search(client, modality="PT")) == ["PRICE, CARLA"]
    recent = (date.today() - timedelta(days=60)).isoformat()
    assert sorted(_names(_search(client, date_from=recent))) == ["HARTLEY, ANNA", "OKAFOR, BEN"]
    assert _names(_search(client, sort="date_asc")) == ["PRICE, CARLA", "HARTLEY, ANNA",
                                                        "OKAFOR, BEN"]
    assert _names(_search(client, sort="date_desc")) == ["OKAFOR, BEN", "HARTLEY, ANNA",
                                                         "PRICE, CARLA"]
    # The non-identifying filters work by GET too (a bookmark, a pager link).
    response = client.get(f"/studies/?modality=MR&date_from={recent}")
    assert _names(response) == ["OKAFOR, BEN"]


def test_end_date_before_start_is_a_form_error_that_keeps_the_input(client, login_as):
    owner = login_as("radiologist")
    _world(owner)
    response = _search(client, q="okafor", date_from="2026-05-01", date_to="2026-04-01")
    html = response.get_data(as_text=True)
    assert "The end date is before the start date." in html
    assert 'value="okafor"' in html and 'value="2026-05-01"' in html


def test_workflow_filter(client, login_as):
    owner = login_as("radiologist")
    a, b, c = _world(owner)
    make_user(roles=("radiologist",), subspecialties=["neuro"], licenses=["CA"])
    make_opinion_request(a, owner)
    reviewer = make_user(roles=("reviewer",))
    make_assignment(b.read, reviewer)
    db.session.commit()
    assert _names(_search(client, status="opinion")) == ["HARTLEY, ANNA"]
    assert _names(_search(client, status="review")) == ["OKAFOR, BEN"]
    assert _names(_search(client, status="none")) == ["PRICE, CARLA"]


def test_patient_text_is_never_taken_from_the_url(client, login_as):
    owner = login_as("radiologist")
    _world(owner)
    response = client.get("/studies/?q=okafor")
    assert len(_names(response)) == 3  # ignored: a name never travels in a URL
    assert 'value="okafor"' not in response.get_data(as_text=True)


def test_search_is_audited_without_the_searched_text(client, login_as):
    owner = login_as("radiologist")
    _world(owner)
    _search(client, q="okafor", modality="MR")
    event = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "study.list_viewed").order_by(AuditEvent.seq.desc())).first()
    assert event.details["searched"] is True and event.details["modality"] == "MR"
    assert "okafor" not in repr(event.details).lower()


def test_search_without_csrf_token_is_refused(tmp_path, db_url):
    from tests.conftest import make_test_app

    app = make_test_app(tmp_path, db_url, WTF_CSRF_ENABLED=True)
    with app.app_context():
        user = make_user()
        db.session.commit()
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        data = {"email": user.email, "password": DEFAULT_PASSWORD, "csrf_token": token}
        assert client.post("/login", data=data).status_code == 302
        assert client.post("/studies/", data={"q": "x"}).status_code == 400
        listing = client.get("/studies/").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', listing).group(1)
        assert client.post("/studies/", data={"q": "x", "csrf_token": token}).status_code == 200
        db.session.remove()
        db.engine.dispose()


def test_deidentified_study_is_found_by_pseudonym_never_by_real_identity(client, auth, app):
    owner = make_user(roles=("radiologist",))
    reviewer = make_user(roles=("reviewer",))
    consultant = make_user(roles=("radiologist",))
    study = make_study(owner, patient_name="SECRET^PERSON", study_date=date(2026, 3, 10))
    grant_access(study, reviewer, mode="deidentified", source=("review_assignment", 1), by=owner)
    blind_full = make_user(roles=("reviewer",))
    grant_access(study, blind_full, mode="full", source=("review_assignment", 2), by=owner)
    grant_access(study, consultant, mode="full", source=("opinion_request", 3), by=owner)
    db.session.commit()
    for user in (reviewer, blind_full):
        auth.login(user)
        assert _names(_search(client, q="secret")) == []
        assert _names(_search(client, q=study.patient_id)) == []
        assert _names(_search(client, q=study.accession_number)) == []
        assert len(_names(_search(client, q=study.pseudonym))) == 1
        auth.logout()
    auth.login(reviewer)
    # The de-identified viewer is shown the shifted date (17 days earlier): filter on that.
    shown = date(2026, 3, 10) + timedelta(days=study.deid_date_shift_days)
    assert len(_names(_search(client, date_from=shown.isoformat(),
                              date_to=shown.isoformat()))) == 1
    assert _names(_search(client, date_from="2026-03-10", date_to="2026-03-10")) == []
    auth.logout()
    auth.login(consultant)  # a full, non-blind share sees and finds the patient
    assert _names(_search(client, q="secret")) == ["SECRET, PERSON"]


def test_pages_carry_the_filters(client, login_as):
    owner = login_as("radiologist")
    for i in range(PAGE_SIZE + 3):
        make_study(owner, patient_name=f"PAGER^P{i:03d}", modality="MR", report=None)
    make_study(owner, patient_name="OTHER^CT", modality="CT", report=None)
    db.session.commit()
    first = client.get("/studies/?modality=MR")
    html = first.get_data(as_text=True)
    assert f"{PAGE_SIZE + 3} studies you can see" not in html  # the filter is active
    assert f"{PAGE_SIZE + 3} studies match your search" in html
    link = re.search(r'<a href="([^"]+)">Next', html).group(1).replace("&amp;", "&")
    assert "modality=MR" in link and re.search(r"cursor=n\d+", link)
    second = client.get(link)
    assert len(_names(second)) == 3
    assert set(_names(first)).isdisjoint(_names(second))
    assert "Previous" in second.get_data(as_text=True)
    # With a name in the search the pager is a form (POST), not a link carrying the name.
    by_name = _search(client, q="pager")
    html = by_name.get_data(as_text=True)
    assert len(_names(by_name)) == PAGE_SIZE
    assert "q=pager" not in html and 'name="q" value="pager"' in html
    cursor = re.search(r'name="cursor" value="(n\d+)"', html).group(1)
    page_two = _search(client, q="pager", cursor=cursor)
    assert len(_names(page_two)) == 3
    assert set(_names(page_two)).isdisjoint(_names(by_name))
    # the cursor names a row id, never a sorted value (a name under "sort by name")
    assert not re.search(r"cursor=[^\d&\"]*[A-Za-z]{2}", html)