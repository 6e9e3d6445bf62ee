"""De-identify DICOM datasets with the PS3.15 Annex E Basic Profile and selected options."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary

from .annex_e import RULES, Rule
from .pixelcheck import has_overlay_data

PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")


class DeidOption(enum.Enum):
    """Annex E options this implementation supports, valued by their CID 7050 code."""

    RETAIN_MODIFIED_DATES = (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    )
    RETAIN_PATIENT_CHARACTERISTICS = ("113108", "Retain Patient Characteristics Option")
    RETAIN_DEVICE_IDENTITY = ("113109", "Retain Device Identity Option")


_OPTION_BY_NAME = {
    "temporal": DeidOption.RETAIN_MODIFIED_DATES,
    "patient": DeidOption.RETAIN_PATIENT_CHARACTERISTICS,
    "device": DeidOption.RETAIN_DEVICE_IDENTITY,
}
# Modalities whose pixels often carry burned-in text even when the header does not say so.
_BURNED_IN_SUSPECT_MODALITIES = {"US", "SC", "OT", "XC", "ES", "GM", "SM", "DOC", "IVUS"}
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_OVERLAY_REMOVED_ELEMENTS = {0x0022, 0x1500, 0x3000, 0x4000}  # description, label, data, comments
_DUMMY = {
    "AE": "ANON",
    "AS": "000Y",
    "CS": "ANON",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "PN": "ANONYMIZED",
}
_TEXT_DUMMY = "ANONYMIZED"
_DATE_VRS = {"DA", "DT", "TM"}
_STRING_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM"}
_STRING_VRS |= {"UC", "UI", "UR", "UT"}


@dataclass
class DeidContext:
    """Hold what must stay consistent across the files of a study: secret, UIDs, date shift."""

    secret: bytes
    pseudonym: str = "ANONYMOUS"
    pseudonym_id: str | None = None
    options: frozenset[DeidOption] = frozenset()
    date_shift_days: int = 0
    uid_map: dict[str, str] = field(default_factory=dict)
    method_text: str = "qaportal PS3.15 Annex E Basic Profile"

    def new_uid_for(self, old: str) -> str:
        """Return the replacement for a UID: 2.25 + HMAC-SHA256(secret, uid), remembered."""
        old = old.strip().rstrip("\x00")
        if old not in self.uid_map:
            digest = hmac.new(self.secret, old.encode("ascii", "replace"), hashlib.sha256)
            self.uid_map[old] = "2.25." + str(int.from_bytes(digest.digest()[:16], "big"))
        return self.uid_map[old]

    def has(self, option: DeidOption) -> bool:
        """Tell whether an option is on."""
        return option in self.options


def date_shift_for(secret: bytes, study_key: str, max_days: int = 3650) -> int:
    """Derive a stable backwards date shift (1..max_days days) for a study from the secret."""
    digest = hmac.new(secret, b"date-shift:" + study_key.encode(), hashlib.sha256).digest()
    return -(1 + int.from_bytes(digest[:4], "big") % max_days)


@dataclass
class DeidResult:
    """Report what de-identification did and whether pixels still need a human look."""

    old_sop_uid: str
    new_sop_uid: str
    old_study_uid: str
    new_study_uid: str
    burned_in: str  # "YES", "NO" or "UNKNOWN"
    pixel_review_needed: bool
    review_reason: str | None
    has_overlays: bool = False
    private_removed: int = 0
    actions: dict[str, int] = field(default_factory=dict)


def deidentify_dataset(ds: Dataset, ctx: DeidContext) -> DeidResult:
    """De-identify ds in place and mark it as such; return a report."""
    old_sop = str(ds.get("SOPInstanceUID", ""))
    old_study = str(ds.get("StudyInstanceUID", ""))
    burned, review, reason = _burned_in(ds)
    overlays = has_overlay_data(ds)
    if overlays and not review:
        # Like BurnedInAnnotation: a device that drew an overlay may have drawn the same
        # text into the pixels, which header work cannot remove.
        review, reason = True, "overlay data present (removed); check the pixels for text"
    result = DeidResult(old_sop, "", old_study, "", burned, review, reason,
                        has_overlays=overlays)
    _clean(ds, ctx, result)
    _fix_file_meta(ds, ctx)
    _mark(ds, ctx)
    ds.preamble = bytes(128)
    result.new_sop_uid = str(ds.get("SOPInstanceUID", ""))
    result.new_study_uid = str(ds.get("StudyInstanceUID", ""))
    return result


def deidentify_file(
    src: str | os.PathLike[str], dest: str | os.PathLike[str], ctx: DeidContext
) -> DeidResult:
    """Read src, de-identify it and write the result to dest as a DICOM Part 10 file."""
    ds = dcmread(src)
    result = deidentify_dataset(ds, ctx)
    ds.save_as(Path(dest), enforce_file_format=True)
    return result


def _clean(ds: Dataset, ctx: DeidContext, result: DeidResult) -> None:
    """Apply the profile to every element of ds, recursing into sequences."""
    for tag in list(ds.keys()):
        elem = ds[tag]
        if tag.is_private:
            del ds[tag]
            result.private_removed += 1
            continue
        group = tag.group
        if 0x5000 <= group <= 0x501E and group % 2 == 0:  # retired curves may hold text
            _count(result, "X")
            del ds[tag]
            continue
        if 0x6000 <= group <= 0x601E and group % 2 == 0:
            # Table E.1-1: Overlay Data and Overlay Comments are X (the Clean Graphics
            # option, which would keep them, is not offered); so are their text labels.
            # The overlay's geometry is harmless and kept.
            if tag.element in _OVERLAY_REMOVED_ELEMENTS:
                _count(result, "X")
                del ds[tag]
            continue
        action = _action_for(elem, RULES.get(int(tag)), ctx)
        if tag == 0x00100010:
            action = "PSEUDONYM_NAME"
        elif tag == 0x00100020:
            action = "PSEUDONYM_ID"
        _count(result, "D" if action.startswith("PSEUDONYM") else action)
        _apply(ds, elem, action, ctx, result)


def _action_for(elem: DataElement, rule: Rule | None, ctx: DeidContext) -> str:
    """Resolve the action for one element from its rule, the options, or the fallbacks."""
    if rule is not None:
        if rule.option and ctx.has(_OPTION_BY_NAME[rule.option]):
            # A kept date (e.g. calibration date) is still shifted when study dates are.
            shift = rule.option == "temporal" or (
                elem.VR in ("DA", "DT") and ctx.has(DeidOption.RETAIN_MODIFIED_DATES)
            )
            return "C" if shift else "K"
        if rule.action == "D" and elem.VR == "UI":
            return "U"  # a dummy UID is a new one: keep references consistent
        return rule.action
    if elem.VR == "PN":
        return "X"  # any person name not in the table
    if elem.VR in _DATE_VRS:
        return "C" if ctx.has(DeidOption.RETAIN_MODIFIED_DATES) else "X"
    if elem.VR == "UI":
        return "U"  # _replace_uids keeps registered (standard) UIDs
    return "K"


def _apply(ds: Dataset, elem: DataElement, action: str, ctx: DeidContext, res: DeidResult) -> None:
    """Carry out one action on elem inside ds."""
    tag = elem.tag
    if action == "X":
        del ds[tag]
    elif action == "Z":
        elem.value = Sequence() if elem.VR == "SQ" else ("" if elem.VR in _STRING_VRS else None)
    elif action == "PSEUDONYM_NAME":
        elem.value = ctx.pseudonym
    elif action == "PSEUDONYM_ID":
        elem.value = ctx.pseudonym_id or ctx.pseudonym
    elif action == "U":
        _replace_uids(elem, ctx)
    elif elem.VR == "SQ":  # K, D and C on a sequence: keep the items, clean inside them
        for item in elem.value:
            _clean(item, ctx, res)
    elif action == "D":
        elem.value = _DUMMY.get(elem.VR, _TEXT_DUMMY if _is_text(elem.VR) else b"")
    elif action == "C":
        _clean_value(ds, elem, ctx)


def _clean_value(ds: Dataset, elem: DataElement, ctx: DeidContext) -> None:
    """Clean one value: shift dates when dates are retained; otherwise use a dummy."""
    if elem.VR in ("DA", "DT") and ctx.has(DeidOption.RETAIN_MODIFIED_DATES):
        shifted = [_shift(str(v), elem.VR, ctx.date_shift_days) for v in _values(elem)]
        if not shifted:
            return  # an empty date (Type 2 left blank) stays empty: nothing to shift
        if any(v is None for v in shifted):
            del ds[elem.tag]  # an unparseable date cannot be shifted safely
        else:
            elem.value = shifted if len(shifted) > 1 else shifted[0]
    elif elem.VR == "TM" and ctx.has(DeidOption.RETAIN_MODIFIED_DATES):
        return  # whole-day shifts leave times of day unchanged
    else:
        elem.value = _DUMMY.get(elem.VR, _TEXT_DUMMY)


def _shift(value: str, vr: str, days: int) -> str | None:
    """Shift a DA or DT value by whole days, keeping any time part; None if unparseable."""
    value = value.strip()
    if not value:
        return value
    head, tail = value[:8], value[8:]
    if len(head) != 8 or not head.isdigit():
        return None
    try:
        day = dt.date(int(head[:4]), int(head[4:6]), int(head[6:8])) + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return day.strftime("%Y%m%d") + (tail if vr == "DT" else "")


def _replace_uids(elem: DataElement, ctx: DeidContext) -> None:
    """Replace instance UIDs consistently, leaving registered (standard) UIDs alone."""
    values = [str(v).strip().rstrip("\x00") for v in _values(elem)]
    new = [v if (not v or v in UID_dictionary) else ctx.new_uid_for(v) for v in values]
    elem.value = new if len(new) > 1 else (new[0] if new else None)


def _fix_file_meta(ds: Dataset, ctx: DeidContext) -> None:
    """Point the file meta at the new SOP instance and drop identifying meta elements."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    elif "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = ctx.new_uid_for(str(meta.MediaStorageSOPInstanceUID))
    # AE titles and presentation addresses (PS3.10 7.1: URLs or host:port of the sender
    # and receiver) name machines and sites; private meta can hold anything.
    for keyword in (
        "SourceApplicationEntityTitle",
        "SendingApplicationEntityTitle",
        "ReceivingApplicationEntityTitle",
        "SourcePresentationAddress",
        "SendingPresentationAddress",
        "ReceivingPresentationAddress",
        "PrivateInformationCreatorUID",
        "PrivateInformation",
    ):
        if keyword in meta:
            delattr(meta, keyword)


