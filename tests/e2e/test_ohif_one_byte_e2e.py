"""What OHIF's scripts compute is unchanged by writing them as ASCII (qaportal/ohif/one_byte.py):
each sample runs in Chromium's V8 as published and as rewritten, and both must give the same
value. The OHIF browser tests (test_ohif_e2e.py, test_ohif_marks_e2e.py) run the rewritten
build itself.
"""

from __future__ import annotations

import pytest

from qaportal.ohif import one_byte
from tests.ohif_one_byte_samples import ESCAPED

RUN = """(src) => {
  try { return JSON.stringify(new Function(src)()); }
  catch (e) { return 'threw ' + e.name + ': ' + e.message; }
}"""


@pytest.mark.parametrize("name", sorted(ESCAPED))
def test_rewritten_samples_compute_what_the_originals_do(page, name):
    src = ESCAPED[name]
    rewritten = one_byte.escape(src)
    assert rewritten is not None and rewritten.isascii()
    page.goto("about:blank")
    before = page.evaluate(RUN, src)
    after = page.evaluate(RUN, rewritten)
    assert not before.startswith("threw"), before  # the sample itself is valid
    assert after == before


def test_a_refused_tagged_template_would_have_changed_its_raw_text(page):
    # Why tagged templates are kept as published: the tag sees the raw text.
    page.goto("about:blank")
    raw = page.evaluate("() => String.raw`Ω`")
    escaped = page.evaluate("() => String.raw`\\u03a9`")
    assert raw == "Ω" and escaped == "\\u03a9"
    assert one_byte.escape("s = String.raw`Ω`;") is None
