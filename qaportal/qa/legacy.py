"""Import reviews scored on the 2009 RADPEER four-point scale: mapped, labelled, never lost.

CSV columns: study_uid, reviewer_email, score, comment, category (optional), reviewed_on
(YYYY-MM-DD, optional). Mapping to the 2016 scale: 1 -> 1; 2 -> 2a; 3 -> 3a; 4 -> 3b
(a 2009 "4", a miss that should be made almost every time, is treated as likely significant);
an a/b suffix given on 2, 3 or 4 is kept (4a -> 3a, 4b -> 3b). The original value is stored
in Review.legacy_score and shown beside the mapped one.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import sqlalchemy as sa

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import Review, ReviewAssignment, Study, User
from qaportal.models.review import CATEGORIES, LEGACY_SCORES

LEGACY_MAP = {"1": "1", "2": "2a", "2a": "2a", "2b": "2b", "3": "3a", "3a": "3a",
              "3b": "3b", "4": "3b", "4a": "3a", "4b": "3b"}


def map_legacy_score(value: str) -> str:
    """Return the 2016 RADPEER score for a 2009-scale score (ValueError when unknown)."""
    key = (value or "").strip().lower()
    if key not in LEGACY_SCORES:
        raise ValueError(f"unknown 2009 RADPEER score {value!r}")
    return LEGACY_MAP[key]


@dataclass
class ImportResult:
    """What an import did: rows imported, rows skipped as duplicates, errors by line."""

    imported: int = 0
    duplicates: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def _open(source: str | Path | IO[str]) -> IO[str]:
    if isinstance(source, Path):
        return source.open(newline="", encoding="utf-8")
    if isinstance(source, str):
        if "\n" in source or "," in source:
            return io.StringIO(source)
        return Path(source).open(newline="", encoding="utf-8")
    return source


def import_legacy_reviews(source: str | Path | IO[str], by: User | None = None) -> ImportResult:
    """Import legacy reviews from CSV text, a path or a file; the caller commits."""
    result = ImportResult()
    fh = _open(source)
    try:
        reader = csv.DictReader(fh)
        missing = {"study_uid", "reviewer_email", "score"} - set(reader.fieldnames or ())
        if missing:
            result.errors.append((1, f"missing column(s): {', '.join(sorted(missing))}"))
            return result
        for line, row in enumerate(reader, start=2):
            problem = _import_row(row, result)
            if problem:
                result.errors.append((line, problem))
    finally:
        if fh is not source:
            fh.close()
    audit.record("review.legacy_imported", actor=by, actor_label=None if by else "cli",
                 imported=result.imported, duplicates=result.duplicates,
                 errors=len(result.errors))
    return result


def _import_row(row: dict[str, str], result: ImportResult) -> str | None:
    legacy = (row.get("score") or "").strip().lower()
    try:
        mapped = map_legacy_score(legacy)
    except ValueError as exc:
        return str(exc)
    # Study identity is per owner: several owners may hold a study with this UID; only
    # one of them may have a finalized read, else the row cannot say which was reviewed.
    studies = [s for s in db.session.scalars(sa.select(Study).where(
        Study.study_uid == (row.get("study_uid") or "").strip()).order_by(Study.id))
        if s.read is not None and s.read.finalized_at is not None]
    if not studies:
        return "no finalized read for this study_uid"
    if len(studies) > 1:
        return "several studies with a finalized read have this study_uid"
    study = studies[0]
    reviewer = db.session.scalar(sa.select(User).where(
        User.email == (row.get("reviewer_email") or "").strip().lower()))
    if reviewer is None:
        return "unknown reviewer_email"
    if reviewer.id == study.read.reader_id:
        return "the reviewer is the reader of this study"
    exists = db.session.scalar(sa.select(ReviewAssignment.id).where(
        ReviewAssignment.read_id == study.read.id, ReviewAssignment.reviewer_id == reviewer.id))
    if exists is not None:
        result.duplicates += 1
        return None
    category = (row.get("category") or "").strip().lower() or None
    if category is not None and category not in CATEGORIES:
        return f"unknown category {category!r}"
    when = datetime.now(UTC)
    if (row.get("reviewed_on") or "").strip():
        try:
            when = datetime.fromisoformat(row["reviewed_on"].strip()).replace(tzinfo=UTC)
        except ValueError:
            return "reviewed_on is not a date (YYYY-MM-DD)"
    assignment = ReviewAssignment(read_id=study.read.id, reviewer_id=reviewer.id,
                                  source="legacy", status="submitted", deidentified=False,
                                  assigned_at=when, revealed_at=when, submitted_at=when)
    db.session.add(assignment)
    db.session.add(Review(assignment=assignment, score=mapped, legacy_score=legacy,
                          category=category, comment=(row.get("comment") or "").strip(),
                          submitted_at=when))
    db.session.flush()
    result.imported += 1
    return None
