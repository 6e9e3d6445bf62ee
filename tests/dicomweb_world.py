"""The DICOMweb tests' world: a real study of six files in six syntaxes, and its callers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent, Instance, Series, Study
from qaportal.studies.storage import image_store
from tests.dicomweb_helpers import ingest, one_study_of

EVRLE = "1.2.840.10008.1.2.1"
JP2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
# A JPEG 2000, an RLE, a JPEG baseline (YBR) and a multi-frame RLE next to CT and MR.
SAMPLES = ["CT_small.dcm", "MR_small.dcm", "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm",
           "SC_rgb_jpeg_dcmtk.dcm", "emri_small_RLE.dcm"]
PATIENT = {"PatientName": "QUIXPAT^WADOSENTINEL", "PatientID": "QXWADO0042"}


@pytest.fixture
def world(app, login_as, tmp_path):
    """The signed-in owner's study of six real files in six syntaxes."""
    owner = login_as("radiologist")
    paths = one_study_of(SAMPLES, tmp_path / "in", **PATIENT)
    study = ingest(owner, paths)
    return {"owner": owner, "study": study, "paths": paths}


def empty_metadata_cache(app) -> None:
    """Forget the DICOM JSON headers cached at ingest (the next request reads the files)."""
    shutil.rmtree(Path(app.config["CACHE_ROOT"]) / "dicomjson", ignore_errors=True)


def instances_of(study: Study) -> list[Instance]:
    return list(db.session.scalars(
        sa.select(Instance).join(Series).where(Series.study_id == study.id)
        .order_by(Series.series_number)))


def series_of(study: Study, name: str) -> tuple[Series, Instance]:
    index = SAMPLES.index(name)
    inst = instances_of(study)[index]
    return inst.series, inst


def retrievals(study: Study) -> list[dict]:
    return [e.details for e in db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "study.retrieved",
                                    AuditEvent.object_id == str(study.id))
        .order_by(AuditEvent.seq))]


def corrupt(inst: Instance) -> None:
    """Flip a byte of the instance's stored file (its SHA-256 no longer matches)."""
    path = image_store().path(inst.storage_key)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def deid_caller(world, client, auth):
    """A colleague with a de-identified grant, signed in instead of the owner."""
    from qaportal.studies.access import grant_access
    from tests.factories import make_user

    colleague = make_user(roles=("radiologist",))
    grant_access(world["study"], colleague, mode="deidentified",
                 source=("opinion_request", 4242), by=world["owner"])
    db.session.commit()
    auth.logout()
    assert auth.login(colleague).status_code == 302
    return colleague


@pytest.fixture
def blind_caller(world, client, auth):
    """A peer reviewer of the study (a blind role), with a full grant, signed in."""
    from qaportal.models import OriginalRead, utcnow
    from tests.factories import make_assignment, make_user

    study = world["study"]
    read = OriginalRead(study_id=study.id, reader_id=world["owner"].id, report_text="ok",
                        finalized_at=utcnow(), entered_by_id=world["owner"].id)
    db.session.add(read)
    db.session.flush()
    reviewer = make_user(roles=("reviewer",))
    make_assignment(read, reviewer, deidentified=False)
    db.session.commit()
    auth.logout()
    assert auth.login(reviewer).status_code == 302
    return reviewer
