"""Running a QIDO-RS search: the caller's visibility first, then the keys, then the page.

Studies the caller may not see are excluded before any key is tested (in the WHERE clause
of the one query), so neither the number of results nor the time taken depends on other
users' studies. Studies served as stored are matched in SQL on their columns; studies
served de-identified (only ever through grants: a few per user) are matched in Python on
their served values, so an original name, ID, accession, date or UID never finds them.
Results are ordered by served study date (newest first), then study, series and instance
number and id, so pages of limit/offset never overlap.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from qaportal.dicomweb.access import DOCUMENT_MODALITIES, Target, pick, reachable
from qaportal.dicomweb.matching import Key
from qaportal.dicomweb.qido_fields import (
    Attr,
    instance_values,
    retrieve_url,
    series_values,
    study_values,
)
from qaportal.extensions import db
from qaportal.models import Instance, Series, Study, StudyAccess, User

COLUMNS: dict[str, Any] = {
    "StudyDate": Study.study_date, "StudyTime": Study.study_time,
    "AccessionNumber": Study.accession_number,
    "ReferringPhysicianName": Study.referring_physician,
    "PatientName": Study.patient_name, "PatientID": Study.patient_id,
    "PatientBirthDate": Study.patient_birth_date, "PatientSex": Study.patient_sex,
    "StudyInstanceUID": Study.study_uid, "StudyDescription": Study.study_description,
    "InstitutionName": Study.institution,
    "Modality": Series.modality, "SeriesDescription": Series.series_description,
    "SeriesNumber": Series.series_number, "SeriesInstanceUID": Series.series_uid,
    "BodyPartExamined": Series.body_part,
    "SOPClassUID": Instance.sop_class_uid, "SOPInstanceUID": Instance.sop_uid,
    "InstanceNumber": Instance.instance_number, "Rows": Instance.rows,
    "Columns": Instance.columns, "NumberOfFrames": Instance.frames,
}


@dataclass
class Search:
    """A parsed search: level, keys, answer fields and page."""

    level: str  # "study", "series" or "instance"
    keys: list[Key]
    fields: list[Attr]
    limit: int
    offset: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class Page:
    """One page of results (served values, RetrieveURL included) and whether more follow."""

    results: list[dict[str, Any]]
    more: bool


def _sort_key(values: dict[str, Any], ids: tuple[int, ...]) -> tuple:
    day = values.get("StudyDate")
    key: list[Any] = [day is None, -day.toordinal() if day else 0, ids[0]]
    for name, ident in zip(("SeriesNumber", "InstanceNumber"), ids[1:], strict=False):
        number = values.get(name)
        key += [number is None, number or 0, ident]
    return tuple(key)


def _build(target_deid: bool, uid, study: Any, series: Any, inst: Any, level: str,
           base: str) -> dict[str, Any]:
    values = study_values(study, target_deid, uid)
    if series is not None:
        values.update(series_values(series, target_deid, uid))
    if inst is not None:
        values.update(instance_values(inst, uid))
    values["RetrieveURL"] = retrieve_url(base, values, level)
    return values


def _matches(keys: list[Key], values: dict[str, Any]) -> bool:
    return all(k.test(values.get(k.attr.keyword)) for k in keys)


# -- studies served de-identified, and searches inside one study: Python on served values --

def _expand(target: Target, level: str, series: Iterable[Series],
            instances: dict[int, list[Instance]], base: str
            ) -> Iterator[tuple[tuple, dict[str, Any]]]:
    deid, uid, study = target.deidentified, target.uid, target.study
    if level == "study":
        values = _build(deid, uid, study, None, None, level, base)
        yield _sort_key(values, (study.id,)), values
        return
    for se in series:
        if level == "series":
            values = _build(deid, uid, study, se, None, level, base)
            yield _sort_key(values, (study.id, se.id)), values
            continue
        for inst in instances.get(se.id, ()):
            values = _build(deid, uid, study, se, inst, level, base)
            yield _sort_key(values, (study.id, se.id, inst.id)), values


def python_hits(targets: list[Target], search: Search, base: str,
                only_series: Series | None = None) -> list[tuple[tuple, dict[str, Any]]]:
    """Match the targets' served values (one query for series, one for instances at most)."""
    if not targets:
        return []
    series_of: dict[int, list[Series]] = defaultdict(list)
    instances_of: dict[int, list[Instance]] = defaultdict(list)
    if search.level != "study":
        if only_series is not None:
            series_of[only_series.study_id].append(only_series)
        else:
            for se in db.session.scalars(sa.select(Series).where(
                    Series.study_id.in_([t.study.id for t in targets]))):
                series_of[se.study_id].append(se)
    if search.level == "instance":
        series_ids = [se.id for group in series_of.values() for se in group]
        for inst in db.session.scalars(sa.select(Instance).where(
                Instance.series_id.in_(series_ids))):
            instances_of[inst.series_id].append(inst)
    hits = []
    for t in targets:
        for key, values in _expand(t, search.level, series_of.get(t.study.id, ()),
                                   instances_of, base):
            if _matches(search.keys, values):
                hits.append((key, values))
    return hits


def page_of(hits: list[tuple[tuple, dict[str, Any]]], search: Search) -> Page:
    """Sort hits and cut the page."""
    hits.sort(key=lambda h: h[0])
    end = search.offset + search.limit
    return Page([v for _, v in hits[search.offset:end]], len(hits) > end)


# -- studies served as stored: SQL ----------------------------------------------------------

