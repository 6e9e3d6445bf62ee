"""Viewer marks read from real highdicom objects built on pydicom's real images; malformed
documents refused with a reason; marks drawn on the rendered frame."""

from __future__ import annotations

import io

import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from qaportal.dicom.marks import MarksError, is_marks_class, read_marks
from qaportal.dicom.marks_draw import MARK_COLOUR, render_marked
from tests.marks_objects import (
    AREA_MM2,
    LENGTH_MM,
    key_object_selection,
    measurement_report,
    to_bytes,
)


@pytest.fixture
def images():
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    mr.StudyInstanceUID = ct.StudyInstanceUID  # one study, two images
    return [ct, mr]


def test_measurement_report_length_ellipse_point_and_3d(images):
    sr = measurement_report(images, with_3d=True)
    doc = read_marks(to_bytes(sr))
    assert (doc.kind, doc.title) == ("sr", "Imaging Measurement Report")
    assert doc.study_uid == images[0].StudyInstanceUID and doc.sop_uid == sr.SOPInstanceUID
    length, ellipse, point, apex = doc.measurements
    assert (length.label, length.concept, length.value, length.unit) == (
        "Lesion 1", "Length", LENGTH_MM, "mm")
    assert length.finding_site == "Lung"
    assert (length.graphic_type, length.points) == ("POLYLINE", [[20.0, 30.0], [60.0, 50.0]])
    assert length.sop_uid == images[0].SOPInstanceUID and length.coordinates == "2D"
    assert (ellipse.concept, ellipse.value, ellipse.unit, ellipse.graphic_type) == (
        "Area", AREA_MM2, "mm2", "ELLIPSE")
    assert len(ellipse.points) == 4
    assert (point.label, point.value, point.graphic_type, point.sop_uid) == (
        "Calcification", None, "POINT", images[1].SOPInstanceUID)
    assert apex.coordinates == "3D" and apex.points == [[1.0, 2.0, 3.0]]
    assert apex.frame_of_reference_uid == images[0].FrameOfReferenceUID
    assert apex.sop_uid is None
    assert {k.sop_uid for k in doc.key_images} == {i.SOPInstanceUID for i in images}
    assert is_marks_class(sr.SOPClassUID)


def test_key_object_selection(images):
    kos = key_object_selection(images)
    doc = read_marks(to_bytes(kos))
    assert (doc.kind, doc.title) == ("kos", "Of Interest")
    assert [k.sop_uid for k in doc.key_images] == [i.SOPInstanceUID for i in images]
    assert doc.measurements == []


def _first_region(sr):
    group = next(i for i in sr.ContentSequence if i.ValueType == "CONTAINER")
    first = group.ContentSequence[0]
    return next(i for i in first.ContentSequence if i.ValueType == "SCOORD")


@pytest.mark.parametrize("spoil, reason", [
    (lambda sr: setattr(_first_region(sr), "GraphicData", [1.0, 2.0, 3.0]),
     "not 2-D points"),
    (lambda sr: setattr(_first_region(sr), "GraphicType", "SPLINE"),
     "unknown graphic type"),
    (lambda sr: setattr(_first_region(sr), "ContentSequence", []), "references no image"),
    (lambda sr: delattr(sr, "ContentSequence"), "no content"),
])
def test_malformed_reports_are_refused_with_a_reason(images, spoil, reason):
    sr = measurement_report(images)
    spoil(sr)
    with pytest.raises(MarksError, match=reason):
        read_marks(to_bytes(sr))


def test_an_image_or_garbage_is_not_a_report():
    with pytest.raises(MarksError, match="not a structured report"):
        read_marks(open(get_testdata_file("CT_small.dcm"), "rb").read())
    with pytest.raises(MarksError, match="not a readable DICOM file"):
        read_marks(b"not dicom at all" * 20)


def test_a_report_without_measurement_groups_is_refused(images):
    sr = measurement_report(images)
    group = next(i for i in sr.ContentSequence if i.ValueType == "CONTAINER")
    group.ContentSequence = []
    with pytest.raises(MarksError, match="no measurement group"):
        read_marks(to_bytes(sr))


def test_marks_are_drawn_on_the_frame():
    path = get_testdata_file("CT_small.dcm")
    plain = Image.open(io.BytesIO(render_marked(path, 0, [], size=128))).convert("RGB")
    marked = Image.open(io.BytesIO(render_marked(path, 0, [
        {"graphic_type": "POLYLINE", "points": [[10.0, 64.0], [118.0, 64.0]]},
        {"graphic_type": "ELLIPSE", "points": [[30, 20], [90, 20], [60, 10], [60, 30]]},
        {"graphic_type": "POINT", "points": [[100.0, 100.0]]}], size=128))).convert("RGB")
    assert marked.size == plain.size == (128, 128)
    assert marked.getpixel((64, 64)) == MARK_COLOUR  # on the line
    assert marked.getpixel((100, 100)) == MARK_COLOUR  # the point's cross
    assert marked.getpixel((60, 10)) == MARK_COLOUR  # the ellipse's minor axis end
    assert plain.getpixel((64, 64)) != MARK_COLOUR
