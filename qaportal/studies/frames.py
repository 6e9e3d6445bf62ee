"""Rendered frames for the viewer: anatomical order, verified reads, a bounded disk cache.

No request objects here: the views pass model objects, the store and the cache, so a
worker could pre-render frames with the same code.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pydicom.pixels import apply_modality_lut

from qaportal.dicom import DicomRejected, FilesystemStore, StoredFileCorrupt, StoredFileMissing
from qaportal.dicom.render import load_frame, to_uint8
from qaportal.dicom.render_options import RenderOptions, apply_viewport, encode
from qaportal.dicom.verified import VerifiedFiles
from qaportal.disk_cache import DiskCache
from qaportal.models import Instance

log = logging.getLogger(__name__)

Window = tuple[float, float]
INTEGRITY_ERROR = "integrity check failed: the stored file does not match its SHA-256"
MISSING_ERROR = "the stored file is missing"
COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR"}


@dataclass(frozen=True)
class FrameRef:
    """One displayable frame of a series, in anatomical order."""

    instance: Instance
    frame: int


@dataclass(frozen=True)
class Rendered:
    """A rendered image, or a placeholder PNG with the reason the frame could not be shown."""

    png: bytes  # the image bytes (JPEG or GIF too, see mimetype)
    etag: str
    error: str | None = None
    cached: bool = False
    mimetype: str = "image/png"


def ordered_frames(instances: Iterable[Instance]) -> list[FrameRef]:
    """Sort by slice position, then instance number, then id; expand multi-frame instances."""

    def key(i: Instance) -> tuple:
        pos = i.slice_position
        num = i.instance_number
        return (pos is None, pos if pos is not None else 0.0,
                num is None, num if num is not None else 0, i.id)

    return [FrameRef(inst, n) for inst in sorted(instances, key=key)
            for n in range(max(1, inst.frames or 1))]


def is_colour(instance: Instance) -> bool:
    """Tell whether the instance holds colour pixels (a window does not apply)."""
    return (instance.photometric_interpretation or "").strip().upper() in COLOUR


def round_window(center: float, width: float) -> Window:
    """Round a window to 3 significant digits of its width (at most to 1), so caches repeat."""
    step = min(1.0, 10.0 ** (math.floor(math.log10(max(width, 1e-6))) - 2))
    digits = max(0, -math.floor(math.log10(step)))
    return (round(round(center / step) * step, digits), round(round(width / step) * step, digits))


def parse_window(wc: str | None, ww: str | None) -> Window | None:
    """Return the requested window, None for the file's own; ValueError when malformed."""
    if not wc and not ww:
        return None
    center, width = float(wc or ""), float(ww or "")
    if not (math.isfinite(center) and math.isfinite(width)) or width <= 0:
        raise ValueError("window out of range")
    if abs(center) > 1e7 or width > 1e7:
        raise ValueError("window out of range")
    return round_window(center, width)


