"""WADO-RS (PS3.18 10.4): instances, metadata and bulk data of a study, series or instance.

Access as the pages (qaportal.dicomweb.access: 404 when not visible; de-identified callers
reach a study only under its remapped UIDs). One audit entry per request, never per part:
`study.retrieved` with the level, what (instances or metadata) and the count; a bulk data
fetch counts as a view of its series (`audit_series_read`, one per series per window).

Answers stream part by part from a generator. The first part is prepared before the answer
starts, so a stored file found missing or corrupt there is a clean 500; one found later
stops the stream with the error logged by instance id (the client sees a broken answer,
never an incomplete one that looks whole, and never bytes that failed the SHA-256 check).
frames/{n}, rendered and thumbnail live in wado_frames.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain

from flask import (
    Response,
    abort,
    current_app,
    jsonify,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user

from qaportal import audit
from qaportal.auth.tokens import audited_per_series
from qaportal.dicom import StoredFileCorrupt, StoredFileMissing
from qaportal.dicom.json_model import BULK_VRS, bulk_value, find_element
from qaportal.dicom.transcode import EXPLICIT_VR_LITTLE_ENDIAN, TranscodeError, to_explicit_little
from qaportal.dicomweb import bp, related
from qaportal.dicomweb.access import Target, find_instance, find_series, find_study
from qaportal.dicomweb.dicomjson import DICOM_JSON
from qaportal.dicomweb.negotiate import Offer, choose_or_406
from qaportal.dicomweb.served import Item, ServeError, Server, items, with_base
from qaportal.dicomweb.syntax import AS_STORED, wanted
from qaportal.extensions import db
from qaportal.models import Instance, Series
from qaportal.studies.viewer_routes import audit_series_read

DICOM = "application/dicom"
OCTET = "application/octet-stream"
PIXEL_DATA = 0x7FE00010
# What stops one part from being sent: logged by instance id, never with patient data.
PART_ERRORS = (StoredFileMissing, StoredFileCorrupt, ServeError, TranscodeError)
# Patient data: no cache may keep it (a shared workstation's browser included).
NO_STORE = {"Cache-Control": "private, no-store"}

Located = tuple[Target, Series | None, Instance | None]


# Instances of a whole-study or series retrieve whose files are read from the disk ahead of
# the one being sent (a new study's files are on the disk only: docs/dicomweb.md, STOW-RS).
READ_AHEAD = 8


class Unavailable(Exception):
    """A stored file needed before the answer starts is missing or corrupt (logged)."""


@bp.errorhandler(Unavailable)
def unavailable(exc: Unavailable):
    """Answer 500 with a short reason; the log has the instance id."""
    db.session.rollback()
    response = jsonify(error="a stored image could not be read; the error is logged")
    response.status_code = 500
    return response


def _locate(study_uid: str, series_uid: str | None = None,
            sop_uid: str | None = None) -> Located:
    target = find_study(current_user, study_uid)
    series = find_series(target, series_uid) if series_uid is not None else None
    inst = find_instance(target, series, sop_uid) if sop_uid is not None else None
    return target, series, inst


def _level(series: Series | None, inst: Instance | None) -> str:
    return "instance" if inst is not None else "series" if series is not None else "study"


def _audit(target: Target, series: Series | None, inst: Instance | None, what: str,
           count: int) -> None:
    ids = {"series_id": series.id} if series is not None else {}
    if inst is not None:
        ids["instance_id"] = inst.id
    audit.record("study.retrieved", target.study, level=_level(series, inst), what=what,
                 count=count, mode=target.mode,
                 served="deidentified" if target.deidentified else "stored", **ids)
    db.session.commit()


def _study_url(target: Target) -> str:
    """Return the study's absolute URL: on QAPORTAL_BASE_URL when set, else as requested.

    (dicomweb-client sends a Host header without the port, so behind anything but port
    80/443 the base URL must be configured for its BulkDataURIs to resolve.)
    """
    base = current_app.config.get("BASE_URL") or request.host_url
    return str(base).rstrip("/") + url_for("dicomweb.retrieve_study",
                                           study_uid=target.study_uid)


def _instance_url(study_url: str, item: Item) -> str:
    return f"{study_url}/series/{item.series_uid}/instances/{item.sop_uid}"


def _guarded(item: Item, body: Iterator[bytes]) -> Iterator[bytes]:
    """Pass a part's chunks on; log a failure by instance id and let it stop the stream."""
    try:
        yield from body
    except PART_ERRORS as exc:
        current_app.logger.error("WADO-RS: instance %s not sent (%s); answer stopped",
                                 item.id, type(exc).__name__)
        raise


def _first(item: Item, make: Callable[[], Iterator]) -> Iterator:
    """Start the first part now: a failure here is a clean 500 before anything is sent."""
    body = make()
    try:
        head = next(body)
    except StopIteration:
        return iter(())
    except PART_ERRORS as exc:
        current_app.logger.error("WADO-RS: instance %s cannot be served (%s)", item.id,
                                 type(exc).__name__)
        raise Unavailable from exc
    return chain([head], body)


