"""Control characters in name-like fields are refused; e-mail after commit never fails an action."""

from __future__ import annotations

import email
import email.policy
import logging
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import Conference, License, Notification, OpinionRequest, User
from qaportal.validation import control_characters
from tests.factories import make_user
from tests.opinion_world import planted_study

BAD_NAMES = ["Ann\nSmith", "Ann\r\nSmith", "Ann\tSmith", "Ann\x00", "Ann \u202eSmith",
             "Ann\u200bSmith", "Ann\x85Smith"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_control_characters_are_found(name):
    assert control_characters(name)


def test_ordinary_names_pass():
    assert control_characters("Dr. José O'Brien-Łukasiewicz, MD (渡辺)") == []


@pytest.mark.parametrize("name", ["Ann\nSmith", "Ann \u202eSmith", "Ann\tSmith"])
def test_admin_refuses_control_characters_in_a_new_users_name(client, login_as, name):
    login_as("admin")
    response = client.post("/admin/users/new", data={
        "email": "new.person@example.test", "full_name": name, "roles": ["radiologist"]})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "no line breaks, tabs or invisible control characters" in page
    assert 'value="new.person@example.test"' in page  # what was typed is kept
    assert db.session.scalar(sa.select(User).where(User.email == "new.person@example.test")) \
        is None


def test_admin_refuses_control_characters_when_editing_a_name(client, login_as):
    login_as("admin")
    person = make_user(full_name="Plain Name")
    db.session.commit()
    response = client.post(f"/admin/users/{person.id}", data={
        "email": person.email, "full_name": "Plain\nName", "roles": ["radiologist"],
        "active": "y"})
    assert response.status_code == 200
    assert "no line breaks" in response.get_data(as_text=True)
    db.session.refresh(person)
    assert person.full_name == "Plain Name"


def test_credentials_refuse_control_characters(client, login_as):
    login_as("admin")
    person = make_user()
    db.session.commit()
    client.post(f"/admin/users/{person.id}/licenses", data={
        "lic-jurisdiction": "CA", "lic-number": "A12\n345", "lic-valid_from": "2024-01-01",
        "lic-valid_to": "2030-01-01"})
    assert db.session.scalar(sa.select(sa.func.count()).select_from(License)) == 0


def test_conference_title_refuses_control_characters(client, login_as):
    login_as("qa_manager")
    response = client.post("/qa/conferences", data={"title": "M&M\u202e", "held_on":
                                                    date.today().isoformat()})
    assert response.status_code == 200
    assert "no line breaks" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Conference)) == 0


def test_cli_refuses_a_name_with_a_line_break(app):
    result = app.test_cli_runner().invoke(args=["create-user", "cli@example.test", "--name",
                                                "Two\nLines", "--role", "radiologist"])
    assert result.exit_code != 0 and "--name is not valid" in result.output
    assert db.session.scalar(sa.select(User).where(User.email == "cli@example.test")) is None


# -- e-mail after commit ------------------------------------------------------------------------


def _request_to_pool(client, auth, people):
    a = people["a"]
    study = planted_study(a)
    db.session.commit()
    auth.login(a)
    return client.post(f"/opinions/new/{study.id}", data={
        "request_type": "opinion", "clinical_question": "Infarct?", "priority": "stat",
        "recipient": "pool", "pool": "neuro", "colleague": "None",
        "preliminary_read": "Prelim", "clinical_history": "Hx",
    })


def test_a_line_break_in_a_stored_name_neither_fails_nor_drops_the_mail(app, client, auth,
                                                                        people):
    # A name stored before names were checked: it ends up in the e-mail subject.
    people["a"].full_name = "Dr Line\nBreak"
    db.session.commit()
    response = _request_to_pool(client, auth, people)
    assert response.status_code == 302
    assert db.session.scalar(sa.select(OpinionRequest)) is not None
    mails = sorted(Path(app.config["OUTBOX_DIR"]).glob("*.eml"))
    assert len(mails) == 2  # both pool members are told
    for mail in mails:
        subject = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)[
            "Subject"]
        assert "Dr Line Break" in subject and "\n" not in subject


def test_a_mail_failure_after_commit_keeps_the_saved_action(app, client, auth, people, caplog,
                                                          tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("the outbox cannot be created here")
    app.config["OUTBOX_DIR"] = str(blocker)
    with caplog.at_level(logging.ERROR):
        response = _request_to_pool(client, auth, people)
    assert response.status_code == 302
    req = db.session.scalar(sa.select(OpinionRequest))
    assert req is not None and req.status == "open"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 2
    logged = [r.getMessage() for r in caplog.records if "e-mail after commit" in r.getMessage()]
    assert logged
    assert not any(people["b"].email in m or "Infarct" in m for m in logged)
