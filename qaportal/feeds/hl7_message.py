"""HL7 v2 messages: parse ORU^R01, ORM^O01 and OMI^O23 (hl7apy) into reads; build ACKs.

Fields are read from the parsed segments' ER7 text and split on the message's own
separators, so the same code reads versions 2.3 to 2.8. Which field gives what is listed
in docs/feeds-reads.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from qaportal.feeds.reads import ReadMessage

SUPPORTED = {("ORU", "R01"): "report", ("ORM", "O01"): "order", ("OMI", "O23"): "order"}
# DICOM code of an OBX carrying the Study Instance UID (DCM 110180 "Study Instance UID").
STUDY_UID_CODE = "110180"
TEXT_TYPES = {"TX", "FT", "ST", "CE", "CWE", ""}
DEFAULT_VERSION = "2.5.1"
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


class MessageRejected(ValueError):
    """A message to answer with an error ACK: code AR or AE, HL7 error code (table 0357)."""

    def __init__(self, ack: str, reason: str, hl7_code: str = "207"):
        super().__init__(reason)
        self.ack, self.reason, self.hl7_code = ack, reason, hl7_code


@dataclass
class Header:
    """The MSH fields an ACK needs (taken even from a message that fails to parse)."""

    field_sep: str = "|"
    encoding: str = "^~\\&"
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    message_type: str = ""
    trigger: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = DEFAULT_VERSION


def read_header(text: str) -> Header:
    """Return the MSH fields by plain splitting (no parser), for any ACK, even AR."""
    first = text.lstrip("\r\n").split("\r", 1)[0].split("\n", 1)[0]
    if not first.startswith("MSH") or len(first) < 8:
        return Header()
    sep = first[3]
    fields = first.split(sep)
    comp = fields[1][:1] if len(fields) > 1 and fields[1] else "^"

    def f(n: int) -> str:  # MSH-n is fields[n - 1] (MSH-1 is the separator itself)
        return fields[n - 1] if len(fields) > n - 1 else ""

    kind = f(9).split(comp)
    return Header(
        field_sep=sep, encoding=f(2) or "^~\\&",
        sending_application=f(3).split(comp)[0][:64], sending_facility=f(4).split(comp)[0][:64],
        receiving_application=f(5).split(comp)[0], receiving_facility=f(6).split(comp)[0],
        message_type=kind[0], trigger=kind[1] if len(kind) > 1 else "",
        control_id=f(10)[:64], processing_id=(f(11).split(comp)[0] or "P")[:3],
        version=(f(12).split(comp)[0] or DEFAULT_VERSION)[:8],
    )


def unescape(value: str, enc: str) -> str:
    """Undo HL7 escapes (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\.br\\) in a text value."""
    esc = enc[2] if len(enc) > 2 else "\\"
    table = {"F": "|", "S": enc[0], "T": enc[3] if len(enc) > 3 else "&",
             "R": enc[1], "E": esc, ".br": "\n"}
    pattern = re.compile(re.escape(esc) + r"(F|S|T|R|E|\.br)" + re.escape(esc))
    return pattern.sub(lambda m: table[m.group(1)], value)


def escape(value: str, enc: str = "^~\\&") -> str:
    """Escape text for an HL7 field (used in ACK texts)."""
    esc = enc[2]
    out = value.replace(esc, f"{esc}E{esc}").replace("|", f"{esc}F{esc}")
    out = out.replace(enc[0], f"{esc}S{esc}").replace(enc[1], f"{esc}R{esc}")
    out = out.replace(enc[3], f"{esc}T{esc}")
    return " ".join(out.split())


def parse_dtm(value: str) -> datetime | None:
    """Return an HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]) as UTC; UTC if no zone."""
    m = re.fullmatch(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,4})?"
                     r"([+-]\d{4})?", value.strip())
    if not m:
        return None
    parts = [int(p) if p else d for p, d in zip(m.groups()[:6], (0, 1, 1, 0, 0, 0),
                                                  strict=True)]
    tz = UTC
    if m.group(7):
        sign = -1 if m.group(7)[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(m.group(7)[1:3]),
                                       minutes=int(m.group(7)[3:5])))
    try:
        return datetime(*parts, tzinfo=tz).astimezone(UTC)
    except ValueError:
        return None


class _Segments:
    """Field access on parsed segments by ER7 text: seg(name)[n] -> list of components."""

    def __init__(self, message, enc: str):
        self.enc = enc
        self.segments: list[tuple[str, dict[int, str]]] = []
        for seg in message.children:
            fields = {}
            for field in seg.children:
                try:
                    n = int(field.name.rsplit("_", 1)[1])
                except (IndexError, ValueError):
                    continue
                fields[n] = field.to_er7()
            self.segments.append((seg.name, fields))

    def all(self, name: str) -> list[dict[int, str]]:
        return [f for n, f in self.segments if n == name]

    def first(self, name: str) -> dict[int, str]:
        found = self.all(name)
        return found[0] if found else {}

    def comp(self, fields: dict[int, str], n: int, c: int = 1, sub: int = 0) -> str:
        """Component c (1-based) of the first repetition of field n; subcomponent sub."""
        value = fields.get(n, "").split(self.enc[1])[0]
        parts = value.split(self.enc[0])
        value = parts[c - 1] if len(parts) >= c else ""
        if sub:
            subs = value.split(self.enc[3])
            value = subs[sub - 1] if len(subs) >= sub else ""
        return unescape(value, self.enc).strip()


def parse(text: str) -> tuple[Header, ReadMessage]:
    """Parse a message into its header and read; raise MessageRejected (AR/AE) when not."""
    header = read_header(text)
    if not header.control_id:
        raise MessageRejected("AR", "no MSH segment or no message control id", "101")
    kind = SUPPORTED.get((header.message_type, header.trigger))
    if kind is None:
        raise MessageRejected("AR", "unsupported message type", "200")
    try:
        message = parse_message(text.replace("\n", "\r").strip("\r"),
                                validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)
    except Exception as exc:  # noqa: BLE001 - hl7apy raises many types for bad input
        raise MessageRejected("AR", f"the message could not be parsed ({type(exc).__name__})",
                              "102") from None
    seg = _Segments(message, header.encoding.ljust(4, "&"))
    obr = seg.first("OBR")
    if not obr:
        raise MessageRejected("AE", "no OBR segment", "100")
    pid, ipc = seg.first("PID"), seg.first("IPC")
    accession = (seg.comp(ipc, 1) or seg.comp(obr, 18) or seg.comp(obr, 3))
    study_uid = seg.comp(seg.first("ZDS"), 1) or seg.comp(ipc, 3)
    msg = ReadMessage(
        source="hl7", kind=kind, message_id=header.control_id,
        sending_application=header.sending_application,
        sending_facility=header.sending_facility, accession_number=accession,
        patient_id=seg.comp(pid, 3), patient_name=" ".join(
            p for p in (seg.comp(pid, 5, 2), seg.comp(pid, 5, 1)) if p),
    )
    if kind == "order":
        msg.report_text = seg.comp(obr, 31, 2) or seg.comp(obr, 13)
    else:
        _report(seg, obr, msg, header)
        study_uid = study_uid or _study_uid_obx(seg)
    if study_uid and not _UID.fullmatch(study_uid):
        raise MessageRejected("AE", "the Study Instance UID is not a valid UID", "102")
    msg.study_uid = study_uid
    return header, msg


def _report(seg: _Segments, obr: dict[int, str], msg: ReadMessage, header: Header) -> None:
    """Fill the report's text, status, reader and finalized time from OBR and OBX."""
    lines, statuses, observer = [], [], ("", "")
    for obx in seg.all("OBX"):
        if seg.comp(obx, 3) == STUDY_UID_CODE:
            continue
        if seg.comp(obx, 2) not in TEXT_TYPES:
            continue
        for rep in obx.get(5, "").split(seg.enc[1]):
            lines.append(unescape(rep, seg.enc))
        statuses.append(seg.comp(obx, 11))
        if not observer[0] and seg.comp(obx, 16):
            observer = (seg.comp(obx, 16), _name(seg.comp(obx, 16, 3), seg.comp(obx, 16, 2)))
    msg.report_text = "\n".join(lines).strip()
    status = (seg.comp(obr, 25) or next((s for s in statuses if s), "")).upper()
    msg.result_status = status if status in ("F", "C") else "P"
    # OBR-32 Principal Result Interpreter: ID&Family&Given... in its first component.
    interpreter = seg.comp(obr, 32, 1, 1)
    if interpreter:
        msg.reader_identifier = interpreter
        msg.reader_name = _name(seg.comp(obr, 32, 1, 3), seg.comp(obr, 32, 1, 2))
    else:
        msg.reader_identifier, msg.reader_name = observer
    when = seg.comp(obr, 22) or next(
        (seg.comp(o, 14) for o in seg.all("OBX") if seg.comp(o, 14)), "")
    msg.finalized_at = parse_dtm(when) if when else None
    if when and msg.finalized_at is None:
        raise MessageRejected("AE", "the result date/time is not a valid HL7 date/time", "102")


