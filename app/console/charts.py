"""Small charts drawn server-side as inline SVG: no chart library, no script, prints well."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#c0392b", "#2471a3", "#229954", "#b9770e", "#7d3c98", "#566573")
W, H, LEFT, BOTTOM, TOP, RIGHT = 600, 220, 44, 24, 10, 10


def _scale(top: float) -> float:
    """A round axis maximum at or above ``top``."""
    if top <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(top))
    for step in (1, 2, 5, 10):
        if magnitude * step >= top:
            return magnitude * step
    return top


def _fmt(value: float, percent: bool) -> str:
    if percent:
        return f"{value * 100:.0f}%"
    return f"{value:,.2f}".rstrip("0").rstrip(".")  # 2,500 · 0.75: small axes keep their steps


def _frame(labels: Sequence[str], top: float, percent: bool) -> list[str]:
    parts = []
    for i in range(5):
        y = TOP + (H - TOP - BOTTOM) * i / 4
        value = top * (4 - i) / 4
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
            f"{_fmt(value, percent)}</text>"
        )
    n = len(labels)
    every = max(1, n // 6)
    for i, label in enumerate(labels):
        if i % every == 0:
            x = _x(i, n)
            parts.append(
                f'<text x="{x:.1f}" y="{H - 6}" class="axis" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    return parts


def _x(i: int, n: int) -> float:
    if n <= 1:
        return (LEFT + W - RIGHT) / 2
    return LEFT + (W - LEFT - RIGHT) * i / (n - 1)


def _legend(names: Sequence[str]) -> str:
    items = "".join(
        f'<span class="legend-item"><i style="background:{PALETTE[i % len(PALETTE)]}"></i>'
        f"{escape(name)}</span>"
        for i, name in enumerate(names)
    )
    return f'<div class="legend">{items}</div>'


def line_chart(
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    percent: bool = False,
    title: str = "",
) -> Markup:
    values = [v for vs in series.values() for v in vs if v is not None]
    top = _scale(max(values, default=0))
    parts = _frame(labels, top, percent)
    n = len(labels)
    for k, (_name, vs) in enumerate(series.items()):
        points = [
            f"{_x(i, n):.1f},{TOP + (H - TOP - BOTTOM) * (1 - (v or 0) / top):.1f}"
            for i, v in enumerate(vs)
            if v is not None
        ]
        color = PALETTE[k % len(PALETTE)]
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(points)}"/>'
        )
    svg = (
        f'<svg viewBox="0 0 {W} {H}" class="chart" role="img" aria-label="{escape(title)}">'
        + "".join(parts)
        + "</svg>"
    )
    return Markup(svg + _legend(list(series)))  # noqa: S704  (every text in it is escaped)


def stacked_bars(
    labels: Sequence[str], series: dict[str, Sequence[float]], *, title: str = ""
) -> Markup:
    n = len(labels)
    totals = [sum(vs[i] or 0 for vs in series.values()) for i in range(n)]
    top = _scale(max(totals, default=0))
    parts = _frame(labels, top, False)
    width = max(2.0, (W - LEFT - RIGHT) / max(n, 1) * 0.7)
    for i in range(n):
        base = 0.0
        for k, vs in enumerate(series.values()):
            value = vs[i] or 0
            if not value:
                continue
            y0 = TOP + (H - TOP - BOTTOM) * (1 - (base + value) / top)
            h = (H - TOP - BOTTOM) * value / top
            x = _x(i, n) - width / 2
            parts.append(
                f'<rect x="{x:.1f}" y="{y0:.1f}" width="{width:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[k % len(PALETTE)]}"/>'
            )
            base += value
    svg = (
        f'<svg viewBox="0 0 {W} {H}" class="chart" role="img" aria-label="{escape(title)}">'
        + "".join(parts)
        + "</svg>"
    )
    return Markup(svg + _legend(list(series)))  # noqa: S704  (every text in it is escaped)
