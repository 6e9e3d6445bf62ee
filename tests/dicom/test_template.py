"""A sample image as a template: each filled copy is a valid file with its own identity."""

from __future__ import annotations

import io

import pydicom
from pydicom.data import get_testdata_file

from qaportal.dicom.template import fill, fixed_length_uid, sample_template


def test_filled_copies_carry_their_own_identity_and_nothing_of_the_sample():
    path = get_testdata_file("CT_small.dcm")
    original = pydicom.dcmread(path)
    t = sample_template(path, modality="CT", body_part="CHEST",
                        description="CT CHEST W/O CONTRAST", series_description="AXIAL")
    uids = [fixed_length_uid() for _ in range(4)]
    assert len({len(u) for u in uids}) == 1 and len(set(uids)) == 4
    data = fill(t, study_uid=uids[0], series_uid=uids[1], sop_uid=uids[2], frame_uid=uids[3],
                patient_name="DEMO^ANNA", patient_id="DEMO0001", accession="ACC0001",
                date="20260314")
    ds = pydicom.dcmread(io.BytesIO(data))
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == tuple(uids[:3])
    assert ds.file_meta.MediaStorageSOPInstanceUID == uids[2]
    assert str(ds.PatientName) == "DEMO^ANNA" and ds.PatientID == "DEMO0001"
    assert ds.AccessionNumber == "ACC0001" and ds.StudyDate == "20260314"
    assert ds.BodyPartExamined == "CHEST" and ds.StudyDescription == "CT CHEST W/O CONTRAST"
    assert "InstitutionName" not in ds and "ReferringPhysicianName" not in ds
    assert str(original.PatientName) not in data.decode("latin-1")
    assert ds.pixel_array.shape == original.pixel_array.shape
    assert (t.rows, t.columns, t.frames) == (original.Rows, original.Columns, 1)
