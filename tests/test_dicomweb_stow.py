"""STOW-RS: POST studies and studies/{study} through the upload's ingest."""

from __future__ import annotations

import pytest

from qaportal.extensions import db
from tests.studyfiles import sample

BOUNDARY = "stowBoundary0123456789"
CT = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def related(parts, boundary=BOUNDARY, close=True) -> bytes:
    """Return a multipart/related body: parts are bytes (application/dicom) or (type, bytes)."""
    out = []
    for part in parts:
        ctype, data = part if isinstance(part, tuple) else ("application/dicom", part)
        out.append(f"--{boundary}\r\nContent-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n")
    if close:
        out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def test_smoke(app, client, login_as):
    login_as("radiologist")
    app.config["WTF_CSRF_ENABLED"] = False
    r = client.post("/dicomweb/studies", data=related([sample("CT_small.dcm").read_bytes(),
                                                      b"junk"]),
                    headers={"Content-Type": CT, "Accept": "application/dicom+json"})
    print(r.status_code, r.get_json())
    assert r.status_code == 202
