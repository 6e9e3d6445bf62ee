"""Sampling: reproducible seeded draws, eligibility, exclusions, preview then commit."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
import sqlalchemy as sa

from qaportal.models import AuditEvent, ReviewAssignment, SamplingRun, StudyAccess, utcnow
from qaportal.qa import sampling
from qaportal.qa.sampling import Candidate, sample_size, select_candidates
from tests.factories import make_assignment, make_rule, make_study, make_user


def _cands(n, readers=3, months=("2024-01", "2024-02")):
    return [Candidate(i, 100 + i % readers, months[i % len(months)]) for i in range(1, n + 1)]


def test_same_seed_same_selection_different_seed_differs():
    params = {"method": "percent", "percent": 10}
    cands = _cands(200)
    first = select_candidates(cands, params, 42)
    assert first == select_candidates(list(reversed(cands)), params, 42)  # order-independent
    assert len(first) == 20 and first == sorted(first)
    assert select_candidates(cands, params, 43) != first


def test_sample_size_rounds_half_up():
    assert [sample_size(n, 5) for n in (0, 9, 10, 29, 30, 100)] == [0, 0, 1, 1, 2, 5]


def test_every_nth_takes_one_in_n_from_a_random_offset():
    cands = _cands(50)
    chosen = select_candidates(cands, {"method": "every_nth", "every_n": 10}, 7)
    assert len(chosen) == 5
    assert {c % 10 for c in chosen} == {chosen[0] % 10}
    assert all(b - a == 10 for a, b in zip(chosen, chosen[1:], strict=False))


def test_per_reader_per_month_caps_each_group():
    cands = _cands(60, readers=3, months=("2024-01", "2024-02"))  # 6 groups of 10
    chosen = select_candidates(cands, {"method": "per_reader_month", "per_reader": 2}, 5)
    assert len(chosen) == 12
    by = {}
    for c in cands:
        if c.read_id in chosen:
            by.setdefault((c.reader_id, c.month), []).append(c.read_id)
    assert len(by) == 6 and all(len(v) == 2 for v in by.values())
    small = [Candidate(1, 9, "2024-01")]
    assert select_candidates(small, {"method": "per_reader_month", "per_reader": 3}, 1) == [1]


def test_unknown_method_is_refused():
    with pytest.raises(sampling.SamplingError):
        select_candidates(_cands(3), {"method": "bogus"}, 1)


@pytest.fixture
def dept(db):
    owner = make_user(["radiologist"])
    r1 = make_user(["radiologist"], full_name="Reader One")
    r2 = make_user(["radiologist", "reviewer"], full_name="Reader Two",
                   subspecialties=["chest"])
    rev = make_user(["reviewer"], subspecialties=["neuro"])
    qa = make_user(["qa_manager"])
    reads = []
    for i in range(40):
        reader = r1 if i % 2 else r2
        modality = "CT" if i % 4 < 2 else "MR/CT" if i % 4 == 2 else "MR"
        reads.append(make_study(owner, reader=reader, modality=modality).read)
    draft = make_study(owner, reader=r1, modality="CT")
    draft.read.finalized_at = None
    db.session.commit()
    return {"owner": owner, "r1": r1, "r2": r2, "rev": rev, "qa": qa, "reads": reads,
            "draft": draft}


def test_eligibility_filters_modality_reader_period_and_finalized(db, dept):
    rule = make_rule(dept["qa"])
    ids = {c.read_id for c in sampling.eligible_candidates(rule)}
    assert dept["draft"].read.id not in ids and len(ids) == 40
    rule.modality = "CT"
    assert len(sampling.eligible_candidates(rule)) == 30  # "MR/CT" counts as CT
    rule.reader_id = dept["r1"].id
    assert {c.reader_id for c in sampling.eligible_candidates(rule)} == {dept["r1"].id}
    rule.reader_id, rule.modality = None, None
    rule.period_end = date.today() - timedelta(days=5)
    assert sampling.eligible_candidates(rule) == []


def test_period_start_excludes_earlier_reads_and_includes_its_own_day(db, dept):
    day = date.today() - timedelta(days=30)
    old, edge, late = dept["reads"][:3]
    old.finalized_at = datetime.combine(day - timedelta(days=1), time(23, 59), UTC)
    edge.finalized_at = datetime.combine(day, time(0, 0), UTC)  # first moment of the day
    late.finalized_at = datetime.combine(day, time(12, 0), UTC)
    db.session.commit()
    rule = make_rule(dept["qa"])
    rule.period_start = day
    ids = {c.read_id for c in sampling.eligible_candidates(rule)}
    assert old.id not in ids and {edge.id, late.id} <= ids and len(ids) == 39
    rule.period_start = day + timedelta(days=1)
    ids = {c.read_id for c in sampling.eligible_candidates(rule)}
    assert not ids & {old.id, edge.id, late.id} and len(ids) == 37
    rule.period_end = day  # a window of one day, before the start: nothing
    assert sampling.eligible_candidates(rule) == []
    rule.period_start = rule.period_end = day
    assert {c.read_id for c in sampling.eligible_candidates(rule)} == {edge.id, late.id}


def test_already_sampled_reads_are_not_eligible_again(db, dept):
    rule = make_rule(dept["qa"], percent=50)
    run = sampling.commit_run(rule, 11, dept["qa"])
    again = {c.read_id for c in sampling.eligible_candidates(rule)}
    assert not again & set(run.selected)


def test_never_assigns_a_reader_their_own_read_nor_the_uploader(db, dept):
    rule = make_rule(dept["qa"], percent=100)
    run = sampling.commit_run(rule, 3, dept["qa"])
    db.session.commit()
    assignments = db.session.scalars(sa.select(ReviewAssignment)).all()
    assert len(assignments) == 40 == len(run.selected)
    for a in assignments:
        assert a.reviewer_id != a.read.reader_id
        assert a.reviewer_id != a.read.study.owner_id
    # Reader Two's own reads all went to the other reviewer.
    for a in assignments:
        if a.read.reader_id == dept["r2"].id:
            assert a.reviewer_id == dept["rev"].id


def test_workload_is_balanced_and_subspecialty_preferred(db, dept):
    rule = make_rule(dept["qa"], percent=100, reader_id=dept["r1"].id)
    preview = sampling.preview_run(rule, 9)
    counts = {}
    for _, reviewer in preview.plan:
        counts[reviewer.id] = counts.get(reviewer.id, 0) + 1
    assert counts == {dept["r2"].id: 10, dept["rev"].id: 10}  # balanced
    rule.subspecialty = "neuro"
    preview = sampling.preview_run(rule, 9)
    assert {r.id for _, r in preview.plan} == {dept["rev"].id}  # preferred subspecialty


def test_same_case_never_twice_to_the_same_reviewer(db, dept):
    read = dept["reads"][0]
    make_assignment(read, dept["rev"], source="adhoc")
    db.session.commit()
    with pytest.raises(sa.exc.IntegrityError):
        make_assignment(read, dept["rev"], source="adhoc", grant=False)
    db.session.rollback()


def test_unassignable_read_is_reported_not_assigned(db):
    reader = make_user(["radiologist", "reviewer"])
    qa = make_user(["qa_manager"])
    make_study(reader, reader=reader)
    rule = make_rule(qa, percent=100)
    preview = sampling.preview_run(rule, 1)
    assert preview.unassigned == 1
    run = sampling.commit_run(rule, 1, qa)
    assert run.assignments == []


def test_commit_grants_access_records_run_and_replays(db, dept):
    rule = make_rule(dept["qa"], percent=10, deidentify=True)
    preview = sampling.preview_run(rule, 1234)
    run = sampling.commit_run(rule, 1234, dept["qa"], fingerprint=preview.fingerprint)
    db.session.commit()
    assert run.selected == preview.selected and len(run.selected) == 4
    assert sampling.replay_run(run) == run.selected
    grants = db.session.scalars(sa.select(StudyAccess).where(
        StudyAccess.source_type == "review_assignment")).all()
    assert len(grants) == 4 and {g.mode for g in grants} == {"deidentified"}
    assert all(a.due_at > utcnow() + timedelta(days=13) for a in run.assignments)
    ev = db.session.scalar(sa.select(AuditEvent).where(
        AuditEvent.action == "review.run_committed"))
    assert ev.details["seed"] == 1234 and ev.details["selected"] == run.selected


def test_commit_refuses_when_data_changed_since_preview(db, dept):
    rule = make_rule(dept["qa"], percent=10)
    preview = sampling.preview_run(rule, 5)
    make_study(dept["owner"], reader=dept["r1"])
    with pytest.raises(sampling.SamplingError):
        sampling.commit_run(rule, 5, dept["qa"], fingerprint=preview.fingerprint)


def test_preview_page_then_commit_with_same_seed(client, auth, db, dept):
    rule = make_rule(dept["qa"], percent=10)
    db.session.commit()
    auth.login(dept["qa"])
    page = client.get(f"/qa/rules/{rule.id}/run?seed=777").get_data(as_text=True)
    shown = [int(x) for x in re.findall(r'<td class="read-id">(\d+)</td>', page)]
    assert shown == sampling.select_candidates(
        sampling.eligible_candidates(rule), rule.params(), 777)
    again = client.get(f"/qa/rules/{rule.id}/run?seed=777").get_data(as_text=True)
    assert re.findall(r'<td class="read-id">(\d+)</td>', again) == [str(x) for x in shown]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SamplingRun)) == 0
    fp = re.search(r'name="fingerprint" type="hidden" value="([0-9a-f]+)"', page).group(1)
    resp = client.post(f"/qa/rules/{rule.id}/run", data={"seed": "777", "fingerprint": fp})
    assert resp.status_code == 302
    run = db.session.scalar(sa.select(SamplingRun))
    assert run.seed == 777 and run.selected == shown
    detail = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "777" in detail and "badge-valid" in detail


def test_rule_form_validates_and_saves(client, login_as, db):
    login_as("qa_manager")
    resp = client.post("/qa/rules/new", data={"name": "CT 5", "method": "percent",
                                              "due_days": "14", "modality": "ct"})
    assert resp.status_code == 200 and "Required for this method" in resp.get_data(as_text=True)
    resp = client.post("/qa/rules/new", data={"name": "CT 5", "method": "percent",
                                              "percent": "5", "due_days": "14", "reader_id": "0",
                                              "subspecialty": "",
                                              "modality": "ct", "deidentify": "y"})
    assert resp.status_code == 302
    from qaportal.models import SamplingRule

    rule = db.session.scalar(sa.select(SamplingRule))
    assert (rule.modality, rule.percent, rule.deidentify) == ("CT", 5.0, True)
