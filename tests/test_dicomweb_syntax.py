"""Transfer-syntax negotiation of WADO-RS multipart answers (Accept, q-values, defaults)."""

from __future__ import annotations

import pytest

from qaportal.dicomweb.syntax import AS_STORED, wanted

EVRLE = "1.2.840.10008.1.2.1"
JP2K = "1.2.840.10008.1.2.4.90"
RLE = "1.2.840.10008.1.2.5"
DICOM = 'multipart/related; type="application/dicom"'


@pytest.mark.parametrize(("accept", "syntaxes"), [
    (None, (EVRLE,)),
    ("*/*", (EVRLE,)),
    (DICOM, (EVRLE,)),
    ("multipart/related", (EVRLE,)),
    ('multipart/related; type="application/*"', (EVRLE,)),
    (f"{DICOM}; transfer-syntax=*", (AS_STORED,)),
    (f"{DICOM}; transfer-syntax={JP2K}; q=0.4, {DICOM}; transfer-syntax=*; q=0.8",
     (AS_STORED, JP2K)),
    ("application/dicom+json", ()),
    ('multipart/related; type="application/octet-stream"', ()),
    ("image/*, application/dicom", ()),
])
def test_what_an_accept_header_asks(accept, syntaxes):
    assert wanted(accept, "application/dicom").syntaxes == syntaxes


def test_each_instance_gets_the_best_syntax_it_can_be_served_in():
    want = wanted(f"{DICOM}; transfer-syntax={JP2K}, {DICOM}; q=0.5", "application/dicom")
    assert want.for_instance(JP2K) == JP2K
    assert want.for_instance(RLE) == EVRLE  # decoded
    assert want.for_instance("1.2.840.10008.1.2.2") is None  # big endian: neither
    assert wanted(f"{DICOM}; transfer-syntax={JP2K}", "application/dicom"
                  ).for_instance(EVRLE) is None


def test_q_zero_refuses_a_syntax_even_as_stored():
    want = wanted(f"{DICOM}; transfer-syntax=*, {DICOM}; transfer-syntax={EVRLE}; q=0",
                  "application/dicom")
    assert want.refused == {EVRLE}
    assert want.for_instance(RLE) == RLE
    assert want.for_instance(EVRLE) is None
