"""DICOMweb (PS3.18) origin server under /dicomweb/: QIDO-RS, WADO-RS and STOW-RS.

The same access rules as the pages: a study the caller may not see answers 404, and a
study the caller holds de-identified or blind is served de-identified, under its remapped
UIDs (the mapping of the de-identified zip), everywhere in this API.
Callers are signed-in browsers (session cookie; STOW then needs the CSRF token in an
X-CSRFToken header) or machines with a personal API token (Authorization: Bearer).
"""

from flask import Blueprint

bp = Blueprint("dicomweb", __name__, url_prefix="/dicomweb")

from qaportal.dicomweb import (  # noqa: E402,F401
    errors,
    guard,
    qido,
    stow,
    wado,
    wado_frames,
    wado_rendered,
)