def _mark(ds: Dataset, ctx: DeidContext) -> None:
    """Record the de-identification: (0012,0062/0063/0064) and temporal modification."""
    ds.PatientIdentityRemoved = "YES"
    options = sorted(ctx.options, key=lambda o: o.value[0])
    ds.DeidentificationMethod = [ctx.method_text[:64]] + [o.value[1][:64] for o in options]
    codes = Sequence()
    for value, meaning in [PROFILE_CODE, *(o.value for o in options)]:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes
    if ctx.has(DeidOption.RETAIN_MODIFIED_DATES):
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
    else:
        ds.LongitudinalTemporalInformationModified = "REMOVED"


def _burned_in(ds: Dataset) -> tuple[str, bool, str | None]:
    """Say whether pixels may carry identifying text the header work cannot remove."""
    flag = str(ds.get("BurnedInAnnotation", "")).strip().upper()
    modality = str(ds.get("Modality", "")).strip().upper()
    sop_class = str(ds.get("SOPClassUID", ""))
    if flag == "YES":
        return "YES", True, "BurnedInAnnotation is YES"
    if flag == "NO":
        return "NO", False, None
    if modality in _BURNED_IN_SUSPECT_MODALITIES or sop_class.startswith(_SECONDARY_CAPTURE_PREFIX):
        return (
            "UNKNOWN",
            True,
            f"burned-in text not declared; {modality or 'this'} images often have it",
        )
    return "UNKNOWN", False, None


def _values(elem: DataElement) -> list[object]:
    """Return an element's values as a list."""
    value = elem.value
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def _is_text(vr: str) -> bool:
    """Tell whether a VR holds character data."""
    return vr in {"LO", "SH", "ST", "LT", "UT", "UC", "UR", "PN", "CS", "AE"}


def _count(result: DeidResult, action: str) -> None:
    """Tally an action for the report."""
    result.actions[action] = result.actions.get(action, 0) + 1
