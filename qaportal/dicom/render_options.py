"""How a rendered image is asked for (PS3.18 rendered and thumbnail resources): the
`window`, `viewport` and `quality` query parameters, applied to an 8-bit image and encoded
as JPEG, PNG or GIF. Values are parsed strictly: a malformed one raises ValueError (a 400).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image

from .render import WINDOW_FUNCTIONS

MAX_VIEWPORT_SIDE = 8192
DEFAULT_QUALITY = 90
THUMBNAIL_SIDE = 128
FORMATS = {"image/jpeg": "jpeg", "image/png": "png", "image/gif": "gif"}


@dataclass(frozen=True)
class Viewport:
    """Scale the (optionally cropped and flipped) source region to fit width x height."""

    width: int
    height: int
    # Source region in image pixels: left, top, width, height; a negative size flips.
    region: tuple[float, float, float, float] | None = None

    def key(self) -> str:
        region = "" if self.region is None else ",".join(f"{v:g}" for v in self.region)
        return f"{self.width}x{self.height}:{region}"


@dataclass(frozen=True)
class RenderOptions:
    """Everything that decides a rendered image's bytes (and so its cache key)."""

    fmt: str = "jpeg"  # jpeg, png or gif
    window: tuple[float, float] | None = None  # None: the file's own (or its values' range)
    function: str = "linear"
    viewport: Viewport | None = None
    quality: int = DEFAULT_QUALITY
    thumbnail: bool = False  # no viewport: shrink to fit a THUMBNAIL_SIDE box

    def key(self) -> str:
        window = "auto" if self.window is None else f"{self.window[0]:g},{self.window[1]:g}"
        viewport = "-" if self.viewport is None else self.viewport.key()
        quality = self.quality if self.fmt == "jpeg" else "-"
        return f"{self.fmt}:{window}:{self.function}:{viewport}:{quality}:{int(self.thumbnail)}"

    @property
    def extension(self) -> str:
        return {"jpeg": "jpg"}.get(self.fmt, self.fmt)


def parse_window(text: str | None) -> tuple[tuple[float, float] | None, str]:
    """Parse `window=center,width[,function]`; return ((center, width) or None, function)."""
    if text is None or not text.strip():
        return None, "linear"
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 3):
        raise ValueError("window must be center,width[,function]")
    center, width = float(parts[0]), float(parts[1])
    function = parts[2].lower() if len(parts) == 3 else "linear"
    if function not in WINDOW_FUNCTIONS:
        raise ValueError("window function must be linear, linear-exact or sigmoid")
    if not (math.isfinite(center) and math.isfinite(width)) or width <= 0:
        raise ValueError("window width must be a positive number")
    if abs(center) > 1e7 or width > 1e7:
        raise ValueError("window out of range")
    return (center, width), function


def parse_viewport(text: str | None, max_pixels: int) -> Viewport | None:
    """Parse `viewport=vw,vh[,sx,sy,sw,sh]` (sizes in pixels; sw or sh < 0 flips)."""
    if text is None or not text.strip():
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 6):
        raise ValueError("viewport must be vw,vh or vw,vh,sx,sy,sw,sh")
    width, height = int(parts[0]), int(parts[1])
    if not (0 < width <= MAX_VIEWPORT_SIDE and 0 < height <= MAX_VIEWPORT_SIDE) or (
            width * height > max_pixels):
        raise ValueError(f"viewport sides must be 1 to {MAX_VIEWPORT_SIDE} pixels")
    region = None
    if len(parts) == 6:
        sx, sy, sw, sh = (float(p) for p in parts[2:])
        if not all(math.isfinite(v) for v in (sx, sy, sw, sh)) or sx < 0 or sy < 0 \
                or sw == 0 or sh == 0:
            raise ValueError("viewport source region must have sx, sy >= 0 and sw, sh != 0")
        region = (sx, sy, sw, sh)
    return Viewport(width, height, region)


def parse_quality(text: str | None) -> int:
    """Parse `quality` (1-100, for lossy formats)."""
    if text is None or not text.strip():
        return DEFAULT_QUALITY
    quality = int(text)
    if not 1 <= quality <= 100:
        raise ValueError("quality must be 1 to 100")
    return quality


def region_fits(viewport: Viewport | None, width: int | None, height: int | None) -> bool:
    """Tell whether a viewport's source region overlaps an image of width x height."""
    if viewport is None or viewport.region is None or not width or not height:
        return True
    sx, sy, sw, sh = viewport.region
    return (min(sx, sx + sw) < width and min(sy, sy + sh) < height
            and max(sx, sx + sw) > 0 and max(sy, sy + sh) > 0)


def apply_viewport(image: Image.Image, viewport: Viewport | None, thumbnail: bool) -> Image.Image:
    """Crop and flip to the source region, then scale to fit the viewport keeping aspect."""
    if viewport is None:
        if thumbnail:
            image = image.copy()
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR)
        return image
    if viewport.region is not None:
        sx, sy, sw, sh = viewport.region
        left, right = sorted((sx, sx + sw))
        top, bottom = sorted((sy, sy + sh))
        box = (max(0, math.floor(left)), max(0, math.floor(top)),
               min(image.width, math.ceil(right)), min(image.height, math.ceil(bottom)))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError("viewport source region lies outside the image")
        image = image.crop(box)
        if sw < 0:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if sh < 0:
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    scale = min(viewport.width / image.width, viewport.height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size != image.size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    return image


def encode(image: Image.Image, fmt: str, quality: int = DEFAULT_QUALITY) -> bytes:
    """Encode an 8-bit grey or RGB image (PNG favouring speed, as the viewer's)."""
    buf = io.BytesIO()
    if fmt == "jpeg":
        image.save(buf, "JPEG", quality=quality)
    elif fmt == "gif":
        image.save(buf, "GIF")
    else:
        image.save(buf, "PNG", compress_level=1)
    return buf.getvalue()
