"""The viewer-marks tests' world: a real generated CT study of a requester, a consultant
working on its opinion, and STOW-RS of highdicom documents made from the images."""

from __future__ import annotations

import pydicom
import pytest
import sqlalchemy as sa

from qaportal.dicom import generate_ct_series
from qaportal.extensions import db
from qaportal.models import Instance, Series, Study, User
from qaportal.opinions import service
from qaportal.studies import jobs
from qaportal.studies import service as study_service
from qaportal.studies.storage import image_store
from tests.factories import make_certification, make_user
from tests.marks_objects import to_bytes

PATIENT = ("MARKSPATIENT^QUOKKA", "PIDMARKS771")
BOUNDARY = "marksBoundary0123456789"
CT = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def ingest_ct(owner: User, folder, slices: int = 4) -> Study:
    generate_ct_series(folder, slices=slices, patient=PATIENT)
    jobs.import_files([folder], owner.id, jobs.new_batch(owner, "cli").id)
    study = db.session.scalars(sa.select(Study).where(Study.owner_id == owner.id)
                               .order_by(Study.id.desc())).first()
    study.jurisdiction = "CA"
    study_service.set_original_read(study, by=owner, reader=owner, finalized_at=None,
                                    report_text="Indeterminate nodule.")
    db.session.commit()
    return study


def stored_datasets(study: Study) -> list[pydicom.Dataset]:
    """The study's stored images as data sets (what a full-access viewer is served)."""
    rows = db.session.scalars(sa.select(Instance).join(Series).where(
        Series.study_id == study.id).order_by(Instance.instance_number)).all()
    return [pydicom.dcmread(image_store().path(i.storage_key)) for i in rows]


def stow(client, *docs: pydicom.Dataset, context: str | None = None, url="/dicomweb/studies"):
    body = b"".join(f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                    + to_bytes(d) + b"\r\n" for d in docs) + f"--{BOUNDARY}--\r\n".encode()
    headers = {"Content-Type": CT, "Accept": "application/dicom+json"}
    if context is not None:
        headers["X-QAPortal-Context"] = context
    return client.post(url, data=body, headers=headers)


@pytest.fixture
def opinion_case(app, tmp_path):
    """A requester's study (real CT), a consultant who accepted the named request."""
    requester = make_user(licenses=["CA"], full_name="Dr Rhea Requester")
    consultant = make_user(subspecialties=["body"], licenses=["CA"],
                           full_name="Dr Cyrus Consultant")
    make_certification(consultant)
    db.session.commit()
    study = ingest_ct(requester, tmp_path / "ct")
    req = service.create_request(study, requester, priority="routine",
                                 question="Is the nodule solid?", colleague=consultant)
    service.accept(req, consultant)
    db.session.commit()
    return {"requester": requester, "consultant": consultant, "req": req, "study": study}


def make_mark(author: User, instance: Instance, *, assignment=None, request=None,
              label: str = "Nodule"):
    """A viewer mark on an open assignment or request, as linking writes it: a length
    drawn on the instance, which is also its key image (for the route walks)."""
    from qaportal.models import ViewerMark

    mark = ViewerMark(
        review_assignment_id=assignment.id if assignment is not None else None,
        opinion_request_id=request.id if request is not None else None,
        instance_id=instance.id, kind="sr", title="Imaging Measurement Report",
        author_id=author.id, key_images=[{"image_id": instance.id, "frame": None}],
        measurements=[{"label": label, "concept": "Length", "value": 12.0, "unit": "mm",
                       "graphic_type": "POLYLINE", "points": [[10, 10], [40, 30]],
                       "coordinates": "2D", "image_id": instance.id, "frame": None}])
    db.session.add(mark)
    db.session.flush()
    return mark
