"""/viewer/ohif/: OHIF's build, its generated app-config.js, and the viewer's pages.

Everything here needs sign-in (the portal's default-deny hook). The pages (any path that is
not a file of the build: OHIF routes in the browser) are one index.html; when the URL
names studies (?StudyInstanceUIDs=), each must be one the user's DICOMweb serves under
that UID (qaportal.dicomweb.access.find_study: 404 otherwise, and a blind reviewer reaches
a study only under its remapped UID) and each opening is audited.
"""

from __future__ import annotations

from flask import abort, g, make_response, redirect, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from markupsafe import escape

from qaportal import audit
from qaportal.dicomweb.access import find_study
from qaportal.extensions import db
from qaportal.hooks import CSP
from qaportal.ohif import assets, bp, config, static
from qaportal.ohif.assets import HIDDEN, META_SLOT, BuildError
from qaportal.ohif.links import CONTEXT_RE

# What OHIF needs beyond the portal's CSP (qaportal.hooks.CSP), on this path only, each
# shown needed by tests/e2e/test_ohif_e2e.py (a violation without it):
# - style-src: the three <style> elements its UI inserts, by hash (no 'unsafe-inline');
# - its image decoders (JPEG 2000, ...) are WebAssembly built with Emscripten's embind,
#   which also compiles code with new Function(): 'unsafe-eval' (which covers WebAssembly
#   too), to the decoder workers' scripts only (WORKER_RELAXED). A worker takes its CSP from
#   its own script's response, so the page and what it runs get neither; the browser marks
#   those fetches Sec-Fetch-Dest: worker (a header page scripts cannot set). The workers load
#   from this origin: no blob: needed.
# Everything else stays as strict as the rest of the portal (connect-src 'self').
RELAXED: dict[str, tuple[str, ...]] = {
    "style-src": ("'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
                  "'sha256-Od9mHMH7x2G6QuoV3hsPkDCwIyqbg2DX3F5nLeCYQBc='",
                  "'sha256-vGQdhYJbTuF+M8iCn1IZCHpdkiICocWHDq4qnQF4Rjw='"),
}
WORKER_RELAXED: dict[str, tuple[str, ...]] = {"script-src": ("'unsafe-eval'",)}


def csp(relaxed: dict[str, tuple[str, ...]] | None = None) -> str:
    """The portal's CSP with OHIF's additions (RELAXED) and nothing else changed."""
    relaxed = RELAXED if relaxed is None else relaxed
    directives: dict[str, list[str]] = {}
    for part in CSP.split(";"):
        name, *values = part.split()
        directives[name] = values
    for name, extra in relaxed.items():
        values = directives.setdefault(name, [])
        values.extend(v for v in extra if v not in values)
    return "; ".join(" ".join([name, *values]) for name, values in directives.items())


@bp.after_request
def viewer_csp(response):
    relaxed = dict(RELAXED)
    if request.headers.get("Sec-Fetch-Dest") == "worker" and g.get("ohif_script"):
        for name, extra in WORKER_RELAXED.items():
            relaxed[name] = (*relaxed.get(name, ()), *extra)
    response.headers["Content-Security-Policy"] = csp(relaxed)
    return response


def _studies_asked() -> list[str]:
    uids: list[str] = []
    for key in request.args:
        if key.lower() == "studyinstanceuids":
            for value in request.args.getlist(key):
                uids.extend(u.strip() for u in value.split(",") if u.strip())
    return uids


@bp.route("/")
def index():
    """No study list here: studies are opened from the portal's pages."""
    return redirect(url_for("home.index"))


@bp.route("/app-config.js")
def app_config():
    base = bp.url_prefix
    body = config.render(base, url_for("dicomweb.search_studies").rsplit("/studies", 1)[0])
    response = make_response(body)
    response.mimetype = "text/javascript"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/<path:path>")
def serve(path: str):
    parts = path.split("/")
    if parts[0] in HIDDEN or ".." in parts or "" in parts[:-1]:
        abort(404)
    dist = assets.dist_dir()
    if (dist / path).is_file():
        g.ohif_script = path.endswith(".js")  # a script of the build (a worker's, perhaps)
        return static.send(dist, path, request.headers.get("Accept-Encoding", ""))
    if "." in path.rsplit("/", 1)[-1]:
        abort(404)  # a file the build does not have
    return page()


def page():
    """OHIF's index.html for one of its routes, after the access check of each study."""
    uids = _studies_asked()
    targets = [find_study(current_user, uid) for uid in uids]  # 404 on any unseen one
    try:
        html = assets.index_template(bp.url_prefix + "/", url_for("ohif.app_config"))
    except BuildError as exc:
        response = make_response(f"The OHIF viewer is not available: {escape(str(exc))}. "
                                 "The portal's own viewer works.", 503)
        response.mimetype = "text/plain"
        return response
    for target in targets:
        audit.record("study.viewed", target.study, mode=target.mode, page="ohif",
                     deidentified=target.deidentified)
    db.session.commit()
    metas = "".join(
        f'<meta name="{escape(meta)}" content="{escape(_meta_value(meta))}">'
        for meta in config.WRITE_HEADERS.values())
    response = make_response(html.replace(META_SLOT, metas, 1))
    response.headers["Cache-Control"] = "no-store"
    return response


def _meta_value(name: str) -> str:
    if name == "csrf-token":
        return generate_csrf()
    if name == "qaportal-context":  # the draft the viewer's saved marks belong to
        context = request.args.get("qaportal_context", "")
        return context if CONTEXT_RE.fullmatch(context) else ""
    return ""
