"""Checks of what an administrator types about a DICOM peer, shared by the command line and
the admin pages: AE titles, source addresses, C-STORE and STOW-RS destinations, the owner.

Each check returns the cleaned value or raises PeerError with a message fit for both.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import SEND_KINDS, User

AE_MAX = 16
URL_MAX = 500
DESCRIPTION_MAX = 200
# An RFC 1123 host name label.
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


class PeerError(ValueError):
    """A value about a peer that cannot be used; the message says why, field names the
    setting it is about (for a form) when known."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def clean_ae_title(value: str | None, what: str = "AE title") -> str:
    """Return a DICOM AE title without its insignificant leading and trailing spaces.

    1 to 16 characters of the default repertoire (printable ASCII), no backslash, not only
    spaces.
    """
    text = (value or "").strip(" ")
    if not text:
        raise PeerError(f"the {what} is empty (1 to {AE_MAX} characters, not only spaces)")
    if len(text) > AE_MAX:
        raise PeerError(f"the {what} {text[:40]!r} is longer than {AE_MAX} characters")
    if "\\" in text:
        raise PeerError(f"the {what} '{text}' holds a backslash, which DICOM does not allow")
    bad = sorted({c for c in text if not " " <= c <= "~"})
    if bad:
        shown = ", ".join(f"U+{ord(c):04X}" for c in bad[:5])
        raise PeerError(f"the {what} may hold only printable ASCII characters (found {shown})")
    return text


def clean_address(entry: str) -> str:
    """Return an IPv4/IPv6 address or network in its canonical form ("10.1.0.0/16")."""
    text = entry.strip()
    if not text:
        raise PeerError("an empty address")
    if "%" in text:
        raise PeerError(f"{text!r}: give the address without a zone (%interface)")
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=True))
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        if "/" in text and "has host bits set" in str(exc):
            wider = ipaddress.ip_network(text, strict=False)
            raise PeerError(f"{text!r} has host bits set: did you mean {wider}?") from exc
        raise PeerError(f"{text!r} is not an IPv4 or IPv6 address or network "
                        "(such as 10.1.2.3, 10.1.0.0/16 or 2001:db8::/32)") from exc


def clean_addresses(entries: Iterable[str]) -> list[str]:
    """Return the addresses (each may list several, separated by commas, spaces or lines),
    canonical and without repeats; at least one."""
    seen: list[str] = []
    for entry in entries:
        for part in re.split(r"[\s,]+", entry or ""):
            if part:
                value = clean_address(part)
                if value not in seen:
                    seen.append(value)
    if not seen:
        raise PeerError("give at least one address the peer connects from")
    return seen


def clean_host(value: str | None) -> str:
    """Return a host name or an IP address to connect to."""
    text = (value or "").strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not text:
        raise PeerError("the destination host is empty")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    if len(text) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise PeerError(f"{text[:60]!r} is not a host name or an IP address")
    return text.lower()


def clean_port(value) -> int:
    """Return a TCP port number, 1 to 65535."""
    try:
        port = int(str(value).strip())
    except (TypeError, ValueError):
        raise PeerError(f"the port {value!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise PeerError(f"the port {port} is not between 1 and 65535")
    return port


def parse_dicom_destination(text: str) -> tuple[str, int, str]:
    """Split HOST:PORT:AE ([IPv6]:PORT:AE for an IPv6 address) into its parts, checked."""
    value = (text or "").strip()
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]:")
    else:
        host, sep, rest = value.partition(":")
    port, sep2, ae = rest.partition(":")
    if not sep or not sep2:
        raise PeerError(f"{value!r} is not HOST:PORT:AE (for example pacs.example.org:104:PACS "
                        "or [2001:db8::5]:104:PACS)")
    return clean_host(host), clean_port(port), clean_ae_title(ae, "destination AE title")


