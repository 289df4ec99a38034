"""Small line charts as inline SVG, drawn on the server: no script, readable without one
(each chart has a text alternative naming its latest value and its range)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

WIDTH = 320
HEIGHT = 96
_PAD_LEFT = 44
_PAD_BOTTOM = 16
_PAD_TOP = 6


def line_chart(
    points: Sequence[tuple[float, float | None]],
    *,
    title: str,
    now: float,
    window_seconds: float = 3600.0,
    label: Callable[[float], str] = lambda v: f"{v:g}",
) -> Markup:
    """A chart of ``points`` (time, value; None is a gap) over the window ending at ``now``."""
    values = [v for _, v in points if v is not None]
    top = max(values, default=0.0)
    top = top * 1.1 if top > 0 else 1.0
    plot_w = WIDTH - _PAD_LEFT - 4
    plot_h = HEIGHT - _PAD_BOTTOM - _PAD_TOP
    start = now - window_seconds

    def xy(at: float, value: float) -> str:
        x = _PAD_LEFT + plot_w * min(max((at - start) / window_seconds, 0.0), 1.0)
        y = _PAD_TOP + plot_h * (1 - value / top)
        return f"{x:.1f},{y:.1f}"

    lines: list[list[str]] = [[]]
    for at, value in points:
        if value is None:
            lines.append([])
        else:
            lines[-1].append(xy(at, value))
    if values:
        summary = (
            f"{title}: latest {label(values[-1])}, lowest {label(min(values))}, highest"
            f" {label(max(values))} over the last {span(window_seconds)}"
        )
    else:
        summary = f"{title}: no samples yet"
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"'
        f' role="img" aria-label="{escape(summary)}">',
        f"<title>{escape(summary)}</title>",
        f'<line class="axis" x1="{_PAD_LEFT}" y1="{_PAD_TOP + plot_h}" x2="{WIDTH - 4}"'
        f' y2="{_PAD_TOP + plot_h}"/>',
        f'<text class="tick" x="{_PAD_LEFT - 4}" y="{_PAD_TOP + 8}" text-anchor="end">'
        f"{escape(label(top / 1.1 if values else 0.0))}</text>",
        f'<text class="tick" x="{_PAD_LEFT - 4}" y="{_PAD_TOP + plot_h}"'
        ' text-anchor="end">0</text>',
        f'<text class="tick" x="{_PAD_LEFT}" y="{HEIGHT - 3}">-{span(window_seconds)}</text>',
        f'<text class="tick" x="{WIDTH - 4}" y="{HEIGHT - 3}" text-anchor="end">now</text>',
    ]
    for line in lines:
        if len(line) == 1:
            x, y = line[0].split(",")
            parts.append(f'<circle class="point" cx="{x}" cy="{y}" r="2"/>')
        elif line:
            parts.append(f'<polyline class="line" points="{" ".join(line)}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - numbers and escaped text only


def span(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def seconds_label(value: float) -> str:
    if value >= 60:
        return f"{value / 60:.1f} min"
    if value >= 1:
        return f"{value:.1f} s"
    return f"{value * 1000:.0f} ms"


def count_label(value: float) -> str:
    return f"{value:.0f}"


def rate_label(value: float) -> str:
    return f"{value:.2f}/s" if value < 10 else f"{value:.0f}/s"
