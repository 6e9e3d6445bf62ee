"""3D marks (SCOORD3D) from a viewer's multiplanar views: a mark whose points lie on an
acquired image's plane is placed on that image (listed by series and image, drawn on its
key image); a mark across the slices stays 3D and is listed, not drawn. Also for a blind
reviewer, whose document carries the remapped frame of reference."""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import pydicom
import pytest
import sqlalchemy as sa
from PIL import Image, ImageChops
from pydicom.sr.codedict import codes

from qaportal.dicom.marks_draw import render_marked
from qaportal.dicomweb.access import deid_context
from qaportal.dicomweb.served import Item
from qaportal.extensions import db
from qaportal.marks.planes import place, planes_of, tighten
from qaportal.models import Instance, Series, ViewerMark, utcnow
from qaportal.studies.storage import image_store
from tests.dicomweb_helpers import DICOM_ANY, datasets
from tests.factories import make_assignment, make_user
from tests.marks_objects import report_document
from tests.marks_world import ingest_ct, stored_datasets, stow


def _patient(ds: pydicom.Dataset, x: float, y: float) -> list[float]:
    """The patient coordinates (mm) of pixel position (x, y) (SCOORD convention)."""
    origin = np.array([float(v) for v in ds.ImagePositionPatient])
    cosines = [float(v) for v in ds.ImageOrientationPatient]
    rows, cols = (float(v) for v in ds.PixelSpacing)
    point = (origin + np.array(cosines[:3]) * (x - 0.5) * cols
             + np.array(cosines[3:]) * (y - 0.5) * rows)
    return [round(float(v), 4) for v in point]


def _report(images: list[pydicom.Dataset], groups: list[tuple[str, list[list[float]]]]):
    """A Comprehensive 3D SR with one length per (label, 3D points) group."""
    items = [hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=label),
        referenced_region=hd.sr.ImageRegion3D(
            graphic_type=hd.sr.GraphicTypeValues3D.POLYLINE,
            graphic_data=np.array(points),
            frame_of_reference_uid=images[0].FrameOfReferenceUID),
        finding_type=codes.SCT.Lesion,
        measurements=[hd.sr.Measurement(name=codes.SCT.Length, value=31.5,
                                        unit=codes.UCUM.Millimeter)])
        for label, points in groups]
    return report_document(images, items, series_number=903)


def _axial_and_across(images):
    third = images[2]
    on_plane = [_patient(third, 20.0, 30.0), _patient(third, 60.0, 50.0)]
    across = [_patient(images[0], 40.0, 40.0), _patient(images[-1], 40.0, 40.0)]
    return third, on_plane, across


def _drawn(inst: Instance, png: bytes) -> int:
    """How many pixels of the key image differ from the same frame rendered unmarked."""
    plain = render_marked(image_store().read_verified(inst.storage_key, inst.sha256), 0, [],
                          256)
    a = Image.open(io.BytesIO(png)).convert("RGB")
    b = Image.open(io.BytesIO(plain)).convert("RGB")
    return int((np.asarray(ImageChops.difference(a, b).convert("L")) > 40).sum())


def test_a_3d_length_on_an_axial_slice_is_placed_drawn_and_listed(client, auth,
                                                                  opinion_case):
    c, req, study = opinion_case, opinion_case["req"], opinion_case["study"]
    images = stored_datasets(study)
    third, on_plane, across = _axial_and_across(images)
    auth.login(c["consultant"])
    r = stow(client, _report(images, [("Axial length", on_plane), ("Oblique", across)]))
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["X-QAPortal-Marks-Linked"] == f"opinion-request:{req.id}"
    mark = db.session.scalars(sa.select(ViewerMark)).one()
    inst = db.session.scalars(sa.select(Instance).where(
        Instance.sop_uid == third.SOPInstanceUID)).one()
    placed, oblique = mark.measurements
    assert placed["coordinates"] == "3D" and placed["image_id"] == inst.id
    assert np.allclose(placed["image_points"], [[20.0, 30.0], [60.0, 50.0]], atol=0.01)
    assert oblique["image_id"] is None and "image_points" not in oblique
    assert mark.key_images == [{"image_id": inst.id, "frame": None}]
    page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert "Series 1 · image 3 (3D mark, on this image&#39;s plane)" in page
    assert "3D, on a reformatted plane (not drawn)" in page
    png = client.get(f"/marks/{mark.id}/key-images/0.png")
    assert png.status_code == 200
    assert _drawn(inst, png.data) > 30


def test_a_blind_reviewers_3d_mark_is_placed_through_the_remapped_frame(app, client, auth,
                                                                       tmp_path):
    reader = make_user(["radiologist"])
    db.session.commit()
    study = ingest_ct(reader, tmp_path / "ct")
    study.read.finalized_at = utcnow()
    reviewer = make_user(["reviewer"])
    assignment = make_assignment(study.read, reviewer, deidentified=True)
    db.session.commit()
    auth.login(reviewer)
    served_uid = deid_context(study).new_uid_for(study.study_uid)
    got = client.get(f"/dicomweb/studies/{served_uid}", headers={"Accept": DICOM_ANY})
    served = sorted(datasets(got), key=lambda d: int(d.InstanceNumber))
    original_for = stored_datasets(study)[0].FrameOfReferenceUID
    assert served[0].FrameOfReferenceUID != original_for
    third, on_plane, _ = _axial_and_across(served)
    r = stow(client, _report(served, [("Axial length", on_plane)]),
             context=f"review-assignment:{assignment.id}")
    assert r.status_code == 200, r.get_data(as_text=True)
    mark = db.session.scalars(sa.select(ViewerMark)).one()
    by_number = {i.instance_number: i.id for i in db.session.scalars(
        sa.select(Instance).join(Series).where(Series.study_id == study.id))}
    assert mark.measurements[0]["image_id"] == by_number[int(third.InstanceNumber)]
    assert mark.key_images == [{"image_id": by_number[3], "frame": None}]
    assert original_for not in str(mark.measurements)
    page = client.get(f"/reviews/{assignment.id}").get_data(as_text=True)
    assert "(3D mark, on this image&#39;s plane)" in page


