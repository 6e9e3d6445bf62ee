"""Real viewer marks made with highdicom: a TID 1500 measurement report (a length, an
ellipse with its area, a point) and a key object selection, from real image data sets."""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

LENGTH_MM = 23.4
AREA_MM2 = 151.0


def _ref(ds: pydicom.Dataset, frame: int | None = None) -> hd.sr.SourceImageForRegion:
    return hd.sr.SourceImageForRegion(
        referenced_sop_class_uid=ds.SOPClassUID, referenced_sop_instance_uid=ds.SOPInstanceUID,
        referenced_frame_numbers=[frame] if frame else None)


def _group(label: str, region: hd.sr.ImageRegion, measurements, site=None):
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=label),
        referenced_region=region, finding_type=codes.SCT.Lesion,
        measurements=measurements,
        finding_sites=[hd.sr.FindingSite(anatomic_location=site)] if site else None)


def measurement_report(images: list[pydicom.Dataset], *, with_3d: bool = False,
                       author: str = "Reader^Marks") -> pydicom.Dataset:
    """A Comprehensive 3D SR: on images[0] a length (2-point POLYLINE) and an ellipse with
    its area; on images[-1] a point; optionally a 3D point in the images' frame of reference."""
    first, last = images[0], images[-1]
    length = _group("Lesion 1", hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=np.array([[20.0, 30.0], [60.0, 50.0]]), source_image=_ref(first)),
        [hd.sr.Measurement(name=codes.SCT.Length, value=LENGTH_MM,
                           unit=codes.UCUM.Millimeter)], site=codes.SCT.Lung)
    ellipse = _group("Nodule A", hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.ELLIPSE,
        graphic_data=np.array([[30.0, 40.0], [70.0, 40.0], [50.0, 30.0], [50.0, 50.0]]),
        source_image=_ref(first)),
        [hd.sr.Measurement(name=codes.SCT.Area, value=AREA_MM2,
                           unit=codes.UCUM.SquareMillimeter)])
    point = _group("Calcification", hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POINT, graphic_data=np.array([[40.0, 45.0]]),
        source_image=_ref(last)), None)
    groups = [length, ellipse, point]
    if with_3d:
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="Apex"),
            referenced_region=hd.sr.ImageRegion3D(
                graphic_type=hd.sr.GraphicTypeValues3D.POINT,
                graphic_data=np.array([[1.0, 2.0, 3.0]]),
                frame_of_reference_uid=first.FrameOfReferenceUID),
            finding_type=codes.SCT.Lesion))
    return report_document(images, groups, series_number=901, author=author)


def report_document(images: list[pydicom.Dataset], groups: list, *, series_number: int,
                    author: str = "Reader^Marks") -> pydicom.Dataset:
    """A Comprehensive 3D SR measurement report (TID 1500) of the measurement groups, by a
    person observer, with the images as its evidence."""
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=author))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion, imaging_measurements=groups)
    return hd.sr.Comprehensive3DSR(
        evidence=images, content=report[0], series_instance_uid=hd.UID(),
        series_number=series_number, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="qaportal tests")


def key_object_selection(images: list[pydicom.Dataset]) -> pydicom.Dataset:
    """A KOS titled "Of Interest" selecting the images."""
    content = hd.ko.KeyObjectSelection(
        document_title=codes.DCM.OfInterest,
        referenced_objects=images)
    return hd.ko.KeyObjectSelectionDocument(
        evidence=images, content=content, series_instance_uid=hd.UID(), series_number=902,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="qaportal tests")


def to_bytes(ds: pydicom.Dataset) -> bytes:
    """The data set as a Part 10 file."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
