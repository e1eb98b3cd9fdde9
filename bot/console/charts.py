"""Server-rendered SVG charts: readable without JavaScript, every text escaped.

Values are plain numbers; labels and titles pass through :func:`html.escape`, so the
SVG can be inlined into a page safely.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

WIDTH = 640
HEIGHT = 220
PAD_LEFT = 44
PAD_RIGHT = 12
PAD_TOP = 14
PAD_BOTTOM = 34
COLORS = ("#0f766e", "#b91c1c", "#1d4ed8", "#b45309")


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart: a name and a value per label (``None``: no data)."""

    name: str
    values: Sequence[float | None]


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _number(value: float, unit: str, *, fine: bool = False) -> str:
    if unit == "%":
        return f"{value:.1f}%" if fine else f"{value:.0f}%"
    if unit == "s":
        return f"{value / 60:.1f}m" if value >= 120 else f"{value:.0f}s"
    return f"{value:,.0f}"


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    unit: str = "",
    target: float | None = None,
    title: str = "",
) -> Markup:
    """A line chart with a y axis, x labels (thinned), an optional dashed target line and a
    ``<title>`` tooltip on every point."""
    values = [v for s in series for v in s.values if v is not None]
    if not labels or not values:
        return Markup('<p class="muted small">No data for this period yet.</p>')
    top = max([*values, target or 0.0, 1.0])
    if unit == "%":
        top = max(top, 100.0) if top > 50 else top
    top *= 1.08
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    step = inner_w / max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return PAD_LEFT + (i * step if len(labels) > 1 else inner_w / 2)

    def y(v: float) -> float:
        return PAD_TOP + inner_h - (v / top) * inner_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{_e(title)}"><title>{_e(title)}</title>'
    ]
    for k in range(5):
        v = top / 1.08 * k / 4
        parts.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            f'stroke="#e3e8ee"/><text x="{PAD_LEFT - 6}" y="{y(v) + 4:.1f}" '
            f'text-anchor="end">{_e(_number(v, unit, fine=top < 20))}</text>'
        )
    every = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(
                f'<text x="{x(i):.1f}" y="{HEIGHT - 12}" text-anchor="middle">{_e(label)}</text>'
            )
    if target is not None:
        parts.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y(target):.1f}" '
            f'y2="{y(target):.1f}" stroke="#64748b" stroke-dasharray="5 4"/>'
            f'<text x="{WIDTH - PAD_RIGHT}" y="{y(target) - 4:.1f}" text-anchor="end">'
            f"target {_e(_number(target, unit))}</text>"
        )
    for n, line in enumerate(series):
        color = COLORS[n % len(COLORS)]
        points = [(x(i), y(v), v, labels[i]) for i, v in enumerate(line.values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _v, _l in points)
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2.2" points="{path}"/>'
            )
        for px, py, v, label in points:
            parts.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.2" fill="{color}">'
                f"<title>{_e(line.name)} {_e(label)}: {_e(_number(v, unit))}</title></circle>"
            )
    parts.append("</svg>")
    legend = "".join(
        f'<span><i class="swatch" data-color="{n}"></i>{_e(s.name)}</span>'
        for n, s in enumerate(series)
    )
    return Markup("".join(parts) + f'<div class="legend">{legend}</div>')  # noqa: S704


def bar_rows(rows: Sequence[tuple[str, float, str, str | None]], *, scale: float) -> Markup:
    """Horizontal bars, one per row: (label, value, text on the right, link or ``None``).

    Labels and figures are HTML text, not SVG: they keep the page's font size on a phone
    (an SVG chart shrinks its text with its width) and a long label (a step called
    ``choose_pickup_point_near_hotel``) wraps instead of being cut by its bar. Only the
    bar itself is a small SVG, stretched to its column.
    """
    if not rows:
        return Markup('<p class="muted small">No data for this period yet.</p>')
    parts = ['<div class="funnel-bars">']
    for label, value, text, link in rows:
        share = 0.0 if scale <= 0 else max(0.5, 100.0 * value / scale)
        bar = (
            f'<span class="fbar-name">{_e(label)}</span>'
            '<svg class="fbar-track" viewBox="0 0 100 10" preserveAspectRatio="none" '
            'aria-hidden="true" focusable="false">'
            '<rect width="100" height="10" fill="#eef2f6"/>'
            f'<rect width="{share:.1f}" height="10" fill="#0f766e"/></svg>'
            f'<span class="fbar-value">{_e(text)}</span>'
        )
        if link:
            parts.append(f'<a class="fbar" href="{_e(link)}">{bar}</a>')
        else:
            parts.append(f'<div class="fbar">{bar}</div>')
    parts.append("</div>")
    return Markup("".join(parts))  # noqa: S704 - every value above is escaped
