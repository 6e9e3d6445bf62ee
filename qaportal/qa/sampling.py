"""Sampling: eligible reads, a seeded reproducible draw, and balanced reviewer assignment."""

from __future__ import annotations

import hashlib
import math
import random
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from qaportal import audit
from qaportal.blind_roles import non_blind_pairs
from qaportal.extensions import db
from qaportal.models import (
    OriginalRead,
    ReviewAssignment,
    SamplingRule,
    SamplingRun,
    Study,
    User,
    UserRole,
    utcnow,
)
from qaportal.notify import notify
from qaportal.studies.access import grant_access


class SamplingError(ValueError):
    """A run that cannot be committed; the message says why."""


@dataclass(frozen=True)
class Candidate:
    """An eligible read, reduced to what the draw needs."""

    read_id: int
    reader_id: int
    month: str  # YYYY-MM of finalization


def new_seed() -> int:
    """Return a fresh seed for a run (recorded, so the draw can be replayed)."""
    return secrets.randbelow(2**31 - 1) + 1


def sample_size(count: int, percent: float) -> int:
    """Return round-half-up(count × percent / 100)."""
    return int(math.floor(count * percent / 100 + 0.5 + 1e-9))


def select_candidates(candidates: Sequence[Candidate], params: dict[str, Any],
                      seed: int) -> list[int]:
    """Draw reads with random.Random(seed) over candidates ordered by id; return read ids."""
    cands = sorted(candidates, key=lambda c: c.read_id)
    rng = random.Random(seed)  # noqa: S311 -- reproducible audit draw, not a secret
    method = params["method"]
    if method == "percent":
        chosen = rng.sample(cands, sample_size(len(cands), float(params["percent"])))
    elif method == "every_nth":
        n = int(params["every_n"])
        chosen = cands[rng.randrange(n)::n] if cands else []
    elif method == "per_reader_month":
        groups: dict[tuple[int, str], list[Candidate]] = defaultdict(list)
        for c in cands:
            groups[(c.reader_id, c.month)].append(c)
        chosen = []
        for key in sorted(groups):
            group = groups[key]
            chosen.extend(rng.sample(group, min(int(params["per_reader"]), len(group))))
    else:
        raise SamplingError(f"unknown sampling method {method!r}")
    return sorted(c.read_id for c in chosen)


def has_modality(modalities: str, modality: str | None) -> bool:
    """Return True when a study's modalities ("CT/PT") include the wanted one (or any)."""
    return not modality or modality.upper() in (modalities or "").upper().split("/")


def eligible_candidates(rule: SamplingRule) -> list[Candidate]:
    """Return finalized reads matching the rule that no earlier sample has taken."""
    sampled = sa.select(ReviewAssignment.read_id).where(
        ReviewAssignment.source == "sample", ReviewAssignment.status != "cancelled")
    stmt = (
        sa.select(OriginalRead.id, OriginalRead.reader_id, OriginalRead.finalized_at,
                  Study.modalities)
        .join(Study, Study.id == OriginalRead.study_id)
        .where(OriginalRead.finalized_at.is_not(None), OriginalRead.id.not_in(sampled))
        .order_by(OriginalRead.id)
    )
    if rule.reader_id:
        stmt = stmt.where(OriginalRead.reader_id == rule.reader_id)
    if rule.period_start:
        stmt = stmt.where(OriginalRead.finalized_at >= datetime.combine(
            rule.period_start, time(), UTC))
    if rule.period_end:
        stmt = stmt.where(OriginalRead.finalized_at < datetime.combine(
            rule.period_end + timedelta(days=1), time(), UTC))
    return [Candidate(r.id, r.reader_id, r.finalized_at.strftime("%Y-%m"))
            for r in db.session.execute(stmt) if has_modality(r.modalities, rule.modality)]


def eligible_reviewers() -> list[User]:
    """Return active users holding the reviewer role, by id."""
    return list(db.session.scalars(
        sa.select(User).join(UserRole).where(UserRole.role == "reviewer", User.active.is_(True))
        .order_by(User.id)
    ))


def open_load() -> dict[int, int]:
    """Return each reviewer's number of open assignments."""
    return dict(db.session.execute(
        sa.select(ReviewAssignment.reviewer_id, sa.func.count())
        .where(ReviewAssignment.status == "assigned").group_by(ReviewAssignment.reviewer_id)
    ).all())


def can_review_read(reviewer: User, read: OriginalRead) -> bool:
    """A reviewer never gets their own read, nor a study they uploaded (it shows the reader);
    preview_run also excludes every other non-blind relation (qaportal/blind_roles.py)."""
    return reviewer.id != read.reader_id and reviewer.id != read.study.owner_id


