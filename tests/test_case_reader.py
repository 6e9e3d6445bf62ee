"""A discrepancy case carries its read's reader: set when opened, follows a correction."""

from __future__ import annotations

import sqlalchemy as sa

from qaportal.models import DiscrepancyCase
from qaportal.qa import cases as case_service
from qaportal.reviews.panels import feedback_waiting_stmt
from qaportal.studies.corrections import correct_original_read
from tests.factories import make_review, make_study, make_user


def _decided_case(db, reader, reviewer, member, qa):
    case = case_service.open_case(make_review(make_study(reader).read, reviewer, "3b"),
                                  by=reviewer)
    case_service.assign_committee(case, [member], qa)
    case_service.cast_vote(case, member, "3b", "Missed nodule.")
    case_service.record_decision(case, qa, final_score="3b", outcome="upheld",
                                 rationale="Agreed.")
    db.session.commit()
    return case


def test_case_reader_is_set_and_follows_a_corrected_read(app, db, client, auth):
    reader, other = make_user(["radiologist"]), make_user(["radiologist"])
    reviewer, member, qa = make_user(["reviewer"]), make_user(["reviewer"]), make_user(
        ["qa_manager"])
    case = _decided_case(db, reader, reviewer, member, qa)
    untouched = _decided_case(db, reader, reviewer, member, qa)
    assert case.reader_id == reader.id == untouched.reader_id
    assert db.session.scalar(feedback_waiting_stmt(reader.id)) == 2

    read = case.review.assignment.read
    correct_original_read(read.study, by=qa, reader=other, report_text="Corrected.",
                          reason="Dictated by a colleague.")
    db.session.commit()
    stored = dict(db.session.execute(
        sa.select(DiscrepancyCase.id, DiscrepancyCase.reader_id)).all())
    assert stored == {case.id: other.id, untouched.id: reader.id}
    assert case.reader_id == other.id  # the loaded case reads it again
    assert db.session.scalar(feedback_waiting_stmt(reader.id)) == 1
    assert db.session.scalar(feedback_waiting_stmt(other.id)) == 1

    auth.login(other)
    body = client.get("/reviews/feedback").get_data(as_text=True)
    assert f"/reviews/feedback/{case.id}" in body
    assert f"/reviews/feedback/{untouched.id}" not in body
