"""The DICOM JSON model (PS3.18 F.2) for answers built from database rows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, time
from typing import Any

from flask import Response

DICOM_JSON = "application/dicom+json"


def element(vr: str, *values: Any) -> dict[str, Any]:
    """Return one attribute: {"vr": vr, "Value": [...]}, without Value when there is none."""
    kept = [v for v in values if v is not None and v != ""]
    if not kept:
        return {"vr": vr}
    if vr == "PN":
        kept = [v if isinstance(v, dict) else {"Alphabetic": str(v)} for v in kept]
    elif vr == "DA":
        kept = [v.strftime("%Y%m%d") if isinstance(v, date) else str(v) for v in kept]
    elif vr == "TM":
        kept = [v.strftime("%H%M%S") if isinstance(v, time) else str(v) for v in kept]
    return {"vr": vr, "Value": kept}


def tag(keyword_tag: int) -> str:
    """Return a tag as the model writes it: eight upper-case hex digits."""
    return f"{keyword_tag:08X}"


def response(datasets: Iterable[dict[str, Any]] | dict[str, Any], status: int = 200,
             **headers: str) -> Response:
    """Return a dicom+json response (a list of datasets, or one for STOW)."""
    body = datasets if isinstance(datasets, dict) else list(datasets)
    out = Response(json.dumps(body, separators=(",", ":")), status=status,
                   mimetype=DICOM_JSON)
    for name, value in headers.items():
        out.headers[name.replace("_", "-")] = value
    return out
