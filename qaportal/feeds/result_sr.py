"""The Basic Text SR of a signed second opinion: its content tree and its IOD rules.

The content items are built with highdicom (which checks each item's value type, concept
name code and relationship on construction); `validate_basic_text_sr` then checks the
whole instance against the Basic Text SR IOD: the required attributes of its modules, the
value types the IOD allows and the relationship constraints between them.
"""

from __future__ import annotations

from highdicom.sr import (
    CodeContentItem,
    ContainerContentItem,
    ContentSequence,
    PnameContentItem,
    TextContentItem,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from qaportal.models.opinion import AGREEMENT_LABELS, COVERAGE_LABELS

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"

CONTAINS, OBS_CONTEXT = "CONTAINS", "HAS OBS CONTEXT"
# Value types a Basic Text SR may hold, and what each relationship may point to.
LEAF_TYPES = {"TEXT", "CODE", "DATETIME", "DATE", "TIME", "UIDREF", "PNAME", "COMPOSITE"}
BASIC_TEXT_TYPES = LEAF_TYPES | {"IMAGE", "WAVEFORM", "CONTAINER"}
ALLOWED = {
    ("CONTAINER", "CONTAINS"): BASIC_TEXT_TYPES,
    ("*", "HAS OBS CONTEXT"): LEAF_TYPES,
    ("CONTAINER", "HAS ACQ CONTEXT"): LEAF_TYPES,
    ("*", "HAS CONCEPT MOD"): {"TEXT", "CODE"},
    ("LEAF", "INFERRED FROM"): BASIC_TEXT_TYPES - {"CONTAINER"},
}
VALUE_ATTRIBUTE = {"TEXT": "TextValue", "PNAME": "PersonName", "CODE": "ConceptCodeSequence",
                   "DATETIME": "DateTime", "DATE": "Date", "TIME": "Time", "UIDREF": "UID"}
# Attributes of type 1 (present, with a value) and type 2 (present) of the IOD's modules.
REQUIRED_1 = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "Modality",
              "SeriesInstanceUID", "SeriesNumber", "InstanceNumber", "CompletionFlag",
              "VerificationFlag", "ContentDate", "ContentTime", "ValueType",
              "ConceptNameCodeSequence", "ContinuityOfContent")
REQUIRED_2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
              "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
              "ReferencedPerformedProcedureStepSequence", "Manufacturer",
              "PerformedProcedureCodeSequence")


class SRInvalid(ValueError):
    """The SR breaks a rule of the Basic Text SR IOD (the message says which)."""


def person_name(name: str) -> str:
    """Return a display name as a DICOM PN: one family-name component (trailing caret)."""
    return (name.replace("^", " ").replace("=", " ").strip()[:63] or "UNKNOWN") + "^"


def _text(name, value: str) -> TextContentItem:
    return TextContentItem(name=name, value=value, relationship_type=CONTAINS)


def _section(name, item_name, text: str) -> ContainerContentItem | None:
    if not (text or "").strip():
        return None
    section = ContainerContentItem(name=name, is_content_continuous=True,
                                   relationship_type=CONTAINS)
    section.ContentSequence = ContentSequence([_text(item_name, text.strip())])
    return section


def _conclusions(opinion) -> list[str]:
    lines = []
    if opinion.agreement:
        lines.append("Agreement with the original read: "
                     f"{AGREEMENT_LABELS.get(opinion.agreement, opinion.agreement)}.")
    if opinion.coverage_answer:
        answer = COVERAGE_LABELS.get(opinion.coverage_answer, opinion.coverage_answer)
        lines.append(f"Coverage: {answer}." + (f" {opinion.coverage_text.strip()}"
                                               if (opinion.coverage_text or "").strip() else ""))
    return lines


def signature_line(signed: dict) -> str:
    """Return who signed, with credentials and licence, and when (UTC)."""
    parts = [f"Electronically signed by {signed['signer_name']}"]
    if signed["signer_credentials"]:
        parts.append(signed["signer_credentials"])
    parts.append(f"licence {signed['license']}")
    return ", ".join(parts) + f", on {signed['signed_at']:%Y-%m-%d %H:%M} UTC."