def _access(user: User) -> tuple[sa.ColumnElement[bool], list[Target]]:
    """Return the condition on studies served to the user as stored, and the targets the
    user holds de-identified (through grants only: owners and QA see all as stored)."""
    if user.has_role("qa_manager", "admin"):
        return sa.true(), []
    granted_ids = sa.select(StudyAccess.study_id).where(
        StudyAccess.user_id == user.id, StudyAccess.revoked_at.is_(None))
    granted = db.session.scalars(sa.select(Study).where(
        Study.id.in_(granted_ids), Study.owner_id != user.id)).all()
    targets = reachable(user, granted)
    full = [t.study.id for t in targets if not t.deidentified]
    deid = list(pick([t for t in targets if t.deidentified], user).values())
    cond = Study.owner_id == user.id
    if full:
        cond = sa.or_(cond, Study.id.in_(full))
    served = sorted({t.study_uid for t in deid})
    if served:  # marks saved under a de-identified UID: the images' copy answers for it
        cond = sa.and_(cond, sa.not_(sa.and_(Study.study_uid.in_(served),
                                             Study.modalities.in_(_DOCUMENT_SETS))))
    return cond, deid


# The modality lists of a copy holding documents only (access.documents_only), as stored:
# sorted and joined by "/".
_DOCUMENT_SETS = ["/".join(c) for n in (1, 2, 3)
                  for c in itertools.combinations(sorted(DOCUMENT_MODALITIES), n)]


def _picked(cond: sa.ColumnElement[bool], user_id: int) -> sa.Select:
    """The ids of the studies served as stored, one per StudyInstanceUID (access.pick)."""
    rank = sa.func.row_number().over(
        partition_by=Study.study_uid,
        order_by=(sa.case((Study.modalities.in_(_DOCUMENT_SETS), 1), else_=0),
                  sa.case((Study.owner_id == user_id, 0), else_=1), Study.id))
    ranked = sa.select(Study.id.label("id"), rank.label("rn")).where(cond).subquery()
    return sa.select(ranked.c.id).where(ranked.c.rn == 1)


def _sql_condition(key: Key, dialect: str) -> sa.ColumnElement[bool]:
    name = key.attr.keyword
    if name == "ModalitiesInStudy":
        other = aliased(Series)
        return sa.exists().where(other.study_id == Study.id,
                                 key.condition(other.modality, dialect))
    column = COLUMNS.get(name)
    if column is None:  # served empty (StudyID): only universal matching finds it
        return sa.false()
    return key.condition(column, dialect)


_STUDY_COLUMNS = [Study.id, Study.study_uid, Study.study_date, Study.study_time,
                  Study.accession_number, Study.modalities, Study.referring_physician,
                  Study.patient_name, Study.patient_id, Study.patient_birth_date,
                  Study.patient_sex, Study.series_count, Study.instance_count,
                  Study.study_description, Study.institution, Study.deid_date_shift_days,
                  Study.pseudonym]
_SERIES_COLUMNS = [c.label("se_" + c.key) for c in (
    Series.id, Series.modality, Series.series_description, Series.series_number,
    Series.series_uid, Series.instance_count, Series.body_part)]
_INSTANCE_COLUMNS = [c.label("in_" + c.key) for c in (
    Instance.id, Instance.sop_class_uid, Instance.sop_uid, Instance.instance_number,
    Instance.rows, Instance.columns, Instance.frames)]


class _Part:
    """The series or instance columns of a joined row, under their own names."""

    __slots__ = ("row", "prefix")

    def __init__(self, row: Any, prefix: str):
        self.row, self.prefix = row, prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self.row, self.prefix + name)


def _sql_hits(cond: sa.ColumnElement[bool], user: User, search: Search, base: str,
              skip: int, take: int) -> list[tuple[tuple, dict[str, Any]]]:
    """Rows as columns, not ORM objects: a thousand results build several times faster."""
    level = search.level
    columns = list(_STUDY_COLUMNS)
    order = [Study.study_date.desc().nulls_last(), Study.id]
    if level in ("series", "instance"):
        columns += _SERIES_COLUMNS
        order += [Series.series_number.asc().nulls_last(), Series.id]
    if level == "instance":
        columns += _INSTANCE_COLUMNS
        order += [Instance.instance_number.asc().nulls_last(), Instance.id]
    stmt = sa.select(*columns)
    if level in ("series", "instance"):
        stmt = stmt.join(Series, Series.study_id == Study.id)
    if level == "instance":
        stmt = stmt.join(Instance, Instance.series_id == Series.id)
    dialect = db.session.get_bind().dialect.name
    stmt = stmt.where(Study.id.in_(_picked(cond, user.id)),
                      *[_sql_condition(k, dialect) for k in search.keys])
    stmt = stmt.order_by(*order).offset(skip).limit(take)
    hits = []
    for row in db.session.execute(stmt):
        se = _Part(row, "se_") if level != "study" else None
        inst = _Part(row, "in_") if level == "instance" else None
        values = _build(False, _same, row, se, inst, level, base)
        ids = (row.id, *((row.se_id,) if se else ()), *((row.in_id,) if inst else ()))
        hits.append((_sort_key(values, ids), values))
    return hits


def _same(uid: str) -> str:
    return uid


def search_all(user: User, search: Search, base: str) -> Page:
    """Search every study the user may see (studies, series or instances)."""
    cond, deid = _access(user)
    if not deid:
        hits = _sql_hits(cond, user, search, base, search.offset, search.limit + 1)
        return Page([v for _, v in hits[: search.limit]], len(hits) > search.limit)
    hits = _sql_hits(cond, user, search, base, 0, search.offset + search.limit + 1)
    return page_of(hits + python_hits(deid, search, base), search)
