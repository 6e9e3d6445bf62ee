"""The DICOM objects that carry a signed second opinion back to the requesting site.

For a signed opinion, or one of its signed addenda, `result_datasets` builds two instances
in the study the opinion is about (its StudyInstanceUID, patient and study values read from
one of the study's stored files, identified: the site owns the patient):

- an Encapsulated PDF of the identified case packet (the report that prints the signed
  opinion and its addenda), in a "Second opinion (PDF)" series;
- a Basic Text SR with the opinion's text (findings, impression, agreement with the original
  read, recommendations; the addendum's text for an addendum), the signer and the time of
  signing, COMPLETE and VERIFIED, listing the study's instances as evidence, in a
  "Second opinion (SR)" series.

UIDs are derived from the study, the request, the signed object and its time of signing,
so building the objects again (a resend) gives the same series and instance UIDs, and the
same PDF: the packet rendered the first time is recorded as a report export and reused.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from qaportal.dicom import header_dataset
from qaportal.extensions import db
from qaportal.feeds.result_sr import (
    BASIC_TEXT_SR,
    person_name,
    sr_content,
    validate_basic_text_sr,
)
from qaportal.models import Instance, OpinionAddendum, OpinionRequest, ReportExport, Series
from qaportal.studies.storage import image_store

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
# Who the PDF exports made for results are recorded as created by.
RESULT_EXPORT_LABEL = "DICOM result objects"
MANUFACTURER = "qaportal"
PDF_SERIES = (9901, "Second opinion (PDF)")
SR_SERIES = (9902, "Second opinion (SR)")
DOCUMENT_TITLE = {"opinion": "Second opinion", "addendum": "Second opinion addendum"}
# Name-based UUIDs (RFC 4122 version 5) in this namespace become "2.25." UIDs.
UID_NAMESPACE = uuid.UUID("4f1c2d8e-6b0a-5e53-9a61-0c7d3b2a9e10")

# Patient and study values copied from the stored file (Patient, General Study and Patient
# Study modules); the type 2 ones are present, empty when the file has none.
COPIED = ("PatientName", "PatientID", "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence",
          "PatientBirthDate", "PatientSex", "OtherPatientIDsSequence", "PatientAge",
          "PatientSize", "PatientWeight", "StudyInstanceUID", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber",
          "IssuerOfAccessionNumberSequence", "StudyDescription")
TYPE_2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
          "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")


class ResultError(RuntimeError):
    """The result objects cannot be built; the message names no patient data."""


def result_datasets(request: OpinionRequest,
                    addendum: OpinionAddendum | None = None) -> list[Dataset]:
    """Return [Encapsulated PDF, Basic Text SR] for the signed opinion or the signed addendum.

    Renders (the first time) and records the identified case packet as a report export;
    the caller commits. Raises ResultError when the opinion is not signed, the addendum is
    not this opinion's, or the study has no stored images to take the patient from.
    """
    opinion = request.opinion
    if opinion is None or not opinion.is_signed:
        raise ResultError(f"request #{request.id} has no signed opinion")
    if addendum is not None and addendum.opinion_id != opinion.id:
        raise ResultError(f"addendum #{addendum.id} is not an addendum of request #{request.id}")
    study = request.study
    header = study_header(study)
    signed = signed_object(request, addendum)
    pdf = case_packet_pdf(request, signed["key"])
    base = (study.study_uid, request.id, opinion.signed_at.isoformat())
    instance_number = 1 if addendum is None else 1 + _addendum_index(addendum)
    common = {"header": header, "signed_at": signed["signed_at"],
              "series_time": _as_utc(opinion.signed_at), "instance_number": instance_number}
    pdf_ds = _document(
        sop_class=ENCAPSULATED_PDF, modality="DOC", series=PDF_SERIES,
        series_uid=result_uid(*base, "pdf-series"),
        sop_uid=result_uid(*base, signed["key"], "pdf"), **common)
    _encapsulate(pdf_ds, pdf, DOCUMENT_TITLE[signed["kind"]])
    sr_ds = _document(
        sop_class=BASIC_TEXT_SR, modality="SR", series=SR_SERIES,
        series_uid=result_uid(*base, "sr-series"),
        sop_uid=result_uid(*base, signed["key"], "sr"), **common)
    _report(sr_ds, request, signed, evidence(study))
    validate_basic_text_sr(sr_ds)
    for ds in (pdf_ds, sr_ds):
        _choose_character_set(ds)
    return [pdf_ds, sr_ds]


def _texts(ds: Dataset):
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                yield from _texts(item)
        elif element.VR in ("PN", "LO", "SH", "ST", "LT", "UT", "UC") and element.value:
            values = element.value if element.VM > 1 else [element.value]
            yield from (str(v) for v in values)


def _choose_character_set(ds: Dataset) -> None:
    """Default repertoire when every text is ASCII, else UTF-8 (ISO_IR 192)."""
    if all(text.isascii() for text in _texts(ds)):
        del ds.SpecificCharacterSet
    else:
        ds.SpecificCharacterSet = "ISO_IR 192"


def result_uid(*parts: object) -> str:
    """Return a "2.25." UID derived from parts (the same parts give the same UID)."""
    name = "\x1f".join(str(p) for p in parts)
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, name).int}"


# --- what was signed ---------------------------------------------------------------------

def signed_object(request: OpinionRequest, addendum: OpinionAddendum | None) -> dict:
    """Return the signed object's kind, key, time, signer and text."""
    opinion = request.opinion
    source = addendum or opinion
    return {
        "kind": "addendum" if addendum is not None else "opinion",
        "key": f"addendum:{addendum.id}" if addendum is not None else "opinion",
        "signed_at": _as_utc(source.signed_at),
        "signer_name": source.signer_name or "",
        "signer_credentials": source.signer_credentials or "",
        "license": f"{source.license_jurisdiction} {source.license_number}",
        "opinion": opinion,
        "addendum": addendum,
    }


