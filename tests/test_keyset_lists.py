"""Every list pages by keyset: walking the pager forward, then back, visits each row once in
the list's order, with more rows than a page; the page size is stated; a cursor naming
another user's row shows nothing of theirs (the list starts over). SQLite and PostgreSQL.
"""

from __future__ import annotations

import html
import re
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from qaportal.extensions import db as _db
from qaportal.models import Conference, utcnow
from qaportal.notify import notify
from qaportal.qa import cases as case_service
from qaportal.qa import learning
from tests.factories import (
    make_assignment,
    make_opinion_request,
    make_review,
    make_study,
    make_user,
)

ROWS = 7  # more than two pages of PAGE
PAGE = 3


@pytest.fixture
def world(app, db):
    app.config["LIST_PAGE_SIZE"] = PAGE
    reader = make_user(["radiologist"], subspecialties=["body"], licenses=["CA"])
    consultant = make_user(["radiologist"], subspecialties=["neuro"], licenses=["CA"])
    w = {
        "reader": reader, "consultant": consultant,
        "reader2": make_user(["radiologist"], subspecialties=["neuro"], licenses=["CA"]),
        "reviewer": make_user(["reviewer"]), "reviewer2": make_user(["reviewer"]),
        "member": make_user(["reviewer", "radiologist"]),
        "member2": make_user(["reviewer", "radiologist"]),
        "qa": make_user(["qa_manager"]),
    }
    db.session.commit()
    ids: dict[str, list[int]] = {k: [] for k in (
        "open", "done", "cases", "seats", "feedback", "notes", "mine", "pool", "sent",
        "confs", "teaching")}
    for i in range(ROWS):
        # open assignments due one day apart, in reverse creation order of due dates
        a = make_assignment(make_study(reader).read, w["reviewer"], due_in_days=30 - i)
        ids["open"].insert(0, a.id)
        ids["done"].insert(0, make_review(make_study(reader).read, w["reviewer"], "1")
                           .assignment_id)
        review = make_review(make_study(reader).read, w["reviewer"], "3a")
        ids["done"].insert(0, review.assignment_id)  # submitted too, a moment later
        case = case_service.open_case(review, by=w["reviewer"])
        case.opened_at = utcnow() - timedelta(days=100 - i)
        ids["cases"].append(case.id)
        case_service.assign_committee(case, [w["member"]], w["qa"])
        case_service.cast_vote(case, w["member"], "3a", "Missed.")
        case_service.record_decision(case, w["qa"], final_score="3a", outcome="upheld",
                                     rationale="Agreed.")
        case.decided_at = utcnow() - timedelta(days=50 - i)
        ids["seats"].insert(0, case.id)
        ids["feedback"].insert(0, case.id)
        note = notify(w["reviewer"], "test", f"Note {i}", email=False)
        note.created_at = utcnow() - timedelta(minutes=100 - i)
        ids["notes"].insert(0, note.id)
        mine = make_opinion_request(make_study(reader), reader, colleague=consultant)
        mine.due_at = utcnow() + timedelta(hours=1 + i)
        ids["mine"].append(mine.id)
        ids["sent"].insert(0, mine.id)
        pooled = make_opinion_request(make_study(w["reader2"]), w["reader2"], pool="neuro")
        pooled.due_at = utcnow() + timedelta(hours=20 + i)
        ids["pool"].append(pooled.id)
        # conferences two a day (ties on the date), the reader invited; teaching cases
        conf = learning.create_conference(w["qa"], title=f"Conference {i}",
                                          held_on=date(2026, 1, 1) + timedelta(days=i // 2))
        learning.invite(conf, [reader], w["qa"])
        ids["confs"].append(conf.id)
        tc = learning.create_teaching_case(make_study(reader), w["qa"], title=f"Case {i}",
                                           teaching_point="Look twice.", category=None)
        ids["teaching"].insert(0, tc.id)
    ids["confs"] = [c.id for c in sorted(
        _db.session.scalars(sa.select(Conference).where(Conference.id.in_(ids["confs"]))),
        key=lambda c: (c.held_on, c.id), reverse=True)]
    # the second users' own rows, so that their lists are not empty either
    make_assignment(make_study(reader).read, w["reviewer2"])
    db.session.commit()
    w["ids"] = ids
    return w


def _section(page: str, start: str) -> str:
    """The page from `start` to the end of the table or list that follows."""
    tail = page[page.index(start):]
    return tail[:min(i for i in (tail.find("</table>"), tail.find("</ul>")) if i > 0)]


def _pager_link(page: str, pager_id: str | None, rel: str) -> str | None:
    navs = re.findall(r'<nav class="pager"[^>]*>.*?</nav>', page, re.S)
    if pager_id is not None:
        navs = [n for n in navs if f'id="{pager_id}"' in n]
    if not navs:
        return None
    assert len(navs) == 1
    assert f"{PAGE} per page" in navs[0]  # the page size is stated
    found = re.search(rf'rel="{rel}" href="([^"]+)"', navs[0])
    return html.unescape(found.group(1)) if found else None


# (name, user, url, start of the rows' table, row link pattern, pager id, expected ids key)
LISTS = [
    ("qa cases", "qa", "/qa/cases?status=all", 'id="cases"', r'href="/qa/cases/(\d+)"', None,
     "cases"),
    ("committee list", "member", "/reviews/committee", 'id="committee-cases"',
     r'href="/reviews/committee/(\d+)"', None, "seats"),
    ("reader feedback", "reader", "/reviews/feedback", 'id="feedback-cases"',
     r'href="/reviews/feedback/(\d+)"', None, "feedback"),
    ("worklist, open", "reviewer", "/reviews/", 'id="open-reviews"', r'href="/reviews/(\d+)"',
     "open-pager", "open"),
    ("worklist, done", "reviewer", "/reviews/", 'id="done-reviews"', r'href="/reviews/(\d+)"',
     "done-pager", "done"),
    ("notifications", "reviewer", "/notifications/", 'id="notifications"',
     r'action="/notifications/(\d+)/open"', None, "notes"),
    ("consultant, mine", "consultant", "/opinions/", 'id="my-worklist"',
     r'data-request-id="(\d+)"', "mine-pager", "mine"),
    ("requester, sent", "reader", "/opinions/", 'id="sent"', r'data-request-id="(\d+)"',
     "sent-pager", "sent"),
    ("conferences", "reader", "/reviews/conferences", 'id="conferences"',
     r'href="/reviews/conferences/(\d+)"', None, "confs"),
    ("qa conferences", "qa", "/qa/conferences", 'id="conferences"',
     r'href="/qa/conferences/(\d+)"', None, "confs"),
    ("qa teaching cases", "qa", "/qa/teaching", 'id="teaching-cases"', r"<tr><td>(\d+)</td>",
     None, "teaching"),
]


def _walk(client, url, start, row, pager_id) -> tuple[list[list[int]], list[list[int]]]:
    """Pages forward from url, then back from the last page: ([ids per page], [...])."""
    forward, back, last = [], [], None
    while url:
        page = client.get(url).get_data(as_text=True)
        forward.append([int(x) for x in re.findall(row, _section(page, start))])
        last, url = url, _pager_link(page, pager_id, "next")
        assert len(forward) <= ROWS, "the walk ends"
    url = last
    while url:
        page = client.get(url).get_data(as_text=True)
        back.insert(0, [int(x) for x in re.findall(row, _section(page, start))])
        url = _pager_link(page, pager_id, "prev")
    return forward, back


def test_walk_forward_and_back(client, auth, world):
    """One department for every list (building it is the slow part)."""
    signed_in = None
    for spec in LISTS:
        if spec[1] != signed_in:  # signing in once per user keeps under the login rate limit
            auth.logout()
            auth.login(world[spec[1]])
            signed_in = spec[1]
        _check_walk(client, world, spec)
    _check_pool_walk(client, auth, world)


def _check_walk(client, world, spec):
    name, who, url, start, row, pager_id, key = spec
    forward, back = _walk(client, url, start, row, pager_id)
    expected = world["ids"][key]
    if key == "mine":  # the consultant's worklist also lists the pool's page, by due time
        forward = [[i for i in p if i in expected] for p in forward]
        back = [[i for i in p if i in expected] for p in back]
    assert [i for p in forward for i in p] == expected, name
    assert forward == back, name
    assert len(forward) == -(-len(expected) // PAGE) > 2, name
    assert all(len(p) == PAGE for p in forward[:-1]), name


def _check_pool_walk(client, auth, world):
    auth.logout()
    auth.login(world["consultant"])
    pool, url = [], "/opinions/"
    while url:
        page = client.get(url).get_data(as_text=True)
        shown = [int(x) for x in re.findall(r'data-request-id="(\d+)"',
                                            _section(page, 'id="my-worklist"'))]
        pool += [i for i in shown if i in world["ids"]["pool"] and i not in pool]
        url = _pager_link(page, "pool-pager", "next")
    assert pool == world["ids"]["pool"]


def test_json_worklist_pages_by_next(client, auth, world):
    auth.login(world["reviewer"])
    seen_open, seen_done, params = [], [], "?"
    for _ in range(ROWS):
        body = client.get(f"/reviews/assignments.json{params}").get_json()
        assert body["page_size"] == PAGE
        seen_open += [a["id"] for a in body["assignments"] if a["status"] == "assigned"]
        seen_done += [a["id"] for a in body["assignments"] if a["status"] == "submitted"]
        if not body["next"] and not body["next_done"]:
            break
        params = f"?cursor={body['next'] or 'x'}&done={body['next_done'] or 'x'}"
    # a list whose cursor is spent ("x") starts over: keep only each list's first visits
    assert list(dict.fromkeys(seen_open)) == world["ids"]["open"]
    assert list(dict.fromkeys(seen_done)) == world["ids"]["done"]


# (other user, url with {cursor}, ids key of the first user's rows, row pattern)
FOREIGN = [
    ("reviewer2", "/reviews/?cursor={c}&done={c}", "open", r'href="/reviews/(\d+)"'),
    ("reviewer2", "/reviews/?cursor={c}&done={c}", "done", r'href="/reviews/(\d+)"'),
    ("reviewer2", "/reviews/assignments.json?cursor={c}&done={c}", "open", r'"id":\s*(\d+)'),
    ("member2", "/reviews/committee?cursor={c}", "seats", r'/reviews/committee/(\d+)'),
    ("reader2", "/reviews/feedback?cursor={c}", "feedback", r'/reviews/feedback/(\d+)'),
    ("reader2", "/notifications/?cursor={c}", "notes", r'/notifications/(\d+)/open'),
    ("reader2", "/opinions/?cursor={c}&sent={c}", "sent", r'data-request-id="(\d+)"'),
    ("reader2", "/reviews/conferences?cursor={c}", "confs", r'/reviews/conferences/(\d+)'),
]


def test_a_cursor_never_shows_another_users_rows(client, auth, world):
    for spec in FOREIGN:
        _check_foreign(client, auth, world, spec)


def _check_foreign(client, auth, world, spec):
    who, url, key, row = spec
    auth.logout()
    auth.login(world[who])
    theirs = set(world["ids"][key])
    mid = world["ids"][key][ROWS // 2]
    for cursor in (f"n{mid}", f"p{mid}"):
        response = client.get(url.format(c=cursor))
        assert response.status_code == 200
        shown = {int(x) for x in re.findall(row, response.get_data(as_text=True))}
        assert not shown & theirs, (url, cursor)