def _header(position, orientation=(1, 0, 0, 0, 1, 0), spacing=(0.5, 0.5), thickness=None,
            frame_of_reference="1.2.3"):
    header = {"00200052": {"vr": "UI", "Value": [frame_of_reference]},
              "00200032": {"vr": "DS", "Value": list(position)},
              "00200037": {"vr": "DS", "Value": list(orientation)},
              "00280030": {"vr": "DS", "Value": list(spacing)}}
    if thickness is not None:
        header["00180050"] = {"vr": "DS", "Value": [thickness]}
    return header


def _item(n: int) -> Item:
    return Item(n, 1, f"k{n}", "0" * 64, 1, "1.2.840.10008.1.2.1", "1", "2", f"3.{n}")


def test_place_picks_the_plane_holding_every_point_within_half_the_thickness():
    planes = [p for n, z in enumerate((0.0, 2.0, 4.0), 1)
              for p in planes_of(_item(n), _header((-10.0, -20.0, z), thickness=1.0))]
    got = place([[-10.0, -20.0, 2.4], [0.0, -15.0, 1.7]], "1.2.3", planes)
    assert got is not None and got.image_id == 2 and got.frame is None
    assert got.points == [[0.5, 0.5], [20.5, 10.5]]
    # Across slices, another frame of reference, beyond half the thickness: not placed.
    assert place([[0, 0, 0.0], [0, 0, 4.0]], "1.2.3", planes) is None
    assert place([[-10.0, -20.0, 2.0]], "9.9", planes) is None
    assert place([[-10.0, -20.0, 3.0]], "1.2.3", planes) is None
    # No thickness: within half a millimetre.
    thin = planes_of(_item(7), _header((0.0, 0.0, 0.0)))
    assert place([[1.0, 1.0, 0.4]], "1.2.3", thin) is not None
    assert place([[1.0, 1.0, 0.6]], "1.2.3", thin) is None


def test_place_on_a_sagittal_image_maps_rows_and_columns():
    # Rows run along +y (anterior to posterior), columns down -z (head to feet).
    plane = planes_of(_item(1), _header((5.0, 0.0, 100.0), orientation=(0, 1, 0, 0, 0, -1),
                                        spacing=(2.0, 0.5)))
    got = place([[5.0, 10.0, 80.0]], "1.2.3", plane)
    assert got is not None and got.points == [[20.5, 10.5]]


def test_enhanced_multiframe_planes_come_from_the_functional_groups():
    def frame(z):
        return {"00209113": {"vr": "SQ", "Value": [
            {"00200032": {"vr": "DS", "Value": [0.0, 0.0, z]}}]}}
    header = {"00200052": {"vr": "UI", "Value": ["1.2.3"]},
              "52009229": {"vr": "SQ", "Value": [{
                  "00209116": {"vr": "SQ", "Value": [
                      {"00200037": {"vr": "DS", "Value": [1, 0, 0, 0, 1, 0]}}]},
                  "00289110": {"vr": "SQ", "Value": [
                      {"00280030": {"vr": "DS", "Value": [1.0, 1.0]},
                       "00180050": {"vr": "DS", "Value": [1.0]}}]}}]},
              "52009230": {"vr": "SQ", "Value": [frame(0.0), frame(1.0), frame(2.0)]}}
    planes = planes_of(_item(4), header)
    assert [p.frame for p in planes] == [1, 2, 3]
    got = place([[3.0, 4.0, 1.1]], "1.2.3", planes)
    assert got is not None and (got.image_id, got.frame) == (4, 2)


def test_overlapping_slices_hold_a_point_only_within_half_their_spacing():
    # 5 mm slices every 1 mm (as the generated CT): the nearest slice, not any of five.
    planes = tighten([p for n, z in enumerate((0.0, 1.0, 2.0, 3.0), 1)
                      for p in planes_of(_item(n), _header((0.0, 0.0, z), thickness=5.0))])
    assert [p.half_thickness for p in planes] == [0.5] * 4
    assert place([[1.0, 1.0, 1.2], [2.0, 2.0, 0.9]], "1.2.3", planes).image_id == 2
    assert place([[1.0, 1.0, 0.0], [2.0, 2.0, 3.0]], "1.2.3", planes) is None
    # A lone slice keeps half its thickness; another orientation is another stack.
    lone = tighten(planes_of(_item(9), _header((0.0, 0.0, 0.0), thickness=5.0))
                   + planes_of(_item(10), _header((0.0, 0.0, 1.0), thickness=5.0,
                                                  orientation=(0, 1, 0, 0, 0, -1))))
    assert [p.half_thickness for p in lone] == [2.5, 2.5]


@pytest.mark.parametrize("broken", [
    {"00200037": {"vr": "DS", "Value": [0, 0, 0, 0, 0, 0]}},
    {"00280030": {"vr": "DS", "Value": [0.0, 0.5]}},
    {"00200032": {"vr": "DS", "Value": [1.0, "x", 2.0]}},
    {"00200052": {"vr": "UI"}},
])
def test_an_image_without_usable_geometry_gives_no_plane(broken):
    header = {**_header((0.0, 0.0, 0.0)), **broken}
    assert planes_of(_item(1), header) == []