def clean_stow_url(value: str | None) -> str:
    """Return the base URL of a DICOMweb service: http(s), a host, no credentials in it."""
    text = (value or "").strip()
    if not text:
        raise PeerError("the STOW-RS URL is empty")
    if len(text) > URL_MAX:
        raise PeerError(f"the STOW-RS URL is longer than {URL_MAX} characters")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise PeerError("the STOW-RS URL holds spaces or control characters")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise PeerError(f"the STOW-RS URL is not valid: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PeerError("the STOW-RS URL must be an absolute http:// or https:// URL "
                        "(such as https://pacs.example.org/dicom-web)")
    if parts.username or parts.password:
        raise PeerError("put no user name or password in the STOW-RS URL: give them as "
                        "credentials (they are stored encrypted)")
    if parts.fragment:
        raise PeerError("the STOW-RS URL has a #fragment")
    return text


def parse_stow_credentials(text: str | None) -> str:
    """Check credentials typed for STOW-RS: "USER:PASSWORD" (HTTP Basic) or "Bearer TOKEN".

    Returns them with the surrounding whitespace removed; they are sealed as typed.
    """
    value = (text or "").strip()
    if not value:
        raise PeerError("the STOW-RS credentials are empty")
    if any(not c.isprintable() for c in value) or "\n" in value:
        raise PeerError("the STOW-RS credentials hold control characters or line breaks")
    if value[:7].lower() == "bearer ":
        if not value[7:].strip() or any(c.isspace() for c in value[7:].strip()):
            raise PeerError("give the bearer token as \"Bearer TOKEN\" (one word after Bearer)")
        return "Bearer " + value[7:].strip()
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise PeerError("give the STOW-RS credentials as USER:PASSWORD or as \"Bearer TOKEN\"")
    return value


def find_owner(email: str | None) -> User:
    """Return the active account that will own what the peer sends (it uploads: a
    radiologist)."""
    address = (email or "").strip().lower()
    if not address:
        raise PeerError("give the e-mail of the account that owns what the peer sends")
    user = db.session.scalar(sa.select(User).where(User.email == address))
    if user is None:
        raise PeerError(f"no account with the e-mail {address}")
    if not user.active:
        raise PeerError(f"the account {address} is deactivated")
    if not user.has_role("radiologist"):
        raise PeerError(f"the account {address} does not hold the radiologist role, which "
                        "owns uploaded studies")
    return user


@dataclass
class PeerSpec:
    """A peer's settings, every value checked."""

    ae_title: str
    addresses: list[str]
    owner: User
    description: str = ""
    send_kind: str = "none"
    send_host: str = ""
    send_port: int | None = None
    send_ae: str = ""
    stow_url: str = ""


def check_peer(*, ae_title, addresses, owner_email, description="", send_kind="none",
               send_host="", send_port=None, send_ae="", stow_url="") -> tuple[PeerSpec | None,
                                                                                dict[str, str]]:
    """Check every value; return the spec (None on an error) and {field: message}."""
    errors: dict[str, str] = {}
    values: dict = {}

    def check(name, fn, *args):
        try:
            values[name] = fn(*args)
        except PeerError as exc:
            errors[name] = str(exc)

    check("ae_title", clean_ae_title, ae_title)
    check("addresses", clean_addresses, addresses if not isinstance(addresses, str)
          else [addresses])
    check("owner", find_owner, owner_email)
    text = (description or "").strip()
    if len(text) > DESCRIPTION_MAX:
        errors["description"] = f"the description is longer than {DESCRIPTION_MAX} characters"
    elif any(not c.isprintable() for c in text):
        errors["description"] = "the description holds line breaks or control characters"
    if send_kind not in SEND_KINDS:
        errors["send_kind"] = f"the destination kind must be one of {', '.join(SEND_KINDS)}"
    elif send_kind == "dicom":
        check("send_host", clean_host, send_host)
        check("send_port", clean_port, send_port)
        check("send_ae", clean_ae_title, send_ae, "destination AE title")
    elif send_kind == "stow":
        check("stow_url", clean_stow_url, stow_url)
    if errors:
        return None, errors
    return PeerSpec(
        ae_title=values["ae_title"], addresses=values["addresses"], owner=values["owner"],
        description=text, send_kind=send_kind,
        send_host=values.get("send_host", ""), send_port=values.get("send_port"),
        send_ae=values.get("send_ae", ""), stow_url=values.get("stow_url", ""),
    ), {}
