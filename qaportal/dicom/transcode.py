"""Transfer syntaxes a stored instance can be served in, and the re-encoding to serve it.

A stored file is served in its own transfer syntax, or in Explicit VR Little Endian (the
DICOMweb default): uncompressed syntaxes are re-encoded, compressed pixel data is decoded
frame by frame by pydicom's decoders (the pylibjpeg plugins). Compressing is not offered,
nor converting big endian data (a retired syntax whose raw words pydicom will not swap).
"""

from __future__ import annotations

import io
import os

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

EXPLICIT_VR_LITTLE_ENDIAN = str(ExplicitVRLittleEndian)
_NATIVE_LITTLE = {str(ImplicitVRLittleEndian), str(ExplicitVRLittleEndian),
                  str(DeflatedExplicitVRLittleEndian)}


class TranscodeError(Exception):
    """An instance could not be re-encoded (undecodable pixel data, say)."""


def stored_syntax(recorded: str) -> str:
    """Return the syntax of a stored file: the recorded one, implicit LE for a raw data set."""
    return recorded or str(ImplicitVRLittleEndian)


def can_serve(stored: str, wanted: str) -> bool:
    """Tell whether an instance stored in `stored` can be served in `wanted`."""
    stored = stored_syntax(stored)
    if wanted == stored:
        return True
    if wanted != EXPLICIT_VR_LITTLE_ENDIAN:
        return False
    if stored in _NATIVE_LITTLE:
        return True
    return decoder_available(stored)


def decoder_available(syntax: str) -> bool:
    """Tell whether pydicom can decode pixel data compressed with this syntax here."""
    uid = UID(syntax)
    if not (uid.is_transfer_syntax and uid.is_compressed):
        return False
    from pydicom.pixels import get_decoder

    try:
        return get_decoder(uid).is_available
    except NotImplementedError:
        return False


def read_dataset(data: bytes) -> Dataset:
    """Parse stored bytes (Part 10, or a raw data set as ingest accepts) into a data set."""
    has_preamble = len(data) >= 132 and data[128:132] == b"DICM"
    ds = dcmread(io.BytesIO(data), force=not has_preamble)
    _complete_meta(ds)
    return ds


def read_deferred(path: str | os.PathLike[str], defer_size: int) -> Dataset:
    """Parse a stored file, leaving values larger than defer_size on disk until read."""
    with open(path, "rb") as fp:
        has_preamble = fp.read(132)[128:132] == b"DICM"
    ds = dcmread(path, defer_size=defer_size, force=not has_preamble)
    _complete_meta(ds)
    return ds


def to_explicit_little(ds: Dataset) -> None:
    """Re-encode ds in place as Explicit VR Little Endian (decoding compressed pixels)."""
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if syntax == ExplicitVRLittleEndian:
        return
    if str(syntax) not in _NATIVE_LITTLE and not syntax.is_compressed:
        raise TranscodeError("this transfer syntax cannot be converted")
    if syntax.is_compressed and "PixelData" in ds:
        try:
            # Frame by frame (pydicom's decoder iterates), YBR to RGB; keep the SOP UID.
            ds.decompress(generate_instance_uid=False)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means "cannot serve"
            raise TranscodeError(f"pixel data could not be decoded ({type(exc).__name__})"
                                 ) from exc
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


def encode(ds: Dataset) -> bytes:
    """Return ds as a Part 10 file in its file meta's transfer syntax, preamble zeroed."""
    ds.preamble = bytes(128)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _complete_meta(ds: Dataset) -> None:
    """Give a raw data set the file meta a Part 10 file needs (from its own elements)."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                  ExplicitVRLittleEndian if little else "1.2.840.10008.1.2.2")
    if "MediaStorageSOPClassUID" not in meta and "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "MediaStorageSOPInstanceUID" not in meta and "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