def _addendum_index(addendum: OpinionAddendum) -> int:
    ids = db.session.scalars(sa.select(OpinionAddendum.id)
                             .where(OpinionAddendum.opinion_id == addendum.opinion_id)
                             .order_by(OpinionAddendum.id)).all()
    return ids.index(addendum.id) + 1


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- the study: stored header and evidence -----------------------------------------------

def _study_instances(study) -> list[tuple[Instance, str]]:
    rows = db.session.execute(
        sa.select(Instance, Series.series_uid).join(Series, Instance.series_id == Series.id)
        .where(Series.study_id == study.id).order_by(Series.id, Instance.id)).all()
    return [(inst, series_uid) for inst, series_uid in rows]


def study_header(study) -> Dataset:
    """Return the header (no pixel data) of the study's smallest stored file, verified."""
    instances = _study_instances(study)
    if not instances:
        raise ResultError(f"study #{study.id} has no stored images to take the patient from")
    inst = min((i for i, _ in instances), key=lambda i: (i.size_bytes, i.id))
    data = image_store().read_verified(inst.storage_key, inst.sha256)
    header = header_dataset(data)
    if str(header.get("StudyInstanceUID", "")) != study.study_uid:
        raise ResultError(f"study #{study.id}: its stored file names another study")
    return header


def evidence(study) -> Sequence:
    """Return the Current Requested Procedure Evidence Sequence: the study's instances."""
    by_series: dict[str, list[Instance]] = {}
    for inst, series_uid in _study_instances(study):
        by_series.setdefault(series_uid, []).append(inst)
    series_items = []
    for series_uid, instances in by_series.items():
        refs = []
        for inst in instances:
            ref = Dataset()
            ref.ReferencedSOPClassUID = inst.sop_class_uid
            ref.ReferencedSOPInstanceUID = inst.sop_uid
            refs.append(ref)
        item = Dataset()
        item.SeriesInstanceUID = series_uid
        item.ReferencedSOPSequence = Sequence(refs)
        series_items.append(item)
    study_item = Dataset()
    study_item.StudyInstanceUID = study.study_uid
    study_item.ReferencedSeriesSequence = Sequence(series_items)
    return Sequence([study_item])


