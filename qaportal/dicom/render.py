"""Render one frame of a DICOM instance to an 8-bit PNG, guarding against decompression bombs."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array

from .errors import DicomRejected

Source = str | os.PathLike[str] | bytes | BinaryIO
Window = tuple[float, float]  # (center, width)

MAX_FRAME_PIXELS = 64 * 1024 * 1024  # one decoded frame: 8192 x 8192
MAX_DECLARED_BYTES = 4 * 1024**3  # the whole image as the header declares it

# Common radiology presets as (center, width) in Hounsfield units.
WINDOW_PRESETS: dict[str, dict[str, Window]] = {
    "CT": {
        "brain": (40, 80),
        "lung": (-600, 1500),
        "bone": (400, 1800),
        "abdomen": (40, 400),
        "mediastinum": (50, 350),
    },
}


def render_frame(
    src: Source,
    frame: int = 0,
    window: Window | None = None,
    max_pixels: int = MAX_FRAME_PIXELS,
) -> bytes:
    """Render one frame as PNG bytes; an explicit window wins over the file's own."""
    ds, arr = load_frame(src, frame, max_pixels)
    return _png(Image.fromarray(to_uint8(arr, ds, window, frame)))


def render_thumbnail(src: Source, size: int = 128, frame: int = 0) -> bytes:
    """Render a frame scaled to fit a size x size box, as PNG bytes."""
    ds, arr = load_frame(src, frame)
    image = Image.fromarray(to_uint8(arr, ds, None, frame))
    image.thumbnail((size, size), Image.Resampling.BILINEAR)
    return _png(image)


def frame_count(src: Source) -> int:
    """Return the number of frames declared in the header."""
    return _frames(read_image_header(src))


def default_window(ds: Dataset) -> Window | None:
    """Return the file's first (center, width) window, or None when it has none usable."""
    try:
        center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
        if center is None or width is None:
            return None
        center = center[0] if _is_multi(center) else center
        width = width[0] if _is_multi(width) else width
        window = (float(center), float(width))
    except (TypeError, ValueError, IndexError):
        return None
    return window if window[1] > 0 else None


def read_image_header(src: Source) -> Dataset:
    """Parse the header (no pixels) of a path, bytes or stream."""
    try:
        with _open(src) as fp:
            return dcmread(fp, stop_before_pixels=True)
    except (InvalidDicomError, EOFError, ValueError, OSError) as exc:
        raise DicomRejected("not a readable DICOM file") from exc