def plan_reviewers(reads: Sequence[OriginalRead], reviewers: Sequence[User],
                   subspecialty: str | None, load: dict[int, int],
                   taken: set[tuple[int, int]]) -> list[tuple[OriginalRead, User | None]]:
    """Pick a reviewer per read: subspecialty match first, then least loaded, then lowest id."""
    load = dict(load)
    plan = []
    for read in reads:
        pool = [r for r in reviewers
                if can_review_read(r, read) and (read.id, r.id) not in taken]
        preferred = [r for r in pool if subspecialty and subspecialty in r.subspecialty_names]
        choices = preferred or pool
        if not choices:
            plan.append((read, None))
            continue
        chosen = min(choices, key=lambda r: (load.get(r.id, 0), r.id))
        load[chosen.id] = load.get(chosen.id, 0) + 1
        plan.append((read, chosen))
    return plan


@dataclass
class Preview:
    """A draw shown before it is committed."""

    rule: SamplingRule
    seed: int
    candidates: list[Candidate]
    selected: list[int]
    plan: list[tuple[OriginalRead, User | None]] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        """Return a digest of the candidates and the plan, to detect data changes."""
        text = repr(([c.read_id for c in self.candidates], self.seed,
                     [(r.id, u.id if u else None) for r, u in self.plan]))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def unassigned(self) -> int:
        return sum(1 for _, u in self.plan if u is None)


def preview_run(rule: SamplingRule, seed: int) -> Preview:
    """Draw the rule's sample with the seed and plan reviewers, changing nothing."""
    candidates = eligible_candidates(rule)
    selected = select_candidates(candidates, rule.params(), seed)
    reads = list(db.session.scalars(
        sa.select(OriginalRead).where(OriginalRead.id.in_(selected))
        .options(selectinload(OriginalRead.study)).order_by(OriginalRead.id)
    )) if selected else []
    taken = {(r[0], r[1]) for r in db.session.execute(
        sa.select(ReviewAssignment.read_id, ReviewAssignment.reviewer_id)
        .where(ReviewAssignment.read_id.in_(selected)))} if selected else set()
    # Whoever read, uploaded, requested or gave an opinion on a study knows its reader:
    # never its blind reviewer (qaportal/blind_roles.py).
    read_of = {r.study_id: r.id for r in reads}
    taken |= {(read_of[study_id], user_id)
              for study_id, user_id in non_blind_pairs(read_of)}
    plan = plan_reviewers(reads, eligible_reviewers(), rule.subspecialty, open_load(), taken)
    return Preview(rule, seed, candidates, selected, plan)


def commit_run(rule: SamplingRule, seed: int, by: User,
               fingerprint: str | None = None) -> SamplingRun:
    """Commit the draw shown in the preview: record the run, assign, grant access, notify."""
    preview = preview_run(rule, seed)
    if fingerprint is not None and fingerprint != preview.fingerprint:
        raise SamplingError("The eligible reads or reviewers changed since the preview. "
                            "Review the new selection before committing.")
    if not preview.selected:
        raise SamplingError("The rule selects no reads: nothing to commit.")
    now = utcnow()
    run = SamplingRun(rule=rule, seed=seed, params=rule.params(), run_by_id=by.id, run_at=now,
                      candidates=[[c.read_id, c.reader_id, c.month] for c in preview.candidates],
                      selected=preview.selected)
    db.session.add(run)
    db.session.flush()
    per_reviewer: dict[int, tuple[User, int]] = {}
    for read, reviewer in preview.plan:
        if reviewer is None:
            continue
        assign_sampled(read, reviewer, run, by, now)
        user, count = per_reviewer.get(reviewer.id, (reviewer, 0))
        per_reviewer[reviewer.id] = (user, count + 1)
    for user, count in per_reviewer.values():
        notify(user, "review.assigned",
               f"{count} peer review{'s' if count != 1 else ''} assigned to you.", "/reviews/")
    audit.record("review.run_committed", run, actor=by, rule_id=rule.id, seed=seed,
                 candidates=len(preview.candidates), selected=preview.selected,
                 unassigned=preview.unassigned)
    return run


def assign_sampled(read: OriginalRead, reviewer: User, run: SamplingRun, by: User,
                   at: datetime) -> ReviewAssignment:
    """Assign a sampled read to a reviewer and grant access as the run's rule says."""
    rule = run.rule
    assignment = ReviewAssignment(
        read_id=read.id, reviewer_id=reviewer.id, source="sample", run_id=run.id,
        deidentified=rule.deidentify, due_at=at + timedelta(days=rule.due_days),
        assigned_by_id=by.id, assigned_at=at,
    )
    db.session.add(assignment)
    db.session.flush()
    grant_access(read.study, reviewer, mode="deidentified" if rule.deidentify else "full",
                 source=("review_assignment", assignment.id), by=by)
    return assignment


def replay_run(run: SamplingRun) -> list[int]:
    """Recompute a committed run's selection from its recorded candidates, params and seed."""
    cands = [Candidate(int(a), int(b), str(c)) for a, b, c in run.candidates]
    return select_candidates(cands, run.params, run.seed)
