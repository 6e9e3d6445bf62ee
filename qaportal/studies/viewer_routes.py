"""The image viewer: its page, a series' frame list, rendered frames and series thumbnails.

Every view goes through study_for() (404 for anyone without access); URLs carry ids only.
"""

from __future__ import annotations

import os
from datetime import timedelta

import sqlalchemy as sa
from flask import (
    Flask,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from qaportal import audit
from qaportal.dicom import WINDOW_PRESETS
from qaportal.dicom.verified import VerifiedFiles
from qaportal.disk_cache import DiskCache
from qaportal.extensions import db
from qaportal.models import AuditEvent, Instance, Series, Study, utcnow
from qaportal.studies import bp
from qaportal.studies.frames import (
    FrameRenderer,
    Rendered,
    is_colour,
    ordered_frames,
    parse_window,
)
from qaportal.studies.presenter import present_for
from qaportal.studies.queries import study_for
from qaportal.studies.storage import image_store
from qaportal.templating import person_name


def frame_renderer(app: Flask | None = None) -> FrameRenderer:
    """Return the app's frame renderer (one per process: it remembers verified files)."""
    app = app or current_app._get_current_object()
    renderer = app.extensions.get("qaportal_frame_renderer")
    if renderer is None:
        cache = DiskCache(os.path.join(app.config["CACHE_ROOT"], "frames"),
                           app.config["FRAME_CACHE_MAX_BYTES"])
        store = image_store(app)
        # Shared by the worker processes: a file one of them verified is not hashed again.
        verified = VerifiedFiles(store, os.path.join(app.config["CACHE_ROOT"], "verified"),
                                 str(app.config["SECRET_KEY"]).encode(),
                                 3600 * app.config["VERIFIED_FILE_MAX_AGE_HOURS"],
                                 copies_max_bytes=app.config["STORE_COPIES_MAX_BYTES"])
        renderer = FrameRenderer(store, cache, app.config["RENDER_MAX_PIXELS"], verified)
        app.extensions["qaportal_frame_renderer"] = renderer
    return renderer


def _series_or_404(study: Study, series_id: int) -> Series:
    series = db.session.get(Series, series_id)
    if series is None or series.study_id != study.id:
        abort(404)
    return series


def _instances(series: Series) -> list[Instance]:
    return list(db.session.scalars(sa.select(Instance).where(Instance.series_id == series.id)))


def presets_for(modality: str) -> list[dict]:
    """Return the window presets offered for a modality, the file's own window first."""
    presets: list[dict] = [{"name": "Default", "window": None}]
    for name, (center, width) in WINDOW_PRESETS.get(modality.upper(), {}).items():
        presets.append({"name": name.capitalize(), "window": [center, width]})
    return presets


@bp.route("/<int:study_id>/viewer")
def viewer(study_id: int):
    study, mode = study_for(current_user, study_id)
    shown = present_for(current_user, study, deidentified=mode != "full")
    text, view = shown.text, shown.view
    series = [s for s in study.series if s.instance_count > 0]
    wanted = request.args.get("series", type=int)
    current = next((s for s in series if s.id == wanted), series[0] if series else None)
    audit.record("study.viewed", study, mode=mode, page="viewer")
    db.session.commit()
    return render_template("studies/viewer.html", study=study, view=view, series=series,
                           current=current, text=text)


@bp.route("/<int:study_id>/series/<int:series_id>/frames.json")
def series_frames(study_id: int, series_id: int):
    study, mode = study_for(current_user, study_id)
    series = _series_or_404(study, series_id)
    frames = ordered_frames(_instances(series))
    colour = any(is_colour(f.instance) for f in frames)
    auto = None
    if frames and not colour and any(f.instance.window_width is None for f in frames):
        mid = frames[len(frames) // 2]
        auto = frame_renderer().auto_window(mid.instance, mid.frame)
    shown = present_for(current_user, study, deidentified=mode != "full")
    text, view = shown.text, shown.view
    items = []
    for f in frames:
        inst = f.instance
        window = ([inst.window_center, inst.window_width]
                  if inst.window_center is not None and inst.window_width else None)
        items.append({
            "instance_id": inst.id, "frame": f.frame,
            "url": url_for("studies.frame_png", study_id=study.id, instance_id=inst.id,
                           n=f.frame),
            "position": inst.slice_position, "instance_number": inst.instance_number,
            "rows": inst.rows, "columns": inst.columns, "window": window,
        })
    audit.record("study.series_viewed", study, series_id=series.id, mode=mode,
                 frames=len(items))
    db.session.commit()
    return jsonify(
        study_id=study.id,
        series={"id": series.id, "modality": series.modality, "number": series.series_number,
                "description": text(series.series_description)},
        colour=colour, auto_window=list(auto) if auto else None,
        presets=[] if colour else presets_for(series.modality),
        overlay={"patient": person_name(view.patient_name), "patient_id": view.patient_id,
                 "deidentified": view.deidentified,
                 "study_date": view.study_date.isoformat() if view.study_date else None},
        frames=items,
    )


@bp.route("/<int:study_id>/instances/<int:instance_id>/frames/<int:n>.png")
def frame_png(study_id: int, instance_id: int, n: int):
    study, _mode = study_for(current_user, study_id)
    inst = db.session.scalar(
        sa.select(Instance).join(Series, Instance.series_id == Series.id)
        .where(Instance.id == instance_id, Series.study_id == study.id)
    )
    if inst is None or not 0 <= n < max(1, inst.frames or 1):
        abort(404)
    try:
        window = parse_window(request.args.get("wc"), request.args.get("ww"))
    except ValueError:
        return jsonify(error="wc and ww must be numbers, with ww > 0"), 400
    audit_series_read(study, inst.series_id, _mode, "frame")
    return _png_response(frame_renderer().frame(inst, n, window))


@bp.route("/<int:study_id>/series/<int:series_id>/thumbnail.png")
def series_thumbnail(study_id: int, series_id: int):
    study, _mode = study_for(current_user, study_id)
    series = _series_or_404(study, series_id)
    frames = ordered_frames(_instances(series))
    if not frames:
        abort(404)
    mid = frames[len(frames) // 2]
    audit_series_read(study, series.id, _mode, "thumbnail")
    return _png_response(frame_renderer().thumbnail(mid.instance, mid.frame))


def audit_series_read(study: Study, series_id: int, mode: str, via: str) -> None:
    """Record one `study.series_viewed` per series view, not one per frame.

    A frame or thumbnail of a series the user opened (frames.json) or fetched within
    AUDIT_SERIES_VIEW_MINUTES adds no entry; one fetched outside such a view records one.
    Through an API token the entry names the token (token_id), and only an entry of the same
    token (or, for the browser, of no token) covers later reads.
    """
    token = g.get("api_token")
    token_id = token.id if token is not None else None
    since = utcnow() - timedelta(minutes=current_app.config["AUDIT_SERIES_VIEW_MINUTES"])
    recent = db.session.scalars(
        sa.select(AuditEvent.details)
        .where(AuditEvent.object_type == Study.__tablename__,
               AuditEvent.object_id == str(study.id),
               AuditEvent.actor_id == current_user.id,
               AuditEvent.action == "study.series_viewed",
               AuditEvent.occurred_at >= since)
        .order_by(AuditEvent.seq.desc()).limit(100)
    )
    if any((d or {}).get("series_id") == series_id and (d or {}).get("token_id") == token_id
           for d in recent):
        return
    extra = {"token_id": token_id} if token_id is not None else {}
    audit.record("study.series_viewed", study, series_id=series_id, mode=mode, via=via,
                 **extra)
    db.session.commit()


def _png_response(result: Rendered):
    response = make_response(result.png)
    response.mimetype = "image/png"
    if result.error:
        response.headers["X-Frame-Error"] = result.error
        response.headers["Cache-Control"] = "no-store"
        return response
    # Patient images: the user's browser may keep them, shared caches never.
    max_age = current_app.config["FRAME_MAX_AGE"]
    response.headers["Cache-Control"] = f"private, max-age={max_age}"
    response.headers["X-Frame-Cache"] = "hit" if result.cached else "miss"
    response.set_etag(result.etag)
    return response.make_conditional(request)
