"""Small text of the QA pages: a review's one number, a run's parameters in words."""

from __future__ import annotations

import re

from qaportal.extensions import db
from qaportal.models import SamplingRun
from qaportal.qa.sampling import commit_run
from tests.factories import make_assignment, make_review, make_rule, make_study, make_user


def test_a_review_has_one_number_for_the_reviewer_and_for_qa(client, auth):
    reader, reviewer = make_user(), make_user(roles=("reviewer", "radiologist"))
    qa = make_user(roles=("qa_manager",))
    for _ in range(3):  # assignments without a review: the two id sequences drift apart
        make_assignment(make_study(reader).read, make_user(roles=("reviewer",)))
    review = make_review(make_study(reader).read, reviewer, "2b")
    db.session.commit()
    number = review.assignment_id
    assert review.id != number
    auth.login(reviewer)
    mine = client.get(f"/reviews/{number}").get_data(as_text=True)
    assert f"Review #{number}" in mine and "Peer review #" not in mine
    auth.logout()
    auth.login(qa)
    for url in (f"/qa/reviews/{review.id}", "/qa/reviews"):
        page = client.get(url).get_data(as_text=True)
        assert f"Review #{number}" in page, url
        assert f"#{review.id}<" not in page and f"Review #{review.id}" not in page, url


def test_run_page_states_the_parameters_in_words(client, auth):
    qa = make_user(roles=("qa_manager",))
    reader = make_user()
    make_user(roles=("reviewer", "radiologist"), subspecialties=["chest"])
    for _ in range(4):
        make_study(reader)
    rule = make_rule(qa, percent=50.0, modality="CT", reader_id=reader.id)
    db.session.commit()
    run = commit_run(rule, 7, qa)
    db.session.commit()
    auth.login(qa)
    page = client.get(f"/qa/runs/{run.id}").get_data(as_text=True)
    params = page.split('id="run-params"', 1)[1].split("</dl>", 1)[0]
    assert "50.0 % of eligible reads" in params
    assert "<dd>CT</dd>" in params and reader.full_name in params
    assert "de-identified" in params and "14 days after assignment" in params
    assert '"method"' not in page and "{&#34;" not in page and '{"' not in page
    eligible = re.search(r"<dt>Eligible reads</dt><dd>(\d+)</dd>", page).group(1)
    assert int(eligible) == len(db.session.get(SamplingRun, run.id).candidates) == 4