def sr_content(request, signed: dict) -> Dataset:
    """Return the root content item (its attributes go into the SR's top level)."""
    opinion = signed["opinion"]
    observer_type = CodeContentItem(name=codes.DCM.ObserverType, value=codes.DCM.Person,
                                    relationship_type=OBS_CONTEXT)
    observer_name = PnameContentItem(name=codes.DCM.PersonObserverName,
                                     value=person_name(signed["signer_name"]),
                                     relationship_type=OBS_CONTEXT)
    items: list = [observer_type, observer_name]
    if signed["addendum"] is not None:
        signed_on = f"{opinion.signed_at:%Y-%m-%d %H:%M} UTC"
        items.append(_text(codes.DCM.Addendum, signed["addendum"].text.strip()))
        items.append(_text(codes.DCM.Comment,
                           f"Addendum to the second opinion signed on {signed_on} "
                           f"(request #{request.id})."))
    else:
        sections = [
            _section(codes.DCM.Findings, codes.DCM.Finding, opinion.findings),
            _section(codes.DCM.Impressions, codes.DCM.Impression, opinion.impression),
            _section(codes.DCM.Conclusions, codes.DCM.Conclusion,
                     "\n".join(_conclusions(opinion))),
            _section(codes.DCM.Recommendations, codes.DCM.Recommendation,
                     opinion.recommendations),
        ]
        items.extend(s for s in sections if s is not None)
    items.append(_text(codes.DCM.Comment, signature_line(signed)))
    root = ContainerContentItem(name=codes.LN.DiagnosticImagingReport,
                                is_content_continuous=False)
    root.ContentSequence = ContentSequence(items)
    return root


# --- IOD rules ---------------------------------------------------------------------------

def validate_basic_text_sr(ds: Dataset) -> None:
    """Raise SRInvalid unless ds follows the Basic Text SR IOD's rules."""
    problems: list[str] = []
    if ds.get("SOPClassUID") != BASIC_TEXT_SR:
        problems.append("SOP Class UID is not Basic Text SR Storage")
    for keyword in REQUIRED_1:
        value = ds.get(keyword)
        if value is None or value == "" or (hasattr(value, "__len__") and len(value) == 0):
            problems.append(f"{keyword} (type 1) is missing or empty")
    for keyword in REQUIRED_2:
        if keyword not in ds:
            problems.append(f"{keyword} (type 2) is missing")
    if ds.get("Modality") != "SR":
        problems.append("Modality must be SR")
    if ds.get("CompletionFlag") not in ("PARTIAL", "COMPLETE"):
        problems.append("CompletionFlag must be PARTIAL or COMPLETE")
    if ds.get("VerificationFlag") not in ("UNVERIFIED", "VERIFIED"):
        problems.append("VerificationFlag must be UNVERIFIED or VERIFIED")
    if ds.get("VerificationFlag") == "VERIFIED":
        observers = ds.get("VerifyingObserverSequence") or []
        if not observers:
            problems.append("VerifyingObserverSequence is required when VERIFIED")
        for obs in observers:
            for keyword in ("VerifyingObserverName", "VerifyingOrganization",
                            "VerificationDateTime"):
                if not obs.get(keyword):
                    problems.append(f"VerifyingObserverSequence: {keyword} is missing")
            if "VerifyingObserverIdentificationCodeSequence" not in obs:
                problems.append("VerifyingObserverSequence: "
                                "VerifyingObserverIdentificationCodeSequence is missing")
    for study in ds.get("CurrentRequestedProcedureEvidenceSequence") or []:
        if not study.get("StudyInstanceUID") or not study.get("ReferencedSeriesSequence"):
            problems.append("evidence item without study UID or series")
        for series in study.get("ReferencedSeriesSequence") or []:
            if not series.get("SeriesInstanceUID") or not series.get("ReferencedSOPSequence"):
                problems.append("evidence series without UID or instances")
    if ds.get("ValueType") != "CONTAINER":
        problems.append("the root content item must be a CONTAINER")
    if "RelationshipType" in ds:
        problems.append("the root content item has no relationship type")
    _check_items(ds, "root", problems)
    if problems:
        raise SRInvalid("; ".join(dict.fromkeys(problems)))


def _check_items(parent: Dataset, where: str, problems: list[str]) -> None:
    parent_type = parent.get("ValueType")
    if len(parent.get("ConceptNameCodeSequence") or []) != 1:
        problems.append(f"{where}: needs exactly one concept name code")
    attribute = VALUE_ATTRIBUTE.get(parent_type)
    if attribute and not parent.get(attribute):
        problems.append(f"{where}: {parent_type} item without its {attribute}")
    for n, item in enumerate(parent.get("ContentSequence") or [], start=1):
        here = f"{where}.{n}"
        if "ReferencedContentItemIdentifier" in item:
            problems.append(f"{here}: a Basic Text SR has no by-reference relationships")
            continue
        value_type, relation = item.get("ValueType"), item.get("RelationshipType")
        if value_type not in BASIC_TEXT_TYPES:
            problems.append(f"{here}: value type {value_type} is not allowed")
        source = "LEAF" if parent_type != "CONTAINER" else "CONTAINER"
        allowed = (ALLOWED.get((parent_type, relation)) or ALLOWED.get(("*", relation))
                   or ALLOWED.get((source, relation)))
        if allowed is None or value_type not in allowed:
            problems.append(f"{here}: {parent_type} {relation} {value_type} is not allowed")
        _check_items(item, here, problems)
