"""Opening a notification's target marks it read; the home page greets once."""

from __future__ import annotations

import re

import sqlalchemy as sa

from qaportal.models import Notification
from tests.factories import DEFAULT_PASSWORD, make_user


def _bell(page: str) -> int:
    return int(re.search(r'aria-label="Notifications: (\d+) unread"', page).group(1))


def test_opening_the_target_page_marks_its_notifications_read(client, login_as, db):
    user = login_as("radiologist")
    other = make_user()
    db.session.add_all([
        Notification(user_id=user.id, kind="x", message="About your account", link="/account"),
        Notification(user_id=user.id, kind="x", message="Elsewhere", link="/studies/"),
        Notification(user_id=other.id, kind="x", message="Not yours", link="/account"),
    ])
    db.session.commit()
    assert _bell(client.get("/").get_data(as_text=True)) == 2
    page = client.get("/account").get_data(as_text=True)  # e.g. from the e-mail's link
    assert _bell(page) == 1  # the bell shrinks on the very page opened
    unread = db.session.scalars(sa.select(Notification.message).where(
        Notification.read_at.is_(None)).order_by(Notification.id)).all()
    assert unread == ["Elsewhere", "Not yours"]


def test_a_notification_with_a_query_link_is_marked_on_that_page(client, login_as, db):
    user = login_as("radiologist")
    db.session.add(Notification(user_id=user.id, kind="x", message="Tab",
                                link="/account?tab=2"))
    db.session.commit()
    client.get("/account?tab=2")
    assert db.session.scalar(sa.select(Notification.read_at)) is not None


def test_home_page_greets_once(client, db):
    user = make_user(full_name="Grace Hopper")
    db.session.commit()
    response = client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD},
                           follow_redirects=True)
    page = response.get_data(as_text=True)
    main = page.split("<main", 1)[-1]
    assert len(re.findall(r"Welcome|Good day", main)) == 1
    assert "Good day, Grace Hopper" in main
