"""Jinja filters for DICOM values and sizes."""

from __future__ import annotations

from flask import Flask


def person_name(value: str | None) -> str:
    """Show a DICOM person name (FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX) as "FAMILY, GIVEN MIDDLE"."""
    if not value:
        return ""
    parts = [p.strip() for p in str(value).split("=")[0].split("^")]
    family, given = parts[0], " ".join(p for p in parts[1:3] if p)
    name = f"{family}, {given}" if family and given else family or given
    prefix = parts[3] if len(parts) > 3 else ""
    suffix = parts[4] if len(parts) > 4 else ""
    return " ".join(p for p in (prefix, name, suffix) if p)


def count_noun(value: int | None, noun: str, plural: str | None = None) -> str:
    """Show a count with its noun in the right number: "1 image", "2 images", "0 images"."""
    n = int(value or 0)
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def filesize(value: int | None) -> str:
    """Show a byte count as B, KB, MB or GB."""
    size = float(value or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def page_url(endpoint: str, args: dict, param: str = "cursor", cursor: str = "") -> str:
    """Return the URL of one page of a keyset list: the list's filters and other lists'
    cursors kept, this list's cursor set (or dropped for its first page)."""
    from flask import url_for

    params = {k: v for k, v in args.items() if v not in (None, "") and k != param}
    if cursor:
        params[param] = cursor
    return url_for(endpoint, **params)


def init_app(app: Flask) -> None:
    """Register the filters."""
    app.add_template_global(page_url, "page_url")
    app.add_template_filter(person_name, "person_name")
    app.add_template_filter(filesize, "filesize")
    app.add_template_filter(count_noun, "count_noun")
