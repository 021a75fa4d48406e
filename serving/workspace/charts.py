"""Charts drawn on the server as inline SVG: no script, no library, nothing to fetch.

Small on purpose: lines over a shared x axis (lift, capture, score history, calibration)
with axes, ticks and a legend. Values are numbers the server computed; labels are
escaped (a lead id or a rule name can hold anything).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 560, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 36, 16, 40
COLOURS = ("#2457a6", "#d9822b", "#2e8b57", "#9b59b6")


@dataclass(frozen=True)
class Series:
    name: str
    x: Sequence[float]
    y: Sequence[float]
    dashed: bool = False
    points: bool = False  # a dot at every value


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * step:
            step *= factor
            break
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step) + 1)]


def line_chart(
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    title: str,
    x_format: str = "{:g}",
    y_format: str = "{:g}",
    x_ticks: Sequence[tuple[float, str]] | None = None,
    y_min: float | None = None,
    diagonal: bool = False,
) -> str:
    """An SVG line chart of ``series`` (the same axes); returns markup to put in a page."""
    xs = [v for s in series for v in s.x if math.isfinite(v)]
    ys = [v for s in series for v in s.y if math.isfinite(v)]
    if not xs or not ys:
        return f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{WIDTH}" height="{HEIGHT}"></svg>'
    x0, x1 = min(xs), max(xs)
    y0 = min(ys) if y_min is None else min(y_min, *ys)
    y1 = max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    if diagonal:
        y0, y1 = min(y0, x0), max(y1, x1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#ccd"/>',
    ]
    for t in _ticks(y0, y1):
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eef"/>'
            f'<text x="{LEFT - 6}" y="{py(t) + 4:.1f}" text-anchor="end" class="tick">'
            f"{escape(y_format.format(t))}</text>"
        )
    ticks = x_ticks if x_ticks is not None else [(t, x_format.format(t)) for t in _ticks(x0, x1)]
    for t, text in ticks:
        parts.append(
            f'<text x="{px(t):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" class="tick">'
            f"{escape(text)}</text>"
        )
    if diagonal:
        parts.append(
            f'<line x1="{px(x0):.1f}" y1="{py(x0):.1f}" x2="{px(x1):.1f}" y2="{py(x1):.1f}" '
            'stroke="#999" stroke-dasharray="4 4"/>'
        )
    for k, s in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(y):.1f}"
            for i, (x, y) in enumerate(
                (x, y) for x, y in zip(s.x, s.y, strict=True) if math.isfinite(y)
            )
        )
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        if s.points:
            for x, y in zip(s.x, s.y, strict=True):
                if math.isfinite(y):
                    parts.append(
                        f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>'
                    )
        parts.append(
            f'<rect x="{LEFT + 10 + 150 * k}" y="{HEIGHT - 12}" width="12" height="4" fill="{colour}"/>'
            f'<text x="{LEFT + 26 + 150 * k}" y="{HEIGHT - 6}" class="legend">{escape(s.name)}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w}" y="{TOP + plot_h + 30}" text-anchor="end" class="axis">'
        f"{escape(x_label)}</text>"
        f'<text x="12" y="{TOP + 10}" class="axis" transform="rotate(-90 12 {TOP + 10})" '
        f'text-anchor="end">{escape(y_label)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
