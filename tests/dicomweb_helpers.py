"""Helpers of the DICOMweb tests: real studies ingested, multipart answers parsed."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from qaportal.extensions import db
from qaportal.models import Study
from qaportal.studies import jobs
from tests.studyfiles import modified_copy

DICOM_ANY = 'multipart/related; type="application/dicom"; transfer-syntax=*'
DICOM_DEFAULT = 'multipart/related; type="application/dicom"'
OCTET = 'multipart/related; type="application/octet-stream"'


def ingest(owner, paths: list[Path]) -> Study:
    """Ingest real files for owner through the import job; return the (single) study."""
    run = jobs.import_files([(p.name, p) for p in paths], owner.id,
                            jobs.new_batch(owner, "cli").id)
    assert run.stored == len(paths), run.errors
    (study_id,) = run.study_ids
    return db.session.get(Study, study_id)


def one_study_of(names: list[str], folder: Path, **same) -> list[Path]:
    """Copy pydicom test files as one study: shared StudyInstanceUID and patient, each its
    own series and SOP instance (some samples share UIDs)."""
    study_uid = generate_uid()
    return [modified_copy(name, folder / f"{i:02d}-{name}", StudyInstanceUID=study_uid,
                          SeriesInstanceUID=generate_uid(), SOPInstanceUID=generate_uid(),
                          SeriesNumber=i + 1, **same)
            for i, name in enumerate(names)]


def parse_multipart(response) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart/related answer into (headers, body) parts; checks the framing."""
    ctype = response.headers["Content-Type"]
    assert ctype.startswith("multipart/related;"), ctype
    params = dict(p.strip().split("=", 1) for p in ctype.split(";")[1:])
    boundary = params["boundary"].strip('"').encode()
    data = response.get_data()
    assert data.startswith(b"--" + boundary + b"\r\n")
    assert data.endswith(b"\r\n--" + boundary + b"--\r\n"), "no closing delimiter"
    body = data[len(boundary) + 4 : -(len(boundary) + 8)]
    parts = []
    for raw in body.split(b"\r\n--" + boundary + b"\r\n"):
        head, _, content = raw.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("ascii").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, content))
    return parts


def datasets(response) -> list[pydicom.Dataset]:
    """Return the data sets of a multipart/related application/dicom answer."""
    return [pydicom.dcmread(io.BytesIO(body)) for _, body in parse_multipart(response)]


def zeroed(data: bytes) -> bytes:
    """Return a Part 10 file's bytes with the preamble zeroed, as served."""
    return bytes(128) + data[128:]
