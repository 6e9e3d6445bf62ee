"""WADO-RS rendered and thumbnail resources (PS3.18 10.4, rendered media types 8.7.4).

Rendered images come from the viewer's renderer and its disk cache (FrameRenderer): the
stored pixels through the modality LUT and a window (the file's own, or `window=center,
width[,linear|linear-exact|sigmoid]`), cropped and scaled to fit `viewport=vw,vh[,sx,sy,sw,
sh]` keeping the aspect ratio, as JPEG (the default; `quality` 1-100), PNG or GIF. Nothing
is drawn on them (no annotation): a de-identified caller gets pixels only.

- An instance renders its first frame; `frames/{n}/rendered` that frame (several frames: a
  multipart/related of images). A study or series renders as a multipart/related of its
  instances' renderings, in anatomical order.
- A thumbnail is one small image the server picks: a frame's own, an instance's middle
  frame, a series' middle frame in anatomical order, a study's first series'. Without a
  viewport it fits a 128-pixel box.
"""

from __future__ import annotations

import hashlib

from flask import abort, make_response, request, stream_with_context

from qaportal.dicom.render_options import (
    FORMATS,
    RenderOptions,
    parse_quality,
    parse_viewport,
    region_fits,
)
from qaportal.dicom.render_options import parse_window as parse_window_param
from qaportal.dicomweb import bp
from qaportal.dicomweb.negotiate import Offer, choose_or_406
from qaportal.dicomweb.related import related_response
from qaportal.dicomweb.wado_frames import (
    INSTANCE_URL,
    audit_read,
    cache_headers,
    locate,
    not_modified,
    parse_frame_list,
    server_error,
)
from qaportal.models import Instance, Series
from qaportal.studies.frames import ordered_frames
from qaportal.studies.viewer_routes import frame_renderer

SINGLE = [Offer(t) for t in FORMATS]  # image/jpeg first: the default
MULTIPART = [Offer("multipart/related", {"type": t}) for t in FORMATS]


def _options(fmt: str, thumbnail: bool = False) -> RenderOptions:
    """Read window, viewport and quality from the query; 400 when one is malformed."""
    args = request.args
    try:
        window, function = (None, "linear") if thumbnail else parse_window_param(
            args.get("window"))
    except ValueError as exc:
        abort(400, description=f"window: {exc}")
    try:
        viewport = parse_viewport(args.get("viewport"), frame_renderer().max_pixels)
    except ValueError as exc:
        abort(400, description=f"viewport: {exc}")
    try:
        quality = parse_quality(args.get("quality"))
    except ValueError as exc:
        abort(400, description=f"quality: {exc}")
    return RenderOptions(fmt=fmt, window=window, function=function, viewport=viewport,
                         quality=quality, thumbnail=thumbnail)


def _format(offer: Offer) -> str:
    return FORMATS[offer.params.get("type", offer.type)]


def _instances_in_order(series: Series) -> list[Instance]:
    seen: dict[int, Instance] = {}
    for ref in ordered_frames(series.instances):
        seen.setdefault(ref.instance.id, ref.instance)
    return list(seen.values())


def _one_image(target, series_id: int, inst: Instance, frame: int, options: RenderOptions):
    """Answer one rendered frame (cached; 304 when the caller holds it)."""
    if not region_fits(options.viewport, inst.columns, inst.rows):
        abort(400, description="viewport: the source region lies outside the image")
    renderer = frame_renderer()
    etag = renderer.rendered_etag(inst, frame, options)
    audit_read(target, series_id)
    if (early := not_modified(etag)) is not None:
        return early
    result = renderer.rendered(inst, frame, options)
    if result.error:
        server_error(result.error)
    response = make_response(result.png)
    response.mimetype = result.mimetype
    response.headers["X-Frame-Cache"] = "hit" if result.cached else "miss"
    return cache_headers(response, etag)


def _many_images(target, items: list[tuple[Series, Instance, int]], options: RenderOptions):
    """Answer a multipart/related of rendered frames: items are (series, instance, frame)."""
    items = [it for it in items if region_fits(options.viewport, it[1].columns, it[1].rows)]
    if not items:
        abort(404)
    renderer = frame_renderer()
    etags = [renderer.rendered_etag(inst, frame, options) for _, inst, frame in items]
    etag = hashlib.sha256(":".join(etags).encode()).hexdigest()[:32]
    for series_id in dict.fromkeys(series.id for series, _, _ in items):
        audit_read(target, series_id)
    if (early := not_modified(etag)) is not None:
        return early
    mimetype = "image/" + options.fmt

    base = f"{request.url_root.rstrip('/')}/dicomweb/studies/{target.study_uid}"

    def parts():
        for series, inst, frame in items:
            result = renderer.rendered(inst, frame, options)
            if result.error:  # one unreadable file must not end the others' answer
                continue
            location = (f"{base}/series/{target.uid(series.series_uid)}/instances/"
                        f"{target.uid(inst.sop_uid)}/frames/{frame + 1}/rendered")
            yield {"Content-Type": mimetype, "Content-Location": location}, result.png

    response = related_response(stream_with_context(parts()), mimetype)
    return cache_headers(response, etag)


