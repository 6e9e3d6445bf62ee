"""Case packet layout: counts and sizes read as a person writes them; the closing line is
never left alone on a last page."""

from __future__ import annotations

import re

from qaportal.reports.service import create_export
from qaportal.templating import count_noun, filesize
from tests.pdftools import pdf_text
from tests.test_report_case_packet import make_case


def _pages(data: bytes) -> list[str]:
    return [p for p in pdf_text(data).split("\f") if p.strip()]


def test_count_noun_and_filesize():
    assert count_noun(1, "instance") == "1 instance"
    assert count_noun(0, "image") == "0 images"
    assert count_noun(1200, "series", "series") == "1,200 series"
    assert filesize(39_000) == "38.1 KB"


def test_one_small_instance_reads_one_instance_in_kilobytes(app, tmp_path):
    requester, _consultant, req = make_case(tmp_path, slices=1)
    _export, pdf = create_export("case", {"request": req.id, "deidentified": True}, requester)
    text = re.sub(r"\s+", " ", pdf_text(pdf.data))
    assert "1 series · 1 instance · " in text
    assert "0.0 MB" not in text and " instances · " not in text
    assert re.search(r"1 instance · \d+(\.\d)? KB", text)


def test_prepared_line_is_not_alone_on_the_last_page(app, tmp_path):
    # 21 slices made the audit table end exactly at a page's foot: the "Prepared by" line
    # then stood alone on a fifth page.
    requester, _consultant, req = make_case(tmp_path, slices=21)
    _export, pdf = create_export("case", {"request": req.id, "deidentified": True}, requester)
    last = _pages(pdf.data)[-1]
    assert "Prepared by" in last
    assert re.search(r"opinion\.\w+", last), last