# --- the PDF -----------------------------------------------------------------------------

def case_packet_pdf(request: OpinionRequest, key: str) -> bytes:
    """Return the identified case packet made for this signed object (rendered once)."""
    from qaportal.reports import storage
    from qaportal.reports.service import create_export

    exports = db.session.scalars(
        sa.select(ReportExport).where(ReportExport.kind == "case",
                                      ReportExport.created_by_label == RESULT_EXPORT_LABEL)
        .order_by(ReportExport.id)).all()
    for export in exports:
        params = export.parameters or {}
        if params.get("request") == request.id and params.get("result_for") == key:
            return storage.read_verified(export.storage_key, export.sha256)
    params = {"request": request.id, "deidentified": False, "result_for": key}
    _export, pdf = create_export("case", params, None, label=RESULT_EXPORT_LABEL)
    return pdf.data


# --- building the instances --------------------------------------------------------------

def _da_tm(value: datetime) -> tuple[str, str]:
    return value.strftime("%Y%m%d"), value.strftime("%H%M%S")


def _document(*, header: Dataset, sop_class: str, modality: str, series: tuple[int, str],
              series_uid: str, sop_uid: str, signed_at: datetime, series_time: datetime,
              instance_number: int) -> Dataset:
    """Return the modules both objects share: patient, study, series, equipment, SOP."""
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword in COPIED:
        if keyword in header:
            ds[keyword] = header[keyword]
        elif keyword in TYPE_2:
            setattr(ds, keyword, "")
    now = datetime.now(UTC)
    ds.InstanceCreationDate, ds.InstanceCreationTime = _da_tm(now)
    ds.TimezoneOffsetFromUTC = "+0000"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber, ds.SeriesDescription = series
    ds.SeriesDate, ds.SeriesTime = _da_tm(series_time)
    ds.Manufacturer = MANUFACTURER
    ds.InstanceNumber = instance_number
    ds.ContentDate, ds.ContentTime = _da_tm(signed_at)
    return ds


def _encapsulate(ds: Dataset, pdf: bytes, title: str) -> None:
    """Add the SC Equipment and Encapsulated Document modules."""
    ds.ConversionType = "WSD"  # workstation
    ds.BurnedInAnnotation = "YES"  # the packet names the patient
    ds.AcquisitionDateTime = ""
    ds.DocumentTitle = title
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "18748-4", "LN"
    code.CodeMeaning = "Diagnostic Imaging Report"
    ds.ConceptNameCodeSequence = Sequence([code])
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")


def _report(ds: Dataset, request: OpinionRequest, signed: dict, evidence_seq: Sequence) -> None:
    """Add the SR Document General and SR Document Content modules."""
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED"
    ds.PreliminaryFlag = "FINAL"
    observer = Dataset()
    observer.VerifyingObserverName = person_name(signed["signer_name"])
    observer.VerifyingObserverIdentificationCodeSequence = Sequence()
    observer.VerifyingOrganization = MANUFACTURER
    observer.VerificationDateTime = signed["signed_at"].strftime("%Y%m%d%H%M%S+0000")
    ds.VerifyingObserverSequence = Sequence([observer])
    ds.PerformedProcedureCodeSequence = Sequence()
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.CurrentRequestedProcedureEvidenceSequence = evidence_seq
    for tag, element in sr_content(request, signed).items():
        ds[tag] = element


def part10_bytes(ds: Dataset) -> bytes:
    """Return the instance as a DICOM Part 10 file (preamble, meta, Explicit VR LE)."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
