"""Home page per role, navigation by role, credential expiry warnings."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from tests.factories import make_certification

NAV = re.compile(r'<nav class="mainnav"[^>]*>(.*?)</nav>', re.S)


def _nav(html: str) -> list[str]:
    return re.findall(r">([^<]+)</a>", NAV.search(html).group(1))


@pytest.mark.parametrize(("role", "nav"), [
    ("radiologist", ["Home", "Studies", "Second opinions"]),
    ("reviewer", ["Home", "Reviews"]),
    ("qa_manager", ["Home", "Studies", "Quality", "Reports", "Audit log"]),
    ("admin", ["Home", "Studies", "Reports", "Audit log", "Users"]),
])
def test_navigation_shows_what_the_role_may_use(client, login_as, role, nav):
    login_as(role)
    assert _nav(client.get("/").get_data(as_text=True)) == nav


def test_every_nav_link_works_for_its_role(client, login_as):
    from qaportal.navigation import NAV_ITEMS

    login_as("radiologist", "reviewer", "qa_manager", "admin")
    html = client.get("/").get_data(as_text=True)
    links = re.findall(r'href="([^"]+)"', NAV.search(html).group(1))
    assert len(links) >= 4 and len(links) <= len(NAV_ITEMS)
    for link in links:
        assert client.get(link).status_code == 200, link


def test_radiologist_without_credentials_sees_the_empty_state(client, login_as):
    login_as("radiologist")
    html = client.get("/").get_data(as_text=True)
    assert "Your credentials" in html and "will appear here" in html


def test_expiring_and_expired_credentials_are_flagged(client, login_as, db):
    today = date.today()
    user = login_as("radiologist", licenses=[
        ("CA", today - timedelta(days=400), today + timedelta(days=20)),
        ("NY", today - timedelta(days=400), today + timedelta(days=500)),
    ])
    make_certification(user, expires_on=today - timedelta(days=1))
    db.session.commit()
    html = client.get("/").get_data(as_text=True)
    assert "2 credentials need attention" in html
    assert f"expires {(today + timedelta(days=20)).isoformat()}" in html
    assert f"expired {(today - timedelta(days=1)).isoformat()}" in html
    account = client.get("/account").get_data(as_text=True)
    assert "badge-expiring" in account and "badge-expired" in account


def test_a_role_without_panels_gets_a_calm_empty_state(client, login_as, monkeypatch):
    from qaportal.home import panels

    # Every role has a panel now (reviewers: peer reviews); simulate one that has none.
    monkeypatch.setattr(panels, "PANELS", [p for p in panels.PANELS if "reviewer" not in p.roles])
    login_as("reviewer")
    html = client.get("/").get_data(as_text=True)
    assert "Nothing needs your attention" in html and "no role yet" not in html


def test_admin_home_counts_accounts(client, login_as):
    login_as("admin")
    html = client.get("/").get_data(as_text=True)
    assert "1 active account of 1." in html


def test_every_signed_in_page_links_to_the_pdf_verify_page(client, login_as):
    login_as("reviewer")
    page = client.get("/").get_data(as_text=True)
    assert 'href="/reports/verify"' in page and "Verify a qaportal PDF" in page


def test_reviewer_home_counts_open_and_overdue_reviews_in_the_database(client, login_as, db):
    # counted by SQL (a reviewer at scale holds thousands): submitted and cancelled
    # assignments are not "to do", an open one past its due date is overdue
    from tests.factories import make_assignment, make_study, make_user

    reviewer = login_as("reviewer")
    owner = make_user(["radiologist"])
    for due_in_days, status in ((7, "assigned"), (7, "assigned"), (-2, "assigned"),
                                (-2, "submitted"), (-2, "cancelled")):
        a = make_assignment(make_study(owner).read, reviewer, source="adhoc",
                            due_in_days=due_in_days)
        a.status = status
    db.session.commit()
    text = re.sub(r"<[^>]+>|\s+", " ", client.get("/").get_data(as_text=True))
    found = re.search(r"(\d+) reviews? to do(, +(\d+) overdue)?", text)
    assert found and (found.group(1), found.group(3)) == ("3", "1"), text[-1500:]