def _name(given: str, family: str) -> str:
    return " ".join(p for p in (given, family) if p)


def _study_uid_obx(seg: _Segments) -> str:
    for obx in seg.all("OBX"):
        if seg.comp(obx, 3) == STUDY_UID_CODE:
            return seg.comp(obx, 5)
    return ""


def ack(header: Header, code: str, text: str = "", hl7_code: str = "") -> str:
    """Return the ACK (original mode) for a message: MSA-1 code, MSA-2 its control id."""
    enc = "^~\\&"
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    version = header.version if re.fullmatch(r"2\.[0-9.]{1,5}", header.version) \
        else DEFAULT_VERSION
    trigger = escape(header.trigger)
    msh = "|".join([
        "MSH", enc, escape(header.receiving_application) or "QAPORTAL",
        escape(header.receiving_facility), escape(header.sending_application),
        escape(header.sending_facility), now, "", f"ACK^{trigger}^ACK" if trigger else "ACK",
        "ACK" + now + format(datetime.now(UTC).microsecond, "06d"),
        escape(header.processing_id) or "P", version,
    ])
    segments = [msh, "|".join(["MSA", code, escape(header.control_id), escape(text)[:80]])]
    if code != "AA" and version >= "2.5":
        segments.append("|".join(["ERR", "", "", f"{hl7_code or '207'}^{escape(text)[:80]}"
                                  "^HL70357", "E"]))
    return "\r".join(segments) + "\r"