def check_decodable_size(ds: Dataset, max_pixels: int = MAX_FRAME_PIXELS) -> None:
    """Refuse images whose declared size would make a decoder allocate too much memory."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.get("BitsAllocated", 8) or 8)
    except (AttributeError, TypeError, ValueError) as exc:
        raise DicomRejected("no image in file") from exc
    frames = _frames(ds)
    if rows <= 0 or cols <= 0:
        raise DicomRejected("no image in file")
    declared = rows * cols * frames * spp * max(bits, 8) // 8
    if rows * cols > max_pixels or declared > MAX_DECLARED_BYTES:
        raise DicomRejected(f"image too large: {rows}×{cols}×{frames}")


def load_frame(
    src: Source, frame: int = 0, max_pixels: int = MAX_FRAME_PIXELS
) -> tuple[Dataset, np.ndarray]:
    """Decode one frame after checking its declared size; return (header, array)."""
    ds = read_image_header(src)
    check_decodable_size(ds, max_pixels)
    frames = _frames(ds)
    if not 0 <= frame < frames:
        raise DicomRejected(f"frame {frame} out of range (0-{frames - 1})")
    try:
        with _open(src) as fp:
            # index= decodes just this frame; raw=False converts YBR_FULL(_422) to RGB.
            arr = pixel_array(fp, index=frame)
    except MemoryError as exc:
        raise DicomRejected("cannot decode frame: out of memory") from exc
    except Exception as exc:  # decoders raise many types; the caller shows a placeholder
        raise DicomRejected(f"cannot decode frame: {_short(exc)}") from exc
    if arr.shape[:2] != (int(ds.Rows), int(ds.Columns)):
        raise DicomRejected("cannot decode frame: unexpected shape")
    return ds, arr


def to_uint8(
    arr: np.ndarray, ds: Dataset, window: Window | None = None, frame: int = 0,
    function: str = "linear",
) -> np.ndarray:
    """Map a decoded frame to 8 bits: modality LUT, VOI (window) and MONOCHROME1 inversion.

    function is the VOI LUT function of an explicit window: linear, linear-exact or sigmoid.
    """
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric == "PALETTE COLOR":
        return _scale_color(apply_color_lut(arr, ds))
    if arr.ndim == 3:
        # RGB as stored; YBR_FULL(_422) already converted by pixel_array, and the JPEG 2000
        # YBR_ICT/YBR_RCT colour transforms are undone by the decoder itself.
        return _scale_color(arr, int(ds.get("BitsStored", 8) or 8))
    values = apply_modality_lut(arr, ds).astype(np.float32, copy=False)
    if window is not None:
        out = apply_window(values, *window, function=function)
    elif (window := default_window(ds)) is not None:
        out = apply_window(values, *window)
    elif "VOILUTSequence" in ds:
        try:
            voi = apply_voi_lut(np.rint(values).astype(np.int64), ds, index=0)
        except (ValueError, IndexError, TypeError, AttributeError):
            voi = values  # a malformed LUT should not hide the image: stretch instead
        out = _min_max(voi.astype(np.float32, copy=False))
    else:
        out = _min_max(values)
    if photometric == "MONOCHROME1":
        np.subtract(255, out, out=out)
    return out


WINDOW_FUNCTIONS = ("linear", "linear-exact", "sigmoid")


def apply_window(values: np.ndarray, center: float, width: float,
                 function: str = "linear") -> np.ndarray:
    """Apply a DICOM window to 8-bit output: linear (PS3.3 C.11.2.1.2), linear-exact or
    sigmoid (C.11.2.1.3)."""
    if function == "linear-exact":
        scaled = ((values - center) / max(float(width), 1e-6) + 0.5) * 255.0
        return np.clip(scaled, 0, 255, out=scaled).astype(np.uint8)
    if function == "sigmoid":
        z = np.clip(-4.0 * (values - center) / max(float(width), 1e-6), -60, 60)
        return (255.0 / (1.0 + np.exp(z))).astype(np.uint8)
    width = max(float(width), 1.0)
    low = center - 0.5 - (width - 1) / 2
    scaled = (values - low) * (255.0 / max(width - 1, 1.0))
    return np.clip(scaled, 0, 255, out=scaled).astype(np.uint8)


def _min_max(values: np.ndarray) -> np.ndarray:
    """Stretch values linearly from their minimum and maximum to 0..255."""
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size == 0:
        return np.zeros(values.shape, np.uint8)
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.zeros(values.shape, np.uint8)
    scaled = (np.nan_to_num(values, nan=low) - low) * (255.0 / (high - low))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _scale_color(arr: np.ndarray, bits_stored: int | None = None) -> np.ndarray:
    """Bring a colour array to 8 bits per sample."""
    if arr.dtype == np.uint8:
        return arr
    bits = bits_stored or (16 if arr.max(initial=0) > 255 else 8)
    return (arr.astype(np.uint32) >> max(bits - 8, 0)).clip(0, 255).astype(np.uint8)


def _png(image: Image.Image) -> bytes:
    """Encode an image as PNG, favouring speed (level 1 is ~3x faster than the default)."""
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _frames(ds: Dataset) -> int:
    """Return NumberOfFrames, defaulting to 1."""
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _is_multi(value: object) -> bool:
    """Tell whether a pydicom value holds several values."""
    return isinstance(value, list | tuple) or type(value).__name__ == "MultiValue"


def _short(exc: BaseException) -> str:
    """Return a one-line, bounded description of an exception."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]


@contextlib.contextmanager
def _open(src: Source) -> Iterator[BinaryIO]:
    """Open a path, wrap bytes, or pass a stream through (rewound)."""
    if isinstance(src, bytes | bytearray | memoryview):
        yield io.BytesIO(src)
    elif isinstance(src, str | os.PathLike):
        with open(src, "rb") as fp:
            yield fp
    else:
        src.seek(0)
        yield src
