"""The statistics the database counts equal a plain Python count of the raw rows.

A department is built with the awkward cases (a period across New Year, reads on its very
first and last instants and just outside, multi-modality studies and studies with no
modality, amendments (the latest wins), cases at every status, legacy and ad hoc reviews,
"unable to assess", a reader with nothing but 2b, a deactivated reader, assignments never
submitted) plus a few hundred random reviews. Every figure of stats.breakdown, summary,
reader_stats, department_rate and review_facts is then compared with `expected()`, written
here from the definitions in stats.py without any of its code.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from qaportal.models import DiscrepancyCase, Review, ReviewAmendment, ReviewAssignment, User
from qaportal.qa import stats
from tests.factories import make_assignment, make_review, make_run, make_study, make_user

SCALE = ("1", "2a", "2b", "3a", "3b")
SIGNIFICANT = {"2b", "3a", "3b"}
PERIOD = stats.Period(date(2025, 11, 20), date(2026, 2, 10))  # across New Year
PERIODS = [
    PERIOD,
    stats.Period(date(2025, 12, 31), date(2026, 1, 1)),
    stats.Period(date(2026, 2, 11), date(2026, 3, 31)),  # the random reads' tail only
    stats.Period(date(2026, 4, 1), date(2026, 5, 31)),  # nothing was read then
    stats.Period(date(2024, 1, 1), date(2027, 1, 1)),
]
MODALITIES = [None, "CT", "mr", "US", "PET", "C_", "%"]


def _at(y, m, d, hh=12, mm=0, ss=0, us=0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, us, tzinfo=UTC)


@pytest.fixture
def world(db):
    return build_world(db)


def build_world(db) -> dict:
    """The department described at the top, committed."""
    owner = make_user(["radiologist"])
    qa = make_user(["qa_manager"])
    rev = make_user(["reviewer"], full_name="Rhea Reviewer")
    readers = [make_user(["radiologist"], full_name=n)
               for n in ("Ada Alpha", "Ben Beta", "Cy Gamma")]
    only_2b = make_user(["radiologist"], full_name="Dot Twobee")
    gone = make_user(["radiologist"], full_name="Eve Former", active=False)
    run = make_run(qa)

    def review(reader, when, score, modality="CT", source="sample", case=None, final=None,
               amend=()):
        read = make_study(owner, reader=reader, modality=modality, finalized_at=when).read
        r = make_review(read, rev, score, source=source, run=run if source == "sample" else None)
        for s in amend:
            db.session.add(ReviewAmendment(review_id=r.id, amended_by_id=qa.id, reason="Fix",
                                           score=s, category="perceptual" if s != "1" else None,
                                           comment="x"))
        if case:
            db.session.add(DiscrepancyCase(review=r, status=case, final_score=final,
                                           outcome="upheld" if final else None,
                                           rationale="Done." if final else ""))
        return r

    a, b, c = readers
    start, end = PERIOD.bounds()
    review(a, start, "2b")  # the period's first instant
    review(a, end - timedelta(microseconds=1), "3a", case="decided", final="3a")  # its last
    review(a, end, "3b")  # the next day: outside
    review(a, start - timedelta(microseconds=1), "3b")  # the day before: outside
    review(a, _at(2025, 12, 31, 23, 30), "1", modality="CT/MR")  # December in UTC
    review(a, _at(2026, 1, 1, 0, 30), "2b", modality="MR/CT", case="closed", final="1")
    review(b, _at(2025, 12, 15), "3b", amend=("2a", "1"))  # latest amendment wins: 1
    review(b, _at(2025, 12, 16), "1", amend=("1", "3a"))  # amended up to 3a, no case
    review(b, _at(2026, 1, 10), "2b", case="open")  # pending
    review(b, _at(2026, 1, 11), "3b", case="committee", amend=("2a",))  # amended down
    review(b, _at(2026, 1, 12), "2a", case="closed", final="3b")  # committee raised it
    review(b, _at(2026, 1, 13), "unable", modality="")  # no modality listed
    review(b, _at(2026, 1, 14), "3b", source="adhoc")
    review(b, _at(2026, 1, 15), "3b", source="legacy", modality="/US")
    review(c, _at(2026, 2, 1), "1", modality="PET/CT")
    review(c, _at(2026, 2, 2), "unable", source="legacy")
    for day in range(1, 6):
        review(only_2b, _at(2026, 1, day), "2b")
    review(gone, _at(2025, 12, 1), "3a")
    # assignments never submitted count nowhere
    make_assignment(make_study(owner, reader=a, finalized_at=_at(2026, 1, 5)).read, rev)

    rng = random.Random(20261205)
    first = start - timedelta(days=20)
    span = (end - first).total_seconds() + 20 * 86400
    for _ in range(250):
        when = first + timedelta(seconds=rng.uniform(0, span))
        score = rng.choice((*SCALE, *SCALE[:2], "1", "1", "unable"))
        source = rng.choices(("sample", "legacy", "adhoc"), (8, 1, 1))[0]
        case = final = None
        if score in SIGNIFICANT and source != "legacy" and rng.random() < 0.8:
            case = rng.choice(("open", "committee", "decided", "closed"))
            final = rng.choice(SCALE) if case in ("decided", "closed") else None
        amend = (rng.choice((*SCALE, "unable")),) if rng.random() < 0.1 else ()
        review(rng.choice(readers), when, score, rng.choice(("CT", "MR", "CT/MR", "US")),
               source, case, final, amend)
    db.session.commit()
    return {"readers": readers, "only_2b": only_2b, "gone": gone}


# --- the independent computation ------------------------------------------------------------

def raw_rows(session) -> list[dict]:
    """Every submitted review with what the definitions need, loaded row by row."""
    latest: dict[int, str] = {}
    for am in session.scalars(sa.select(ReviewAmendment).order_by(ReviewAmendment.id)):
        latest[am.review_id] = am.score
    rows = []
    for review in session.scalars(sa.select(Review).order_by(Review.id)):
        assignment = session.get(ReviewAssignment, review.assignment_id)
        read = assignment.read
        case = session.scalar(sa.select(DiscrepancyCase)
                              .where(DiscrepancyCase.review_id == review.id))
        rows.append({"id": review.id, "reader": read.reader_id, "at": read.finalized_at,
                     "modalities": read.study.modalities, "source": assignment.source,
                     "reviewer": assignment.reviewer_id,
                     "score": latest.get(review.id, review.score),
                     "case": case.status if case else None,
                     "final": case.final_score if case else None})
    return rows


def in_scope(row, period, modality=None, reader=None) -> bool:
    day = row["at"].astimezone(UTC).date()
    listed = [m.upper() for m in (row["modalities"] or "").split("/")]
    return (period.start <= day <= period.end
            and (modality is None or modality.upper() in listed)
            and (reader is None or row["reader"] == reader))


def classify(row) -> tuple[bool, bool]:
    """(confirmed, pending) of one review."""
    if row["case"] is None:
        return row["score"] in SIGNIFICANT, False
    if row["case"] in ("decided", "closed"):
        return row["final"] in SIGNIFICANT, False
    return False, row["score"] in SIGNIFICANT


def figures(rows) -> dict:
    out = {"n": 0, "dist": dict.fromkeys(SCALE, 0), "k": 0, "pending": 0, "unable": 0,
           "adhoc": 0}
    for row in rows:
        if row["source"] == "adhoc":
            out["adhoc"] += 1
        elif row["score"] not in SCALE:
            out["unable"] += 1
        else:
            confirmed, pending = classify(row)
            out["n"] += 1
            out["dist"][row["score"]] += 1
            out["k"] += confirmed
            out["pending"] += pending
    return out


def expected(rows, period, modality=None, reader=None) -> dict:
    mine = [r for r in rows if in_scope(r, period, modality, reader)]
    months = []
    d = date(period.start.year, period.start.month, 1)
    while d <= period.end:
        months.append(d.strftime("%Y-%m"))
        d = (d + timedelta(days=32)).replace(day=1)

    def month(r):
        return r["at"].astimezone(UTC).strftime("%Y-%m")

    def first(r):
        return (r["modalities"] or "").split("/")[0] or "?"

    return {
        "total": figures(mine),
        "readers": {rid: figures([r for r in mine if r["reader"] == rid])
                    for rid in {r["reader"] for r in mine}},
        "modalities": {m: figures([r for r in mine if first(r) == m])
                       for m in {first(r) for r in mine}},
        "months": [(m, figures([r for r in mine if month(r) == m])) for m in months],
    }


def observed(s: stats.ReaderStats) -> dict:
    assert (s.rate.k, s.rate.n) == (s.significant, s.n)
    assert (s.rate.low, s.rate.high) == pytest.approx(stats.wilson_interval(s.significant, s.n))
    return {"n": s.n, "dist": s.distribution, "k": s.significant, "pending": s.pending,
            "unable": s.unable, "adhoc": s.adhoc}


# --- the comparisons ------------------------------------------------------------------------

@pytest.fixture
def rows(db, world):
    if db.session.get_bind().dialect.name == "postgresql":
        # Month buckets are UTC whatever the connection's time zone.
        db.session.execute(sa.text("SET TIME ZONE 'Pacific/Auckland'"))
    return raw_rows(db.session)


@pytest.mark.parametrize("period", PERIODS, ids=lambda p: f"{p.start}..{p.end}")
def test_breakdown_equals_a_count_of_the_rows(db, rows, period):
    for modality in MODALITIES:
        _compare(db, rows, period, modality)


def _compare(db, rows, period, modality):
    want = expected(rows, period, modality)
    got = stats.breakdown(db.session, period, modality)
    assert observed(got.total) == want["total"]
    assert {s.reader_id: observed(s) for s in got.readers} == want["readers"]
    names = dict(db.session.execute(sa.select(User.id, User.full_name)).all())
    assert [s.reader_name for s in got.readers] == sorted(names[s.reader_id]
                                                          for s in got.readers)
    assert {m: observed(s) for m, s in got.modalities.items()} == want["modalities"]
    assert list(got.modalities) == sorted(got.modalities)
    assert [(t.month, (t.rate.k, t.rate.n)) for t in got.months] == \
        [(m, (f["k"], f["n"])) for m, f in want["months"]]
    assert observed(stats.summary(db.session, period, modality)) == want["total"]
    dept = stats.department_rate(db.session, period, modality)
    assert (dept.k, dept.n) == (want["total"]["k"], want["total"]["n"])
    assert {s.reader_id: observed(s) for s in stats.reader_stats(db.session, period, modality)} \
        == want["readers"]


def test_one_readers_figures_and_rows(db, rows, world):
    for reader in [*world["readers"], world["only_2b"], world["gone"]]:
        want = expected(rows, PERIOD, reader=reader.id)
        got = stats.breakdown(db.session, PERIOD, reader_id=reader.id)
        assert observed(got.total) == want["total"]
        assert [s.reader_id for s in got.readers] == ([reader.id] if want["readers"] else [])
        assert {m: observed(s) for m, s in got.modalities.items()} == want["modalities"]
        assert [(t.month, t.rate.k, t.rate.n) for t in got.months] == \
            [(m, f["k"], f["n"]) for m, f in want["months"]]
        assert observed(stats.summary(db.session, PERIOD, reader_id=reader.id)) == \
            want["total"]
        facts = stats.review_facts(db.session, PERIOD, reader_id=reader.id)
        mine = [r for r in rows if in_scope(r, PERIOD, reader=reader.id)]
        assert [(f.review_id, f.score, f.source, f.reviewer_id, (f.confirmed, f.pending))
                for f in facts] == \
            [(r["id"], r["score"], r["source"], r["reviewer"], classify(r)) for r in mine]


def test_the_edge_cases_are_in_the_world(db, rows, world):
    """The world holds what the comparisons are meant to cover (so they cannot pass
    vacuously)."""
    want = expected(rows, PERIOD)
    only = want["readers"][world["only_2b"].id]
    assert only["dist"] == {"1": 0, "2a": 0, "2b": 5, "3a": 0, "3b": 0} and only["k"] == 5
    assert want["readers"][world["gone"].id]["k"] == 1
    assert all(want["total"][key] > 0 for key in ("n", "k", "pending", "unable", "adhoc"))
    assert {"CT", "MR", "PET", "?"} <= set(want["modalities"])
    assert [m for m, _ in want["months"]] == ["2025-11", "2025-12", "2026-01", "2026-02"]
    december = dict(want["months"])["2025-12"]
    assert december["n"] > 0
    # the reads at the period's first and last instants are in, those just outside are not
    start, end = PERIOD.bounds()
    inside = [r for r in rows if in_scope(r, PERIOD)]
    assert {start, end - timedelta(microseconds=1)} <= {r["at"] for r in inside}
    assert not {start - timedelta(microseconds=1), end} & {r["at"] for r in inside}
    assert expected(rows, PERIODS[2])["total"]["n"] > 0
    assert expected(rows, PERIODS[3])["total"]["n"] == 0


# --- statements per page --------------------------------------------------------------------

STATS_PAGES = ["/qa/", "/qa/stats", f"/qa/stats?start={PERIOD.start}&end={PERIOD.end}",
               f"/qa/stats?start={PERIOD.start}&end={PERIOD.end}&modality=ct"]


def test_pages_run_as_many_statements_for_one_review_as_for_hundreds(db, client, auth):
    """The dashboard and statistics page count in the database: one review of one reader
    or hundreds of several readers, modalities and months take the same statements."""
    from tests.test_query_counts import page_queries

    qa = make_user(["qa_manager"])
    reader = make_user(["radiologist"])
    r = make_review(make_study(reader, finalized_at=_at(2026, 1, 5)).read,
                    make_user(["reviewer"]), "2b")
    db.session.add(DiscrepancyCase(review=r, status="open"))  # the dashboard lists open ones
    db.session.commit()
    auth.login(qa)
    small = {url: len(page_queries(client, url)) for url in STATS_PAGES}
    world = db.session.execute(sa.select(sa.func.count(Review.id))).scalar_one()
    build_world(db)
    assert db.session.execute(sa.select(sa.func.count(Review.id))).scalar_one() > world + 250
    large = {url: len(page_queries(client, url)) for url in STATS_PAGES}
    assert large == small

