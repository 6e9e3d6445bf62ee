"""Draw a viewer's marks (SCOORD regions) on a rendered frame: a key image with its marks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PIL import Image, ImageDraw

from .render import Source, _png, load_frame, to_uint8

MARK_COLOUR = (255, 200, 0)  # amber: visible on grey scale
LABEL_COLOUR = (255, 255, 255)


def render_marked(src: Source, frame: int, regions: Iterable[dict], size: int = 512) -> bytes:
    """Render frame (0-based) of src with each 2D region drawn, fitted to size x size, PNG.

    A region is a dict with "graphic_type" and "points" ([[column, row], ...] in image
    pixels, as SCOORD holds them) and an optional "label".
    """
    ds, arr = load_frame(src, frame)
    image = Image.fromarray(to_uint8(arr, ds, None, frame)).convert("RGB")
    width = max(1, round(max(image.size) / 256))
    draw = ImageDraw.Draw(image)
    for n, region in enumerate(regions, 1):
        draw_region(draw, region.get("graphic_type") or "", region.get("points") or [],
                    width, str(n))
    image.thumbnail((size, size), Image.Resampling.BILINEAR)
    return _png(image)


def draw_region(draw: ImageDraw.ImageDraw, gtype: str, points: Sequence[Sequence[float]],
                width: int, tag: str = "") -> None:
    """Draw one graphic: POINT/MULTIPOINT as crosses, POLYLINE open, POLYGON closed,
    CIRCLE (centre, edge point) and ELLIPSE (major axis ends, minor axis ends)."""
    pts = [(float(p[0]), float(p[1])) for p in points if len(p) >= 2]
    if not pts:
        return
    r = 3 * width
    if gtype in ("POINT", "MULTIPOINT"):
        for x, y in pts:
            draw.line([(x - r, y), (x + r, y)], fill=MARK_COLOUR, width=width)
            draw.line([(x, y - r), (x, y + r)], fill=MARK_COLOUR, width=width)
    elif gtype == "POLYLINE":
        draw.line(pts, fill=MARK_COLOUR, width=width)
        for x, y in (pts[0], pts[-1]):
            draw.ellipse([x - width, y - width, x + width, y + width], fill=MARK_COLOUR)
    elif gtype == "POLYGON":
        draw.line([*pts, pts[0]], fill=MARK_COLOUR, width=width)
    elif gtype == "CIRCLE" and len(pts) == 2:
        (cx, cy), (ex, ey) = pts
        rad = ((ex - cx) ** 2 + (ey - cy) ** 2) ** 0.5
        draw.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], outline=MARK_COLOUR, width=width)
    elif gtype == "ELLIPSE" and len(pts) == 4:
        draw.polygon(_ellipse_outline(pts), outline=MARK_COLOUR, width=width)
    else:
        draw.line(pts, fill=MARK_COLOUR, width=width)
    if tag:
        x, y = pts[0]
        draw.text((x + r, y + r), tag, fill=LABEL_COLOUR)


def _ellipse_outline(pts: list[tuple[float, float]], steps: int = 72) -> list[tuple[float, float]]:
    """Return the outline of an ellipse given by its major then minor axis end points
    (any orientation)."""
    import math

    (ax1, ay1), (ax2, ay2), (bx1, by1), (bx2, by2) = pts
    cx, cy = (ax1 + ax2) / 2, (ay1 + ay2) / 2
    a = math.hypot(ax2 - ax1, ay2 - ay1) / 2
    b = math.hypot(bx2 - bx1, by2 - by1) / 2
    angle = math.atan2(ay2 - ay1, ax2 - ax1)
    cos, sin = math.cos(angle), math.sin(angle)
    out = []
    for k in range(steps):
        t = 2 * math.pi * k / steps
        x, y = a * math.cos(t), b * math.sin(t)
        out.append((cx + x * cos - y * sin, cy + x * sin + y * cos))
    return out
