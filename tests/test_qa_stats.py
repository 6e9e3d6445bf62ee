"""QA statistics against hand-computed values."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from qaportal.models import (
    CommitteeVote,
    DiscrepancyCase,
    ReviewAmendment,
    utcnow,
)
from qaportal.qa import stats
from tests.factories import make_review, make_study, make_user


def test_wilson_interval_for_3_of_100_matches_hand_computation():
    # p = .03, z² = 3.8416: centre = (.03 + .019208) / 1.038416 = .047388,
    # half = 1.96 / 1.038416 · sqrt(.000291 + .00009604) = .037133
    low, high = stats.wilson_interval(3, 100)
    assert low == pytest.approx(0.010255, abs=1e-5)
    assert high == pytest.approx(0.084521, abs=1e-5)


def test_wilson_interval_edge_cases():
    low, high = stats.wilson_interval(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.27753, abs=1e-4)  # 3.8416/10 / (1 + .38416) = .2775
    low, high = stats.wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(0.72247, abs=1e-4)
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        stats.wilson_interval(5, 4)


def test_wilson_interval_other_z():
    # z = 1: centre = (.5 + .05) / 1.1 = .5, half = 1/1.1 · sqrt(.025 + .0025) = .150756
    low, high = stats.wilson_interval(5, 10, z=1.0)
    assert (low, high) == pytest.approx((0.5 - 0.150756, 0.5 + 0.150756), abs=1e-6)


def test_funnel_limits_binomial_normal_approximation_clipped():
    (n, lo, hi), = stats.funnel_limits(0.05, [100], 1.96)
    half = 1.96 * math.sqrt(0.05 * 0.95 / 100)  # 0.042717
    assert n == 100 and lo == pytest.approx(0.05 - half) and hi == pytest.approx(0.05 + half)
    (_, lo, hi), = stats.funnel_limits(0.01, [4], 3.09)
    assert lo == 0.0  # 0.01 - 0.1537 clipped
    assert hi == pytest.approx(0.01 + 3.09 * math.sqrt(0.0099 / 4))
    (_, lo, hi), = stats.funnel_limits(0.9, [1], 3.09)
    assert hi == 1.0
    assert [x[0] for x in stats.funnel_limits(0.1, [10, 20, 40], 1.96)] == [10, 20, 40]


def test_funnel_position():
    # p = .05, n = 100: 95 % upper .0927, 99.8 % upper .0500 + 3.0902·.02179 = .1173
    assert stats.funnel_position(0.05, 100, 5) == "within"
    assert stats.funnel_position(0.05, 100, 10) == "high95"
    assert stats.funnel_position(0.05, 100, 12) == "high99"


def test_funnel_svg_is_self_contained_svg():
    svg = stats.funnel_svg([("Dr <A>", 100, 12), ("B", 50, 1), ("C", 0, 0)], 0.05)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "<script" not in svg and "style=" not in svg
    assert svg.count("<circle") == 2  # the reader with no reviews is not drawn
    assert "Dr &lt;A&gt;" in svg and "high99" in svg
    assert svg.count('class="limit limit-95%"') == 2 and svg.count("limit-99.8%") == 2


def test_trend_svg_draws_every_month():
    svg = stats.trend_svg([("2024-01", 10, 1), ("2024-02", 0, 0), ("2024-03", 20, 0)], 0.05)
    assert svg.count('class="volume"') == 3
    assert svg.count("<circle") == 2
    assert "<script" not in svg


def test_age_buckets():
    assert stats.age_bucket(0) == "0–7 days"
    assert stats.age_bucket(7) == "0–7 days"
    assert stats.age_bucket(8) == "8–30 days"
    assert stats.age_bucket(90) == "31–90 days"
    assert stats.age_bucket(91) == "over 90 days"


def test_period_last_months():
    p = stats.Period.last_months(12, today=date(2024, 3, 15))
    assert p == stats.Period(date(2023, 4, 1), date(2024, 3, 15))


def _read(owner, reader, modality="CT", days_ago=10):
    when = utcnow() - timedelta(days=days_ago)
    return make_study(owner, reader=reader, modality=modality, finalized_at=when).read


@pytest.fixture
def history(db):
    """Two readers, hand-countable reviews:

    Reader A (CT): 1, 1, 2a, 2b confirmed 3b (closed case), 3a still in committee (pending),
    3b amended down to 1, unable, plus one ad-hoc 3b (not in rates).
    → n = 6 (unable and ad hoc out), significant k = 1, pending 1.
    Reader B (MR): 1, 1, 1, 2b overturned to 1 → n = 4, k = 0.
    Legacy review for B (CT): 4 → mapped 3b, no case → counts as confirmed: B n = 5, k = 1.
    """
    owner = make_user(["radiologist"])
    a = make_user(["radiologist"], full_name="Alice Reader")
    b = make_user(["radiologist"], full_name="Bob Reader")
    rev = make_user(["reviewer"], full_name="Rita Reviewer")
    qa = make_user(["qa_manager"])
    for score in ("1", "1", "2a"):
        make_review(_read(owner, a), rev, score)
    r = make_review(_read(owner, a), rev, "2b")
    db.session.add(DiscrepancyCase(review=r, status="closed", final_score="3b",
                                   outcome="upheld", rationale="Confirmed."))
    r = make_review(_read(owner, a), rev, "3a")
    db.session.add(DiscrepancyCase(review=r, status="committee"))
    r = make_review(_read(owner, a), rev, "3b")
    db.session.add(ReviewAmendment(review_id=r.id, amended_by_id=qa.id, reason="Misclick",
                                   score="1", comment=""))
    make_review(_read(owner, a), rev, "unable")
    make_review(_read(owner, a), rev, "3b", source="adhoc")
    for _ in range(3):
        make_review(_read(owner, b, "MR"), rev, "1")
    r = make_review(_read(owner, b, "MR"), rev, "2b")
    db.session.add(DiscrepancyCase(review=r, status="decided", final_score="1",
                                   outcome="overturned", rationale="Normal variant."))
    legacy = make_review(_read(owner, b, "CT"), rev, "3b", source="legacy")
    db.session.flush()
    return {"a": a, "b": b, "rev": rev, "legacy": legacy}


def _period():
    today = date.today()
    return stats.Period(today - timedelta(days=60), today)


def test_reader_stats_hand_computed(db, history):
    readers = {r.reader_name: r for r in stats.reader_stats(db.session, _period())}
    a, b = readers["Alice Reader"], readers["Bob Reader"]
    assert (a.n, a.significant, a.pending, a.unable, a.adhoc) == (6, 1, 1, 1, 1)
    assert a.distribution == {"1": 3, "2a": 1, "2b": 1, "3a": 1, "3b": 0}
    assert (a.rate.low, a.rate.high) == pytest.approx(stats.wilson_interval(1, 6))
    assert (b.n, b.significant, b.pending) == (5, 1, 0)
    assert b.distribution == {"1": 3, "2a": 0, "2b": 1, "3a": 0, "3b": 1}


def test_department_rate_and_modality_filter(db, history):
    dept = stats.department_rate(db.session, _period())
    assert (dept.k, dept.n) == (2, 11)
    assert dept.p == pytest.approx(2 / 11)
    ct = stats.department_rate(db.session, _period(), "CT")
    assert (ct.k, ct.n) == (2, 7)  # A's six CT reviews and B's legacy CT review
    mr = stats.reader_stats(db.session, _period(), "mr")
    assert [(r.reader_name, r.n, r.significant) for r in mr] == [("Bob Reader", 4, 0)]


def test_modality_breakdown_and_trend(db, history):
    figures = stats.breakdown(db.session, _period())
    by_mod = figures.modalities
    assert (by_mod["CT"].n, by_mod["CT"].significant) == (7, 2)
    assert (by_mod["MR"].n, by_mod["MR"].significant) == (4, 0)
    trend = figures.months
    assert sum(t.rate.n for t in trend) == 11
    assert sum(t.rate.k for t in trend) == 2
    assert len({t.month for t in trend}) == len(trend) >= 2


def test_period_excludes_reads_outside(db, history):
    old = stats.Period(date.today() - timedelta(days=400), date.today() - timedelta(days=300))
    assert stats.reader_stats(db.session, old) == []
    assert stats.department_rate(db.session, old).n == 0


def test_reviewer_stats_counts_overdue(db):
    owner = make_user(["radiologist"])
    rev = make_user(["reviewer"], full_name="Rita Reviewer")
    from tests.factories import make_assignment

    make_review(_read(owner, owner), rev, "1")
    make_assignment(_read(owner, owner), rev, due_in_days=-1)
    make_assignment(_read(owner, owner), rev, due_in_days=3)
    (s,) = stats.reviewer_stats(db.session, utcnow())
    assert (s.reviewer_name, s.assigned, s.completed, s.open, s.overdue) == (
        "Rita Reviewer", 3, 1, 2, 1)


def test_open_cases_by_age(db):
    owner = make_user(["radiologist"])
    rev = make_user(["reviewer"])
    now = datetime(2024, 6, 30, tzinfo=UTC)
    for days, status in ((2, "open"), (20, "committee"), (200, "decided"), (5, "closed")):
        r = make_review(_read(owner, owner), rev, "3b")
        kw = {"final_score": "3b", "outcome": "upheld", "rationale": "x"} \
            if status in ("decided", "closed") else {}
        db.session.add(DiscrepancyCase(review=r, status=status,
                                       opened_at=now - timedelta(days=days), **kw))
    db.session.flush()
    ages = stats.open_cases_by_age(db.session, now)
    assert [d for _, d in ages["0–7 days"]] == [2]
    assert [d for _, d in ages["8–30 days"]] == [20]
    assert ages["31–90 days"] == []
    assert [d for _, d in ages["over 90 days"]] == [200]


def test_stats_module_does_not_use_flask():
    import qaportal.qa.stats as module

    source = open(module.__file__).read()
    assert not re.search(r"^\s*(from|import) flask", source, re.M)
    assert CommitteeVote  # imported models are plain SQLAlchemy


def _polyline(svg: str, name: str) -> list[dict[str, str]]:
    import re

    lines = re.findall(rf'<polyline points="([^"]+)"[^>]*class="limit limit-{re.escape(name)}"',
                       svg)
    return [dict(pt.split(",") for pt in line.split()) for line in lines]


def test_funnel_svg_limit_curves_match_hand_computed_values():
    # p = 0.1, one reader at n = 120 -> x axis to 200, y axis to 50 %; the plot area is
    # 568 x 308 px from (56, 28). At n = 100 (x = 56 + 568 * 100/200 = 340.0):
    # 95 %:   0.1 ± 1.959964 * sqrt(0.1 * 0.9 / 100) = 0.1 ± 0.05879892
    #         -> 0.04120108 (y = 28 + 308 * (1 - 0.04120108 / 0.5) = 310.6)
    #         -> 0.15879892 (y = 238.2)
    # 99.8 %: 0.1 ± 3.090232 * 0.03 = 0.1 ± 0.09270696 -> 0.00729304 (y = 331.5),
    #         0.19270696 (y = 217.3)
    svg = stats.funnel_svg([("A", 120, 12)], 0.1)
    assert sorted(c["340.0"] for c in _polyline(svg, "95%")) == ["238.2", "310.6"]
    assert sorted(c["340.0"] for c in _polyline(svg, "99.8%")) == ["217.3", "331.5"]
    # The department line at 10 %: y = 28 + 308 * 0.8 = 274.4.
    assert 'y1="274.4" y2="274.4" stroke="#0f4c81"' in svg


def test_funnel_svg_draws_the_stats_module_numbers(monkeypatch):
    """The chart has no arithmetic of its own: limits and positions come from stats."""
    from qaportal.qa import charts

    assert not hasattr(charts, "_limit") and not hasattr(charts, "Z95")
    monkeypatch.setattr(stats, "funnel_limits",
                        lambda p, ns, z: [(n, 0.0, 0.25) for n in ns])
    monkeypatch.setattr(stats, "funnel_position", lambda p, n, k: "low99")
    svg = stats.funnel_svg([("A", 120, 12)], 0.1)
    for name in ("95%", "99.8%"):
        assert {y for c in _polyline(svg, name) for y in c.values()} == {"336.0", "182.0"}
    assert 'class="point low99"' in svg


def test_stats_page_shows_low_outliers_as_well_as_high(client, auth, db):
    """p = 20/60 = 1/3. High: 20/20 (above 99.8 %). Low99: 0/30, lower 99.8 % limit
    1/3 - 3.090232 * sqrt(2/9 / 30) = 0.0674 > 0. Low95: 0/10, lower 95 % limit
    1/3 - 1.959964 * sqrt(2/9 / 10) = 0.0411 > 0, lower 99.8 % limit below 0."""
    owner = make_user(["radiologist"])
    rev = make_user(["reviewer"])
    qa = make_user(["qa_manager"])
    readers = {}
    for name, n, k in (("Hugo High", 20, 20), ("Lena Low", 30, 0), ("Mia Mid", 10, 0)):
        reader = make_user(["radiologist"], full_name=name)
        readers[name] = reader
        for i in range(n):
            make_review(_read(owner, reader), rev, "3b" if i < k else "1",
                        source="legacy" if i < k else "sample")
    db.session.commit()
    assert stats.funnel_position(1 / 3, 30, 0) == "low99"
    assert stats.funnel_position(1 / 3, 10, 0) == "low95"
    auth.login(qa)
    body = client.get("/qa/stats").get_data(as_text=True)
    rows = {name: re.search(rf"<tr><td>{name}</td>.*?</tr>", body, re.S).group(0)
            for name in readers}
    assert "above 99.8 %" in rows["Hugo High"]
    assert "below 99.8 %" in rows["Lena Low"]
    assert "below 95 %" in rows["Mia Mid"] and "below 99.8 %" not in rows["Mia Mid"]