class FrameRenderer:
    """Render frames of stored instances through the cache, verifying files on a miss."""

    def __init__(self, store: FilesystemStore, cache: DiskCache, max_pixels: int,
                 verified: VerifiedFiles | None = None) -> None:
        self.store = store
        # Which files were checked: in this process only unless given a shared record.
        self.verified = verified if verified is not None else VerifiedFiles(store)
        self.cache = cache
        self.max_pixels = max_pixels
        self.renders = 0  # frames actually decoded by this process (for tests and benchmarks)
        self._auto: OrderedDict[tuple, Window | None] = OrderedDict()

    def frame(self, inst: Instance, frame: int, window: Window | None) -> Rendered:
        """Return the PNG of one frame (cached), or a placeholder naming what went wrong."""
        wkey = "auto" if window is None else f"{window[0]:g},{window[1]:g}"
        key = self.cache.key("frame", inst.id, inst.sha256, frame, wkey)
        hit = self.cache.get(key)
        if hit is not None:
            return Rendered(hit, etag=key[:32], cached=True)
        return self._render(inst, key, lambda p: self._frame_png(p, frame, window))

    def thumbnail(self, inst: Instance, frame: int, size: int = 128) -> Rendered:
        """Return a small PNG of one frame (cached) to pick a series by."""
        key = self.cache.key("thumb", inst.id, inst.sha256, frame, size)
        hit = self.cache.get(key)
        if hit is not None:
            return Rendered(hit, etag=key[:32], cached=True)
        return self._render(inst, key, lambda p: self._thumb_png(p, frame, size))

    def rendered(self, inst: Instance, frame: int, options: RenderOptions) -> Rendered:
        """Return one frame rendered as asked (DICOMweb rendered and thumbnail resources).

        A failure is a placeholder PNG with the reason in .error (the caller decides).
        """
        key = self._rendered_key(inst, frame, options)
        mimetype = "image/" + options.fmt
        hit = self.cache.get(key, options.extension)
        if hit is not None:
            return Rendered(hit, etag=key[:32], cached=True, mimetype=mimetype)
        result = self._render(inst, key, lambda p: self._options_image(p, frame, options),
                              options.extension)
        return result if result.error else Rendered(result.png, result.etag,
                                                    mimetype=mimetype)

    def rendered_etag(self, inst: Instance, frame: int, options: RenderOptions) -> str:
        """Return the ETag rendered() gives this frame and these options (without rendering)."""
        return self._rendered_key(inst, frame, options)[:32]

    def _rendered_key(self, inst: Instance, frame: int, options: RenderOptions) -> str:
        return self.cache.key("rendered", inst.id, inst.sha256, frame, options.key())

    def verified_path(self, inst: Instance) -> Path:
        """Return the stored file's path after checking its SHA-256 (once per file state)."""
        return self._verified_path(inst)

    def auto_window(self, inst: Instance, frame: int = 0) -> Window | None:
        """Return a window spanning the frame's values (for files without one of their own)."""
        memo_key = (inst.id, inst.sha256, frame)
        if memo_key in self._auto:
            return self._auto[memo_key]
        window = None
        if not is_colour(inst):
            try:
                path = self._verified_path(inst)
                ds, arr = load_frame(path, frame, self.max_pixels)
                values = apply_modality_lut(arr, ds)
                low, high = float(np.min(values)), float(np.max(values))
                if high > low:
                    window = round_window((low + high) / 2, high - low)
            except (DicomRejected, StoredFileCorrupt, StoredFileMissing, ValueError):
                window = None
        _remember(self._auto, memo_key, window)
        return window

    def _render(self, inst: Instance, key: str, make, ext: str = "png") -> Rendered:
        try:
            png = make(self._verified_path(inst))
        except StoredFileCorrupt:
            return _failed(INTEGRITY_ERROR, inst)
        except StoredFileMissing:
            return _failed(MISSING_ERROR, inst)
        except DicomRejected as exc:
            return _failed(exc.reason, inst)
        except Exception as exc:  # never a 500 for one bad frame: show why instead
            log.exception("rendering instance %s failed", inst.id)
            return _failed(f"cannot display frame: {type(exc).__name__}", inst)
        self.renders += 1
        try:
            self.cache.put(key, png, ext)
        except OSError:
            log.warning("frame cache write failed", exc_info=True)
        return Rendered(png, etag=key[:32])

    def read_verified(self, inst) -> bytes:
        """Return the stored file's bytes, checked against its SHA-256 once per file state
        (see qaportal.dicom.verified). `inst` needs storage_key and sha256."""
        return self.verified.read_bytes(inst.storage_key, inst.sha256)

    def _verified_path(self, inst: Instance) -> Path:
        """Return the stored file's path after checking its SHA-256 (once per file state)."""
        return self.verified.checked_path(inst.storage_key, inst.sha256)

    def _frame_png(self, path: Path, frame: int, window: Window | None) -> bytes:
        ds, arr = load_frame(path, frame, self.max_pixels)
        return _png(Image.fromarray(to_uint8(arr, ds, window, frame)))

    def _options_image(self, path: Path, frame: int, options: RenderOptions) -> bytes:
        ds, arr = load_frame(path, frame, self.max_pixels)
        image = Image.fromarray(to_uint8(arr, ds, options.window, frame, options.function))
        image = apply_viewport(image, options.viewport, options.thumbnail)
        return encode(image, options.fmt, options.quality)

    def _thumb_png(self, path: Path, frame: int, size: int) -> bytes:
        ds, arr = load_frame(path, frame, self.max_pixels)
        image = Image.fromarray(to_uint8(arr, ds, None, frame))
        image.thumbnail((size, size), Image.Resampling.BILINEAR)
        return _png(image)


def _remember(memo: OrderedDict, key: tuple, value: object, limit: int = 50_000) -> None:
    memo[key] = value
    if len(memo) > limit:
        memo.popitem(last=False)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _failed(reason: str, inst: Instance) -> Rendered:
    png = placeholder_png(reason, inst.columns or 256, inst.rows or 256)
    return Rendered(png, etag="err-" + hashlib.sha256(png).hexdigest()[:24], error=reason)


def placeholder_png(reason: str, width: int = 256, height: int = 256) -> bytes:
    """Draw a grey image saying the frame cannot be displayed, and why."""
    w = min(max(int(width), 64), 1024)
    h = min(max(int(height), 64), 1024)
    image = Image.new("L", (w, h), 64)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, w - 1, h - 1], outline=160)
    lines = ["cannot display frame", *_wrap(reason, max(10, w // 7))]
    y = max(4, h // 2 - 7 * len(lines))
    for line in lines:
        draw.text((6, y), line, fill=230)
        y += 14
    return _png(image)


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return lines[:6]