def _retrieve(target: Target, series: Series | None, inst: Instance | None) -> Response:
    todo = items(target, series, inst)
    if not todo:
        abort(404)
    want = wanted(request.headers.get("Accept"), DICOM)
    plan = [(item, want.for_instance(item.syntax)) for item in todo]
    if any(syntax is None for _, syntax in plan):
        abort(406, description="the transfer syntax asked for cannot be produced for these "
                               "instances; offered: as stored (transfer-syntax=*) and "
                               f"{EXPLICIT_VR_LITTLE_ENDIAN}")
    server = Server(target)
    study_url = _study_url(target)
    first_item, first_syntax = plan[0]
    first_body = _first(first_item, lambda: server.part10(first_item, first_syntax))

    def parts():
        with server.batch(todo[1:]):
            server.prefetch(todo[1:READ_AHEAD])
            for index, (item, syntax) in enumerate(plan):
                server.prefetch(todo[index + READ_AHEAD:index + READ_AHEAD + 1])
                headers = {"Content-Type": f"{DICOM}; transfer-syntax={syntax}",
                           "Content-Location": _instance_url(study_url, item)}
                body = first_body if index == 0 else server.part10(item, syntax)
                yield headers, _guarded(item, body)

    syntaxes = {syntax for _, syntax in plan}
    boundary = related.new_boundary()
    _audit(target, series, inst, "instances", len(plan))
    fixed = syntaxes.pop() if len(syntaxes) == 1 else None
    return Response(stream_with_context(related.stream(parts(), boundary)),
                    content_type=related.content_type(DICOM, boundary, fixed), headers=NO_STORE)


def _metadata(target: Target, series: Series | None, inst: Instance | None) -> Response:
    offer = choose_or_406(request.headers.get("Accept"),
                          [Offer(DICOM_JSON), Offer("application/json")])
    todo = items(target, series, inst)
    if not todo:
        abort(404)
    server = Server(target)
    study_url = _study_url(target)

    def one(item: Item) -> Iterator[str]:
        yield with_base(server.metadata(item), _instance_url(study_url, item) + "/bulkdata/")

    first = _first(todo[0], lambda: one(todo[0]))

    def body() -> Iterator[bytes]:
        yield b"["
        with server.batch([]):  # headers mostly come from the cache, not the files
            for index, item in enumerate(todo):
                text = first if index == 0 else one(item)
                for chunk in _guarded(item, text):
                    yield ((b"," if index else b"") + chunk.encode("utf-8"))
        yield b"]"

    _audit(target, series, inst, "metadata", len(todo))
    return Response(stream_with_context(body()), content_type=offer.type, headers=NO_STORE)


@bp.get("/studies/<study_uid>")
def retrieve_study(study_uid: str):
    return _retrieve(*_locate(study_uid))


@bp.get("/studies/<study_uid>/series/<series_uid>")
def retrieve_series(study_uid: str, series_uid: str):
    return _retrieve(*_locate(study_uid, series_uid))


@bp.get("/studies/<study_uid>/series/<series_uid>/instances/<instance_uid>")
def retrieve_instance(study_uid: str, series_uid: str, instance_uid: str):
    return _retrieve(*_locate(study_uid, series_uid, instance_uid))


@bp.get("/studies/<study_uid>/metadata")
def study_metadata(study_uid: str):
    return _metadata(*_locate(study_uid))


@bp.get("/studies/<study_uid>/series/<series_uid>/metadata")
def series_metadata(study_uid: str, series_uid: str):
    return _metadata(*_locate(study_uid, series_uid))


@bp.get("/studies/<study_uid>/series/<series_uid>/instances/<instance_uid>/metadata")
def instance_metadata(study_uid: str, series_uid: str, instance_uid: str):
    return _metadata(*_locate(study_uid, series_uid, instance_uid))


@bp.get("/studies/<study_uid>/series/<series_uid>/instances/<instance_uid>/bulkdata/"
        "<path:tag_path>")
@audited_per_series
def bulkdata(study_uid: str, series_uid: str, instance_uid: str, tag_path: str):
    """One element's value as the metadata's BulkDataURI names it (native, little endian)."""
    target, series, inst = _locate(study_uid, series_uid, instance_uid)
    want = wanted(request.headers.get("Accept"), OCTET)
    if (EXPLICIT_VR_LITTLE_ENDIAN in want.refused or not any(
            s in (AS_STORED, EXPLICIT_VR_LITTLE_ENDIAN) for s in want.syntaxes)):
        abort(406, description='bulk data is offered as multipart/related; '
                               f'type="{OCTET}"; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}')
    (item,) = items(target, series, inst)
    try:
        ds = Server(target).dataset(item)
        elem = find_element(ds, tag_path)
        if elem is not None and elem.tag == PIXEL_DATA:
            to_explicit_little(ds)  # compressed pixel data is served decoded
            elem = ds["PixelData"]
    except PART_ERRORS as exc:
        current_app.logger.error("WADO-RS: bulk data of instance %s cannot be served (%s)",
                                 item.id, type(exc).__name__)
        raise Unavailable from exc
    if elem is None or (elem.VR or "UN").split(" or ")[0] not in BULK_VRS:
        abort(404)
    try:
        value = bulk_value(elem)
    except ValueError:
        abort(404)
    audit_series_read(target.study, series.id, target.mode, "dicomweb-bulkdata")
    boundary = related.new_boundary()
    headers = {"Content-Type": f"{OCTET}; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}"}
    body = b"".join(related.stream([(headers, [value])], boundary))
    return Response(body, content_type=related.content_type(
        OCTET, boundary, EXPLICIT_VR_LITTLE_ENDIAN), headers=NO_STORE)
