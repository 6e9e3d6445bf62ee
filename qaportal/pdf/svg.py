"""Small inline SVG charts for printed reports (no JavaScript, no external files)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape


def bar_chart(items: Sequence[tuple[str, float]], *, width: int = 520, bar_height: int = 14,
              label_width: int = 170, unit: str = "") -> Markup:
    """Return a horizontal bar chart of (label, value) pairs as an <svg> element."""
    gap = 5
    height = max(1, len(items)) * (bar_height + gap) + gap
    top = max((v for _, v in items), default=0) or 1
    room = width - label_width - 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'font-family="DejaVu Sans, sans-serif">'
    ]
    for i, (label, value) in enumerate(items):
        y = gap + i * (bar_height + gap)
        w = max(1.0, room * value / top) if value else 0
        text_y = y + bar_height - 3
        parts.append(
            f'<text x="{label_width - 6}" y="{text_y}" text-anchor="end" '
            f'font-size="8" fill="#374151">{escape(str(label)[:40])}</text>'
            f'<rect x="{label_width}" y="{y}" width="{w:.1f}" height="{bar_height}" '
            f'rx="2" fill="#0f4c81"/>'
            f'<text x="{label_width + w + 4:.1f}" y="{text_y}" font-size="8" '
            f'fill="#111827">{escape(_fmt(value))}{escape(unit)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
