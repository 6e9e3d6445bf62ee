"""WADO-RS frames: `.../instances/{instance}/frames/{frame_list}` (PS3.18 10.4).

Each requested frame is one part of a multipart/related answer: by default uncompressed
little endian bytes (`application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1`, a
compressed frame decoded); the stored compressed bytes as they are when the Accept header
asks for the stored syntax's media type (`type="image/jp2"`) or for
`type="application/octet-stream"; transfer-syntax=*` (as OHIF does). The frames are the
stored pixels for every caller (de-identification changes the header, not the pixels).

Reads are audited once per series within the audit window, never per frame
(`audit_series_read`, shared with the viewer). Only the requested frames are read.
"""

from __future__ import annotations

import hashlib

from flask import abort, current_app, jsonify, make_response, request
from flask_login import current_user

from qaportal.dicom import DicomRejected, StoredFileCorrupt, StoredFileMissing
from qaportal.dicom.frames_raw import COMPRESSED_MEDIA_TYPES, EXPLICIT_LE, FrameReader
from qaportal.dicomweb import bp
from qaportal.dicomweb.access import Target, find_instance, find_series, find_study
from qaportal.dicomweb.negotiate import Offer, choose_or_406, parse_accept
from qaportal.dicomweb.related import related_response
from qaportal.models import Instance, Series
from qaportal.studies.frames import INTEGRITY_ERROR, MISSING_ERROR
from qaportal.studies.viewer_routes import audit_series_read, frame_renderer

OCTET = "application/octet-stream"
VIA = "dicomweb"
INSTANCE_URL = "/studies/<study_uid>/series/<series_uid>/instances/<instance_uid>"
EAGER_BYTES = 8 * 1024 * 1024  # answers up to this size get a Content-Length


def locate(study_uid: str, series_uid: str | None = None,
           instance_uid: str | None = None) -> tuple[Target, Series | None, Instance | None]:
    """Return the caller's study, series and instance under the UIDs they see; 404 else."""
    target = find_study(current_user, study_uid)
    series = find_series(target, series_uid) if series_uid is not None else None
    inst = find_instance(target, series, instance_uid) if instance_uid is not None else None
    return target, series, inst


def audit_read(target: Target, series_id: int) -> None:
    """Record the read of a series (once per series per audit window, not per frame)."""
    audit_series_read(target.study, series_id, target.mode, VIA)


def not_modified(etag: str):
    """Return a 304 when the caller already holds this representation, else None."""
    if request.if_none_match.contains(etag):
        return cache_headers(make_response("", 304), etag)
    return None


def cache_headers(response, etag: str):
    """Patient images: the caller's own cache may keep them (as the viewer's), shared never."""
    response.headers["Cache-Control"] = f"private, max-age={current_app.config['FRAME_MAX_AGE']}"
    response.headers["Vary"] = "Accept"
    response.set_etag(etag)
    return response


def server_error(exc: Exception | str):
    """Answer a 500 naming what is wrong with the stored file (never patient data).

    The answer is built here, not left to the app's 500 handler, which hides the reason
    (right for unexpected errors, wrong for a file known to be damaged).
    """
    if isinstance(exc, StoredFileCorrupt):
        reason = INTEGRITY_ERROR
    elif isinstance(exc, StoredFileMissing):
        reason = MISSING_ERROR
    elif isinstance(exc, str):
        reason = exc
    else:
        reason = f"cannot serve the frame: {getattr(exc, 'reason', 'unreadable')}"
    current_app.logger.warning("DICOMweb %s: %s", request.endpoint, reason)
    response = jsonify(error=reason)
    response.status_code = 500
    abort(response)


def parse_frame_list(text: str, frames: int) -> list[int]:
    """Return 0-based indexes of a 1-based, comma-separated list; 400 when malformed or out
    of range (as PS3.18 answers an invalid frame number on rendered resources)."""
    numbers = []
    for item in text.replace("%2C", ",").replace("%2c", ",").split(","):
        item = item.strip()
        if not item.isdigit() or not 1 <= int(item) <= frames:
            abort(400, description=f"frame numbers must be 1 to {frames}, comma-separated")
        numbers.append(int(item) - 1)
    if len(set(numbers)) != len(numbers):
        abort(400, description="frame numbers must not repeat")
    return numbers


def frame_offers(stored_syntax: str) -> list[Offer]:
    """Return what a frame can be served as: uncompressed first, then the stored syntax.

    A range asking `transfer-syntax=*` puts the stored syntax first: no decoding wanted.
    """
    native = Offer("multipart/related", {"type": OCTET, "transfer-syntax": EXPLICIT_LE})
    media = COMPRESSED_MEDIA_TYPES.get(stored_syntax)
    if not media:
        return [native]
    stored = [Offer("multipart/related", {"type": m, "transfer-syntax": stored_syntax})
              for m in media]
    stored.append(Offer("multipart/related", {"type": OCTET, "transfer-syntax": stored_syntax}))
    wildcard = any(r.params.get("transfer-syntax") == "*"
                   for r in parse_accept(request.headers.get("Accept")))
    return [*stored, native] if wildcard else [native, *stored]


@bp.route(INSTANCE_URL + "/frames/<frame_list>")
def retrieve_frames(study_uid: str, series_uid: str, instance_uid: str, frame_list: str):
    """Retrieve frames of an instance as a multipart/related answer, one part per frame."""
    target, series, inst = locate(study_uid, series_uid, instance_uid)
    indexes = parse_frame_list(frame_list, max(1, inst.frames or 1))
    offer = choose_or_406(request.headers.get("Accept"),
                          frame_offers(inst.transfer_syntax_uid or ""))
    part_type, syntax = offer.params["type"], offer.params["transfer-syntax"]
    decode = syntax == EXPLICIT_LE
    audit_read(target, series.id)
    etag = hashlib.sha256(f"{inst.sha256}:{frame_list}:{part_type}:{syntax}".encode()
                          ).hexdigest()[:32]
    if (early := not_modified(etag)) is not None:
        return early
    renderer = frame_renderer()
    try:
        reader = FrameReader(renderer.verified_path(inst), renderer.max_pixels)
    except (DicomRejected, StoredFileCorrupt, StoredFileMissing) as exc:
        server_error(exc)
    if not decode and reader.transfer_syntax != syntax:
        reader.close()  # the file disagrees with its row: serve nothing rather than mislabel
        server_error(DicomRejected("stored transfer syntax changed"))
    location = request.base_url.rsplit("/", 1)[0]
    headers = {"Content-Type": f"{part_type}; transfer-syntax={syntax}"}

    def parts():
        with reader:
            for i in indexes:
                data = reader.uncompressed(i) if decode else reader.stored(i)
                yield {**headers, "Content-Location": f"{location}/{i + 1}"}, data

    eager = len(indexes) * reader.frame_bytes <= EAGER_BYTES
    if eager:
        try:
            body = list(parts())
        except DicomRejected as exc:
            server_error(exc)
        response = related_response(body, part_type, eager=True, transfer_syntax=syntax)
    else:
        response = related_response(parts(), part_type, transfer_syntax=syntax)
    return cache_headers(response, etag)
