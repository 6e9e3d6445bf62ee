"""Server-side SVG charts for the QA statistics (no JavaScript, no inline styles).

Every number drawn (control limits, a point's position) comes from qaportal.qa.stats, the
one tested module; this file only places them on the canvas.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from html import escape

_POINT_COLOURS = {"high99": "#b91c1c", "high95": "#c2410c", "within": "#1d4ed8",
                  "low95": "#047857", "low99": "#047857"}


def _nice_max(value: float) -> float:
    """Return a round axis maximum at or above value."""
    if value <= 0:
        return 0.01
    exp = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10 ** exp
        if top >= value - 1e-12:
            return top
    return 10 ** (exp + 1)


def _pct(v: float) -> str:
    return f"{v * 100:.1f}%" if v < 0.1 else f"{v * 100:.0f}%"


def funnel_svg(points: Sequence[tuple[str, int, int]], p: float, *, width: int = 640,
               height: int = 380, title: str = "Significant-discrepancy rate by review count",
               labels: bool | Collection[str] = True, highlight: str | None = None) -> str:
    """Draw a funnel plot: (label, n, k) points, department rate p, 95 % and 99.8 % limits.

    labels: True (every point), False (none) or the labels to print; highlight: the label
    of one point drawn larger, ringed, labelled and on top of the others.
    """
    from qaportal.qa import stats  # imported here: stats re-exports this module's charts

    def limit(n: float, z: float) -> tuple[float, float]:
        (_, low, high), = stats.funnel_limits(p, [n], z)
        return low, high

    ml, mr, mt, mb = 56, 16, 28, 44
    pw, ph = width - ml - mr, height - mt - mb
    n_max = max([n for _, n, _ in points] + [10])
    x_max = _nice_max(n_max * 1.05)
    rates = [k / n for _, n, k in points if n]
    y_max = _nice_max(min(1.0, max(rates + [p * 2, limit(max(n_max / 10, 3), stats.Z998)[1]])
                          * 1.1))

    def x(n: float) -> float:
        return ml + pw * n / x_max

    def y(r: float) -> float:
        return mt + ph * (1 - min(r, y_max) / y_max)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" class="chart funnel" '
        f'font-family="DejaVu Sans, sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="{ml}" y="16" font-size="12" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="#fff" stroke="#cbd5e1"/>',
    ]
    for i in range(6):
        r = y_max * i / 5
        out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{y(r):.1f}" y2="{y(r):.1f}" '
                   f'stroke="#eef2f7"/>')
        out.append(f'<text x="{ml - 6}" y="{y(r) + 4:.1f}" text-anchor="end">{_pct(r)}</text>')
    for i in range(6):
        n = x_max * i / 5
        out.append(f'<text x="{x(n):.1f}" y="{mt + ph + 16}" text-anchor="middle">'
                   f"{n:.0f}</text>")
    out.append(f'<text x="{ml + pw / 2:.1f}" y="{height - 8}" text-anchor="middle">'
               "Reviews (n)</text>")
    steps = [max(1.0, x_max * i / 120) for i in range(1, 121)]
    for z, dash, name in ((stats.Z95, "6 4", "95%"), (stats.Z998, "2 3", "99.8%")):
        for side in (0, 1):
            pts = " ".join(f"{x(n):.1f},{y(limit(n, z)[side]):.1f}" for n in steps)
            out.append(f'<polyline points="{pts}" fill="none" stroke="#6b7280" '
                       f'stroke-dasharray="{dash}" class="limit limit-{name}"/>')
    out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{y(p):.1f}" y2="{y(p):.1f}" '
               f'stroke="#0f4c81" stroke-width="1.5" class="department"/>')
    out.append(f'<text x="{ml + pw - 4}" y="{y(p) - 4:.1f}" text-anchor="end" fill="#0f4c81">'
               f"department {_pct(p)}</text>")
    ordered = sorted(points, key=lambda pt: pt[0] == highlight)  # the highlight on top
    for label, n, k in ordered:
        if not n:
            continue
        r = k / n
        pos = stats.funnel_position(p, n, k)
        if highlight is not None and label == highlight:
            out.append(f'<circle cx="{x(n):.1f}" cy="{y(r):.1f}" r="9" fill="none" '
                       f'stroke="#111827" stroke-width="2" class="highlight-ring"/>')
            out.append(f'<circle cx="{x(n):.1f}" cy="{y(r):.1f}" r="5.5" '
                       f'fill="{_POINT_COLOURS[pos]}" class="point highlight {pos}">'
                       f"<title>{escape(label)}: {k}/{n} = {_pct(r)}</title></circle>")
            # Above the point (below it near the top), clear of the department's label.
            anchor = "end" if x(n) > ml + pw * 0.75 else "start" if x(n) < ml + pw * 0.25 \
                else "middle"
            ty = y(r) - 14 if y(r) - 14 > mt + 24 else y(r) + 22
            out.append(f'<text x="{x(n):.1f}" y="{ty:.1f}" text-anchor="{anchor}" '
                       f'font-weight="bold" class="highlight-label">{escape(label)}</text>')
            continue
        fill = "#94a3b8" if highlight is not None and pos == "within" else _POINT_COLOURS[pos]
        out.append(f'<circle cx="{x(n):.1f}" cy="{y(r):.1f}" r="4.5" '
                   f'fill="{fill}" class="point {pos}">'
                   f"<title>{escape(label)}: {k}/{n} = {_pct(r)}</title></circle>")
        if labels is True or (labels and not isinstance(labels, bool) and label in labels):
            out.append(f'<text x="{x(n) + 7:.1f}" y="{y(r) + 4:.1f}">{escape(label)}</text>')
    out.append(f'<text x="{ml + 4}" y="{mt + 12}" fill="#6b7280">'
               "dashed: 95% limits · dotted: 99.8% limits</text>")
    out.append("</svg>")
    return "\n".join(out)


def trend_svg(months: Sequence[tuple[str, int, int]], p: float | None = None, *,
              width: int = 640, height: int = 260,
              title: str = "Monthly significant-discrepancy rate") -> str:
    """Draw the monthly rate as a line with review counts as bars: (month, n, k) entries."""
    ml, mr, mt, mb = 56, 16, 28, 48
    pw, ph = width - ml - mr, height - mt - mb
    rates = [k / n for _, n, k in months if n]
    y_max = _nice_max(max(rates + [p or 0, 0.01]) * 1.15)
    n_max = max([n for _, n, _ in months] + [1])
    count = max(len(months), 1)
    slot = pw / count

    def xc(i: int) -> float:
        return ml + slot * (i + 0.5)

    def y(r: float) -> float:
        return mt + ph * (1 - min(r, y_max) / y_max)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" class="chart trend" '
        f'font-family="DejaVu Sans, sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="{ml}" y="16" font-size="12" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="#fff" stroke="#cbd5e1"/>',
    ]
    for i in range(5):
        r = y_max * i / 4
        out.append(f'<text x="{ml - 6}" y="{y(r) + 4:.1f}" text-anchor="end">{_pct(r)}</text>')
    for i, (month, n, _k) in enumerate(months):
        bh = ph * 0.35 * n / n_max
        out.append(f'<rect x="{xc(i) - slot * 0.3:.1f}" y="{mt + ph - bh:.1f}" '
                   f'width="{slot * 0.6:.1f}" height="{bh:.1f}" fill="#e0ecff" class="volume">'
                   f"<title>{escape(month)}: {n} reviews</title></rect>")
        out.append(f'<text x="{xc(i):.1f}" y="{mt + ph + 14}" text-anchor="middle" '
                   f'font-size="9">{escape(month[2:])}</text>')
    if p is not None:
        out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{y(p):.1f}" y2="{y(p):.1f}" '
                   f'stroke="#0f4c81" stroke-dasharray="6 4" class="department"/>')
    pts = [(xc(i), y(k / n)) for i, (_, n, k) in enumerate(months) if n]
    if pts:
        out.append('<polyline points="' + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
                   + '" fill="none" stroke="#b91c1c" stroke-width="1.5" class="rate"/>')
    for i, (month, n, k) in enumerate(months):
        if n:
            out.append(f'<circle cx="{xc(i):.1f}" cy="{y(k / n):.1f}" r="3" fill="#b91c1c">'
                       f"<title>{escape(month)}: {k}/{n} = {_pct(k / n)}</title></circle>")
    out.append(f'<text x="{ml + pw / 2:.1f}" y="{height - 8}" text-anchor="middle">'
               "Month of the original read (bars: number of reviews)</text>")
    out.append("</svg>")
    return "\n".join(out)