@bp.route("/studies/<study_uid>/rendered")
def study_rendered(study_uid: str):
    """Render every instance of the study (multipart/related of images)."""
    offer = choose_or_406(request.headers.get("Accept"), MULTIPART)
    options = _options(_format(offer))
    target, _, _ = locate(study_uid)
    items = [(series, inst, 0) for series in target.study.series
             for inst in _instances_in_order(series)]
    return _many_images(target, items, options)


@bp.route("/studies/<study_uid>/series/<series_uid>/rendered")
def series_rendered(study_uid: str, series_uid: str):
    """Render every instance of the series (multipart/related of images)."""
    offer = choose_or_406(request.headers.get("Accept"), MULTIPART)
    options = _options(_format(offer))
    target, series, _ = locate(study_uid, series_uid)
    items = [(series, inst, 0) for inst in _instances_in_order(series)]
    return _many_images(target, items, options)


@bp.route(INSTANCE_URL + "/rendered")
def instance_rendered(study_uid: str, series_uid: str, instance_uid: str):
    """Render the instance (its first frame) as one image."""
    offer = choose_or_406(request.headers.get("Accept"), SINGLE)
    options = _options(_format(offer))
    target, series, inst = locate(study_uid, series_uid, instance_uid)
    return _one_image(target, series.id, inst, 0, options)


@bp.route(INSTANCE_URL + "/frames/<frame_list>/rendered")
def frames_rendered(study_uid: str, series_uid: str, instance_uid: str, frame_list: str):
    """Render one frame as an image, or several as a multipart/related of images."""
    target, series, inst = locate(study_uid, series_uid, instance_uid)
    indexes = parse_frame_list(frame_list, max(1, inst.frames or 1))
    if len(indexes) == 1:
        offer = choose_or_406(request.headers.get("Accept"), SINGLE)
        return _one_image(target, series.id, inst, indexes[0], _options(_format(offer)))
    offer = choose_or_406(request.headers.get("Accept"), MULTIPART)
    options = _options(_format(offer))
    return _many_images(target, [(series, inst, i) for i in indexes], options)


def _thumbnail(target, series: Series | None, inst: Instance | None, frame: int | None):
    offer = choose_or_406(request.headers.get("Accept"), SINGLE)
    options = _options(_format(offer), thumbnail=True)
    if inst is None:
        if series is None:
            series = next((s for s in target.study.series if s.instance_count), None)
            if series is None:
                abort(404)
        refs = ordered_frames(series.instances)
        if not refs:
            abort(404)
        ref = refs[len(refs) // 2]
        inst, frame = ref.instance, ref.frame
    elif frame is None:
        frame = max(1, inst.frames or 1) // 2
    return _one_image(target, inst.series_id, inst, frame, options)


@bp.route("/studies/<study_uid>/thumbnail")
def study_thumbnail(study_uid: str):
    """A representative image of the study: the middle frame of its first series."""
    target, _, _ = locate(study_uid)
    return _thumbnail(target, None, None, None)


@bp.route("/studies/<study_uid>/series/<series_uid>/thumbnail")
def series_thumbnail(study_uid: str, series_uid: str):
    """A representative image of the series: its middle frame in anatomical order."""
    target, series, _ = locate(study_uid, series_uid)
    return _thumbnail(target, series, None, None)


@bp.route(INSTANCE_URL + "/thumbnail")
def instance_thumbnail(study_uid: str, series_uid: str, instance_uid: str):
    """A representative image of the instance: its middle frame."""
    target, series, inst = locate(study_uid, series_uid, instance_uid)
    return _thumbnail(target, series, inst, None)


@bp.route(INSTANCE_URL + "/frames/<frame_list>/thumbnail")
def frame_thumbnail(study_uid: str, series_uid: str, instance_uid: str, frame_list: str):
    """A small image of one frame."""
    target, series, inst = locate(study_uid, series_uid, instance_uid)
    indexes = parse_frame_list(frame_list, max(1, inst.frames or 1))
    if len(indexes) != 1:
        abort(400, description="a thumbnail is of one frame")
    return _thumbnail(target, series, inst, indexes[0])
