"""QIDO-RS (PS3.18 10.6): search for studies, series and instances in dicom+json.

Matching keys by keyword or tag, `includefield` (keywords, tags, `all`), `limit`/`offset`
(at most QIDO_MAX_RESULTS per answer; a Warning header says when more results exist) and
`fuzzymatching` (not supported: a Warning says so). An unknown attribute is 400; a known
one this server does not match on is ignored with a Warning. No match is 200 with `[]`.
One `dicomweb.searched` audit entry per request: level and number of results, never the
query values (they may hold names).
"""

from __future__ import annotations

from flask import abort, current_app, request
from flask_login import current_user

from qaportal import audit
from qaportal.dicomweb import bp, dicomjson
from qaportal.dicomweb.access import Target, find_series, find_study
from qaportal.dicomweb.guard import api_token
from qaportal.dicomweb.matching import parse_key
from qaportal.dicomweb.negotiate import Offer, choose_or_406
from qaportal.dicomweb.qido_fields import (
    ATTRS,
    BY_KEYWORD,
    RETRIEVE_URL,
    default_fields,
    encoder,
    levels_up_to,
    resolve,
)
from qaportal.dicomweb.qido_search import Page, Search, page_of, python_hits, search_all
from qaportal.extensions import db
from qaportal.models import Series

OFFERS = [Offer(dicomjson.DICOM_JSON), Offer("application/json")]
CONTROL = frozenset({"includefield", "limit", "offset", "fuzzymatching"})
MORE = "There are additional results that can be requested"


@bp.get("/studies")
def search_studies():
    return _answer("study", None)


@bp.get("/series")
def search_series():
    return _answer("series", None)


@bp.get("/instances")
def search_instances():
    return _answer("instance", None)


@bp.get("/studies/<study_uid>/series")
def search_study_series(study_uid: str):
    return _answer("series", study_uid)


@bp.get("/studies/<study_uid>/instances")
def search_study_instances(study_uid: str):
    return _answer("instance", study_uid)


@bp.get("/studies/<study_uid>/series/<series_uid>/instances")
def search_series_instances(study_uid: str, series_uid: str):
    return _answer("instance", study_uid, series_uid)


def _answer(level: str, study_uid: str | None, series_uid: str | None = None):
    offer = choose_or_406(request.headers.get("Accept"), OFFERS)
    fixed = ("study",) * (study_uid is not None) + ("series",) * (series_uid is not None)
    search = parse_search(level, fixed)
    user = current_user._get_current_object()
    base = request.url_root.rstrip("/") + bp.url_prefix
    target: Target | None = None
    if study_uid is None:
        page = search_all(user, search, base)
    else:
        target = find_study(user, study_uid)
        only: Series | None = find_series(target, series_uid) if series_uid else None
        page = page_of(python_hits([target], search, base, only_series=only), search)
    audit.record("dicomweb.searched", target.study if target else None, level=level,
                 results=len(page.results), via="token" if api_token() else "session")
    db.session.commit()
    return _response(page, search, offer)


def _response(page: Page, search: Search, offer: Offer):
    encode = encoder([*search.fields, RETRIEVE_URL])
    out = dicomjson.response(encode(v) for v in page.results)
    out.mimetype = offer.type
    warnings = list(search.warnings)
    if page.more:
        warnings.append(MORE)
    for text in warnings:
        out.headers.add("Warning", f'299 {request.host} "{text}"')
    return out


def parse_search(level: str, fixed: tuple[str, ...]) -> Search:
    """Parse the query string of a search at a level (400 with a reason when invalid)."""
    allowed = levels_up_to(level)
    keys, ignored, warnings = [], set(), []
    for name, raw in request.args.items(multi=True):
        if name in CONTROL:
            continue
        keyword = _keyword(name, "query")
        attr = BY_KEYWORD.get(keyword) if keyword else None
        if attr is None or attr.kind is None or attr.level not in allowed:
            ignored.add(keyword or name)
            continue
        key = parse_key(attr, raw)
        if key is not None:
            keys.append(key)
    if ignored:
        warnings.append("these attributes are not supported as matching keys here and were "
                        "ignored: " + ", ".join(sorted(ignored)))
    if request.args.get("fuzzymatching", "").strip().lower() == "true":
        warnings.append("fuzzymatching is not supported: only literal matching was performed")
    fields = _fields(level, fixed, warnings)
    maximum = current_app.config["QIDO_MAX_RESULTS"]
    limit = _count("limit", maximum, minimum=1)
    if limit > maximum:
        warnings.append(f"limit reduced to the maximum of {maximum} results per answer")
        limit = maximum
    return Search(level, keys, fields, limit, _count("offset", 0, minimum=0), warnings)


def _keyword(name: str, where: str) -> str | None:
    """Resolve an attribute name; None for nested (sequence) paths, which are ignored."""
    parts = name.split(".")
    keywords = [resolve(p) for p in parts]
    if any(k is None for k in keywords):
        abort(400, description=f"unknown attribute in {where}: {name!s:.80}")
    return keywords[0] if len(parts) == 1 else None


def _fields(level: str, fixed: tuple[str, ...], warnings: list[str]) -> list:
    allowed = levels_up_to(level)
    fields = default_fields(level, fixed)
    missing = set()
    for raw in request.args.getlist("includefield"):
        for part in (p.strip() for p in raw.split(",")):
            if not part:
                continue
            if part.lower() == "all":
                fields += [a for a in ATTRS if a.level in allowed and a not in fields]
                continue
            keyword = _keyword(part, "includefield")
            attr = BY_KEYWORD.get(keyword) if keyword else None
            if attr is not None and attr.level in allowed:
                if attr not in fields:
                    fields.append(attr)
            elif keyword != "RetrieveURL":
                missing.add(keyword or part)
    if missing:
        warnings.append("these attributes are not available and were not included: "
                        + ", ".join(sorted(missing)))
    return fields


def _count(name: str, default: int, minimum: int) -> int:
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        abort(400, description=f"{name} must be an integer of at least {minimum}")
    return int(raw)
