"""STOW-RS (PS3.18 10.5): POST studies and POST studies/{study}.

The body, `multipart/related; type="application/dicom"`, is streamed part by part into
private files (never held in memory), then goes through the upload's ingest into the
caller's own studies (qaportal.dicomweb.stow_ingest). The answer is the Store Instances
Response Module (PS3.18 Annex I) in DICOM JSON: Referenced SOP Sequence for what is stored
(an identical copy already stored counts as stored), Failed SOP Sequence with a Failure
Reason for the rest; 200 all stored, 202 some, 409 none. Who may store: whoever may upload
(radiologists); a token needs the write scope, a browser session the CSRF header (guard).
"""

from __future__ import annotations

import re
from typing import Any

from flask import abort, current_app, request, url_for
from flask_login import current_user

from qaportal.auth.tokens import audited_in_transaction
from qaportal.dicomweb import bp, dicomjson
from qaportal.dicomweb.dicomjson import element, tag
from qaportal.dicomweb.multipart_related import DICOM, RelatedReader
from qaportal.dicomweb.negotiate import Offer, choose_or_406, parse_media_type
from qaportal.dicomweb.stow_ingest import Outcome, StowIngest, part_item
from qaportal.marks.context import HEADER as CONTEXT_HEADER
from qaportal.marks.context import from_request as marks_context
from qaportal.marks.linking import LinkResult, link_stored
from qaportal.permissions import role_required
from qaportal.studies.socket_body import direct_stream

ANSWERS = [Offer(dicomjson.DICOM_JSON), Offer("application/json")]
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_UNSAFE = re.compile(r"[^\x20-\x7e]|\\")

RETRIEVE_URL = 0x00081190
FAILED_SOP_SEQUENCE = 0x00081198
REFERENCED_SOP_SEQUENCE = 0x00081199
REFERENCED_SOP_CLASS_UID = 0x00081150
REFERENCED_SOP_INSTANCE_UID = 0x00081155
FAILURE_REASON = 0x00081197


@bp.route("/studies", methods=["POST"], endpoint="stow_studies")
@audited_in_transaction
@role_required("radiologist", "reviewer")
def stow_studies():
    """Store instances of any studies (each into the caller's own copy of its study)."""
    return _store(None)


@bp.route("/studies/<study_uid>", methods=["POST"], endpoint="stow_study")
@audited_in_transaction
@role_required("radiologist", "reviewer")
def stow_study(study_uid: str):
    """Store instances of one study; an instance of another study fails (0xA900)."""
    if len(study_uid) > 64 or not _UID.fullmatch(study_uid):
        abort(400, description="the study in the URL is not a valid Study Instance UID")
    return _store(study_uid)


def _store(target_study: str | None):
    answer = choose_or_406(request.headers.get("Accept"), ANSWERS)
    user = current_user._get_current_object()
    # A viewer's SR or KOS is linked to the caller's open opinion or review (qaportal.marks);
    # a reviewer may store only those (403 without the context header).
    context = marks_context(user, request.headers.get(CONTEXT_HEADER))
    boundary = _boundary()
    cfg = current_app.config
    reader = RelatedReader(direct_stream(request), boundary.encode("latin-1"), root_type=DICOM,
                           make_file=lambda: request.receive_file(deferred=True),
                           max_part_bytes=cfg["UPLOAD_MAX_FILE_BYTES"],
                           max_parts=cfg["UPLOAD_MAX_FILES"])
    ingest = StowIngest(user, target_study, check=context.check)
    try:
        for part in reader.iter_parts():
            ingest.add(part_item(part, cfg["UPLOAD_MAX_FILE_BYTES"]), part.container)
        ingest.finish()
        if not ingest.items:
            abort(400, description="the request holds no part to store")
    except BaseException:
        ingest.abort()
        raise
    outcomes, _batch = ingest.commit()
    stored = [o for o in outcomes if o.ok]
    status = 200 if len(stored) == len(outcomes) else 202 if stored else 409
    out = dicomjson.response(_response_dataset(outcomes, target_study), status)
    out.mimetype = answer.type
    _link_headers(out, link_stored(context, outcomes))
    return out


def _link_headers(out, results: list[LinkResult]) -> None:
    """Say what became of each stored SR/KOS: the drafts linked, and (PS3.18 Warning
    header, code 299) why any was not."""
    linked = sorted({r.linked_to for r in results if r.linked_to})
    if linked:
        out.headers["X-QAPortal-Marks-Linked"] = ", ".join(linked)
    for r in results:
        if r.reason:
            # Printable ASCII only: a label read from the document may hold anything.
            text = _UNSAFE.sub("?", r.reason.replace('"', "'"))[:300]
            out.headers.add("Warning", f'299 qaportal "{text}"')


MAX_BOUNDARY = 200


def _boundary() -> str:
    """Return the body's boundary, refusing (415) any body but multipart/related of DICOM."""
    mtype, params = parse_media_type(request.headers.get("Content-Type", ""))
    if mtype != "multipart/related" or parse_media_type(params.get("type", ""))[0] != DICOM:
        abort(415, description='STOW-RS takes Content-Type: multipart/related; '
                               'type="application/dicom"; boundary=...')
    boundary = params.get("boundary", "")
    # RFC 2046 says at most 70 characters, but Orthanc 1.10's DICOMweb client sends 73
    # (two UUIDs): accept longer ones, within a bound that keeps the part search cheap.
    if not boundary or len(boundary) > MAX_BOUNDARY:
        abort(400, description="the multipart/related Content-Type has no valid boundary")
    return boundary


def _site_root() -> str:
    """Return the portal's public root: QAPORTAL_BASE_URL when set, else the address the
    request came to (a Retrieve URL only goes back to the caller who sent that Host)."""
    base = current_app.config.get("BASE_URL")
    return str(base).rstrip("/") if base else request.host_url.rstrip("/")


def _response_dataset(outcomes: list[Outcome], target_study: str | None) -> dict[str, Any]:
    """Return the Store Instances Response Module (PS3.18 Table I.1-1) in DICOM JSON."""
    base = _site_root() + url_for("dicomweb.stow_studies")
    ok = [o for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    studies = {o.study_uid for o in ok}
    study = target_study or (next(iter(studies)) if len(studies) == 1 else None)
    ds: dict[str, Any] = {tag(RETRIEVE_URL): element("UR", f"{base}/{study}" if study else None)}
    if failed:
        ds[tag(FAILED_SOP_SEQUENCE)] = {"vr": "SQ", "Value": [
            {tag(REFERENCED_SOP_CLASS_UID): element("UI", o.sop_class_uid),
             tag(REFERENCED_SOP_INSTANCE_UID): element("UI", o.sop_uid),
             tag(FAILURE_REASON): element("US", o.code)}
            for o in failed]}
    if ok:
        ds[tag(REFERENCED_SOP_SEQUENCE)] = {"vr": "SQ", "Value": [
            {tag(REFERENCED_SOP_CLASS_UID): element("UI", o.sop_class_uid),
             tag(REFERENCED_SOP_INSTANCE_UID): element("UI", o.sop_uid),
             tag(RETRIEVE_URL): element(
                 "UR", f"{base}/{o.study_uid}/series/{o.series_uid}/instances/{o.sop_uid}")}
            for o in ok]}
    return ds
