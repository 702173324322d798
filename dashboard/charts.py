"""Server-side SVG charts for the admin dashboard: pure functions from numbers to SVG strings.

No JavaScript and no CDN: every chart is a self-contained ``<svg>`` with a
``viewBox`` (it scales to its card's width), a ``<title>``/``<desc>`` pair
referenced by ``aria-labelledby`` and a ``<title>`` tooltip on every mark.
Every string that reaches the SVG is escaped here, so callers may mark the
result safe.

Marks carry stable classes the browser test and the page CSS rely on:
``rect.bar`` (bars, stacked segments, progress), ``rect.suppressed`` (a bucket
hidden by the minimum-group rule), ``path.line`` / ``circle.point`` (line
charts), ``path.slice`` (donut) and ``.no-data`` (an empty chart).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from itertools import count

# --- Palette ---------------------------------------------------------------------------------

#: One colour per emotion, used by every chart that shows emotions.
EMOTION_COLORS: dict[str, str] = {
    "anger": "#d64545",
    "contempt": "#9b59b6",
    "disgust": "#6a9a3a",
    "fear": "#6c63d9",
    "happiness": "#f0b400",
    "neutral": "#98a2ae",
    "sadness": "#3b7dd8",
    "surprise": "#f0882a",
}
STATUS_COLORS: dict[str, str] = {
    "done": "#2e9e6b",
    "no_face": "#98a2ae",
    "failed": "#d64545",
    "processing": "#3b7dd8",
    "pending": "#f0b400",
}
POLICY_COLORS: dict[str, str] = {"repair": "#2e9e6b", "congruent": "#6c63d9", "off": "#98a2ae"}
PERCENTILE_COLORS: dict[str, str] = {"p50": "#3b7dd8", "p95": "#f0882a", "p99": "#d64545"}
#: Valence bins from very negative (red) to very positive (green).
VALENCE_COLORS: tuple[str, ...] = ("#d64545", "#f0882a", "#98a2ae", "#8cc152", "#2e9e6b")
FALLBACK_COLORS: tuple[str, ...] = ("#3b7dd8", "#f0882a", "#2e9e6b", "#d64545", "#6c63d9", "#f0b400", "#17a2b8")
AXIS_COLOR = "#8a94a0"
GRID_COLOR = "#e3e7ec"
TEXT_COLOR = "#4a5561"
SUPPRESSED_FILL = "#eef0f3"
SUPPRESSED_STROKE = "#b4bcc6"

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
CHAR_WIDTH = 6.2  # rough width of one character at font-size 11, for layout only


def emotion_color(label: str) -> str:
    return EMOTION_COLORS.get(label, color_for(label))


def color_for(key: str, palette: Sequence[str] = FALLBACK_COLORS) -> str:
    """A stable colour for an arbitrary key (same key, same colour)."""
    return palette[sum(key.encode()) % len(palette)]


# --- Data shapes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """A named series of values (``None``: no value at that position)."""

    name: str
    values: Sequence[float | None]
    color: str


@dataclass(frozen=True)
class Item:
    """One labelled value of a bar or donut chart; ``suppressed`` hides the value."""

    label: str
    value: float | None
    color: str
    suppressed: bool = False
    note: str = ""


# --- Formatting and scales --------------------------------------------------------------------


def fmt_number(value: float | None, decimals: int = 1) -> str:
    """``1234`` -> ``1,234``; ``12.345`` -> ``12.3``; ``None`` -> ``–``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.{decimals}f}"


def fmt_ms(value: float | None) -> str:
    """Milliseconds for humans: ``850 ms``, ``1.2 s``, ``3.5 min``."""
    if value is None:
        return "–"
    if value < 10:
        return f"{value:.1f} ms"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.1f} s"
    return f"{value / 60_000:.1f} min"


def fmt_pct(share: float) -> str:
    return f"{100 * share:.0f}%" if share >= 0.1 or share == 0 else f"{100 * share:.1f}%"


def nice_step(span: float, target_ticks: int = 4, integer: bool = False) -> float:
    """A 1/2/2.5/5 x 10^k step giving about ``target_ticks`` intervals over ``span``."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(target_ticks, 1)
    exp = math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        step = m * 10**exp
        if step >= raw - 1e-12:
            break
    if integer:
        step = max(1.0, float(math.ceil(step)))
    return float(step)


def axis_ticks(max_value: float, target_ticks: int = 4, integer: bool = False) -> list[float]:
    """Ticks from 0 to a round top at or above ``max_value`` (``[0, 1]`` for no data)."""
    if max_value <= 0 or not math.isfinite(max_value):
        return [0.0, 1.0]
    step = nice_step(max_value, target_ticks, integer)
    n = max(1, math.ceil(max_value / step - 1e-9))
    return [round(i * step, 10) for i in range(n + 1)]


_ids = count(1)


def _chart_id(title: str, chart_id: str | None) -> str:
    if chart_id:
        return re.sub(r"[^A-Za-z0-9_-]", "-", chart_id)
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:32] or "chart"
    return f"{slug}-{next(_ids)}"


def _n(x: float) -> str:
    """Compact coordinate."""
    return f"{x:.1f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _text_width(text: str, size: float = 11) -> float:
    return len(text) * CHAR_WIDTH * size / 11


def _svg_open(cid: str, width: float, height: float, title: str, desc: str, kind: str, extra_class: str = "") -> str:
    cls = f"chart chart-{kind}{(' ' + extra_class) if extra_class else ''}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{cls}" id="{cid}" viewBox="0 0 {_n(width)} {_n(height)}" '
        f'width="100%" style="max-width: {_n(width)}px" preserveAspectRatio="xMidYMin meet" role="img" '
        f'aria-labelledby="{cid}-title {cid}-desc" font-family="{_e(FONT)}" font-size="11">'
        f'<title id="{cid}-title">{_e(title)}</title><desc id="{cid}-desc">{_e(desc)}</desc>'
    )


def _hatch(cid: str) -> str:
    return (
        f'<defs><pattern id="{cid}-hatch" patternUnits="userSpaceOnUse" width="6" height="6" '
        f'patternTransform="rotate(45)"><rect class="hatch-bg" width="6" height="6" fill="{SUPPRESSED_FILL}"/>'
        f'<line class="hatch-line" x1="0" y1="0" x2="0" y2="6" stroke="{SUPPRESSED_STROKE}" stroke-width="2"/>'
        f"</pattern></defs>"
    )


def _legend(
    entries: Sequence[tuple[str, str]], x0: float, y0: float, max_width: float, swatch: str = "rect"
) -> tuple[str, float]:
    """Legend entries flowed into rows; returns (svg, height used)."""
    if not entries:
        return "", 0.0
    parts = ['<g class="legend">']
    x, y, row_h = x0, y0, 16.0
    for label, color in entries:
        w = 14 + _text_width(label) + 14
        if x > x0 and x + w > x0 + max_width:
            x, y = x0, y + row_h
        if swatch == "line":
            parts.append(
                f'<line x1="{_n(x)}" y1="{_n(y + 6)}" x2="{_n(x + 10)}" y2="{_n(y + 6)}" '
                f'stroke="{_e(color)}" stroke-width="2.5" stroke-linecap="round"/>'
            )
        elif swatch == "hatch":
            parts.append(
                f'<rect x="{_n(x)}" y="{_n(y + 1)}" width="10" height="10" rx="2" fill="{_e(color)}" '
                f'stroke="{SUPPRESSED_STROKE}"/>'
            )
        else:
            parts.append(f'<rect x="{_n(x)}" y="{_n(y + 1)}" width="10" height="10" rx="2" fill="{_e(color)}"/>')
        parts.append(
            f'<text class="legend-label" x="{_n(x + 14)}" y="{_n(y + 10)}" fill="{TEXT_COLOR}">{_e(label)}</text>'
        )
        x += w
    parts.append("</g>")
    return "".join(parts), (y - y0) + row_h + 4


def empty_chart(
    title: str, message: str = "no data", *, width: float = 640, height: float = 120, chart_id: str | None = None
) -> str:
    """Placeholder for a chart without data (class ``no-data``)."""
    cid = _chart_id(title, chart_id)
    return (
        _svg_open(cid, width, height, title, f"{title}: {message}", "empty", "no-data")
        + f'<rect x="0.5" y="0.5" width="{_n(width - 1)}" height="{_n(height - 1)}" rx="6" fill="none" '
        f'stroke="{GRID_COLOR}" stroke-dasharray="4 4"/>'
        + f'<text class="no-data-text" x="{_n(width / 2)}" y="{_n(height / 2 + 4)}" text-anchor="middle" '
        f'fill="{AXIS_COLOR}" font-size="13">{_e(message)}</text></svg>'
    )


def _y_axis(
    ticks: Sequence[float],
    plot_left: float,
    plot_right: float,
    y_of: Callable[[float], float],
    fmt: Callable[[float], str],
) -> str:
    parts = ['<g class="axis y-axis">']
    for t in ticks:
        y = y_of(t)
        parts.append(
            f'<line class="grid" x1="{_n(plot_left)}" y1="{_n(y)}" x2="{_n(plot_right)}" y2="{_n(y)}" '
            f'stroke="{GRID_COLOR}"/>'
        )
        parts.append(
            f'<text class="tick" x="{_n(plot_left - 6)}" y="{_n(y + 3.5)}" text-anchor="end" '
            f'fill="{AXIS_COLOR}">{_e(fmt(t))}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def _x_labels(categories: Sequence[str], x_center: Callable[[int], float], y: float, label_every: int) -> str:
    parts = ['<g class="axis x-axis">']
    step = max(1, label_every)
    for i, cat in enumerate(categories):
        if i % step == 0:
            parts.append(
                f'<text class="tick" x="{_n(x_center(i))}" y="{_n(y)}" text-anchor="middle" '
                f'fill="{AXIS_COLOR}">{_e(cat)}</text>'
            )
    parts.append("</g>")
    return "".join(parts)


# --- Stacked bars -----------------------------------------------------------------------------------


def stacked_bar_chart(
    *,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    unit: str = "",
    normalize: bool = False,
    suppressed: Sequence[int] = (),
    suppressed_label: str = "suppressed",
    label_every: int = 1,
    width: float = 640,
    height: float = 250,
    value_fmt: Callable[[float], str] = fmt_number,
    chart_id: str | None = None,
    empty_message: str = "no data",
) -> str:
    """Vertical stacked bars, one per category; ``normalize`` draws shares (100% bars).

    Categories listed in ``suppressed`` get a hatched full-height bar and no value.
    """
    sup = set(suppressed)
    totals = [sum((s.values[i] or 0.0) for s in series) if i not in sup else 0.0 for i in range(len(categories))]
    if not categories or (not any(t > 0 for t in totals) and not sup):
        return empty_chart(title, empty_message, width=width, chart_id=chart_id)
    cid = _chart_id(title, chart_id)
    grand = sum(totals)
    shown = [i for i, t in enumerate(totals) if t > 0]
    peak = max(range(len(totals)), key=totals.__getitem__)
    desc = (
        f"{title}. {len(categories)} bars"
        + (f", {len(shown)} with data" if len(shown) != len(categories) else "")
        + (f", {len(sup)} suppressed" if sup else "")
        + ("; each bar shows shares of its total" if normalize else f"; total {value_fmt(grand)}{unit and ' ' + unit}")
        + (f"; highest {value_fmt(totals[peak])} at {categories[peak]}" if grand and not normalize else "")
        + ". Series: "
        + ", ".join(s.name for s in series)
        + "."
    )
    legend_entries = [(s.name, s.color) for s in series if any((v or 0) > 0 for v in s.values)]
    if sup:
        legend_entries.append((suppressed_label, f"url(#{cid}-hatch)"))
    left, right, bottom = 44.0, 10.0, 22.0
    legend, legend_h = _legend([(n, c) for n, c in legend_entries], left, 4, width - left - right)
    # the hatch swatch needs its outline
    legend = legend.replace(f'fill="url(#{cid}-hatch)"/>', f'fill="url(#{cid}-hatch)" stroke="{SUPPRESSED_STROKE}"/>')
    top = 4 + legend_h + 6
    plot_h = height - top - bottom
    plot_w = width - left - right
    ticks = [0.0, 0.25, 0.5, 0.75, 1.0] if normalize else axis_ticks(max(totals), integer=not unit.endswith("ms"))
    y_max = ticks[-1] or 1.0

    def y_of(v: float) -> float:
        return top + plot_h - (v / y_max) * plot_h

    band = plot_w / len(categories)
    bar_w = max(2.0, min(band * 0.72, 48.0))

    def x_center(i: int) -> float:
        return left + band * (i + 0.5)

    parts = [_svg_open(cid, width, height, title, desc, "stacked-bar"), _hatch(cid), legend]
    parts.append(_y_axis(ticks, left, width - right, y_of, fmt_pct if normalize else value_fmt))
    parts.append('<g class="marks">')
    for i, cat in enumerate(categories):
        x = x_center(i) - bar_w / 2
        if i in sup:
            parts.append(
                f'<rect class="suppressed" x="{_n(x)}" y="{_n(top)}" width="{_n(bar_w)}" '
                f'height="{_n(plot_h)}" rx="2" fill="url(#{cid}-hatch)"><title>{_e(cat)}: '
                f"{_e(suppressed_label)}</title></rect>"
            )
            continue
        total = totals[i]
        if total <= 0:
            continue
        acc = 0.0
        for s in series:
            v = s.values[i] or 0.0
            if v <= 0:
                continue
            share = v / total
            lo, hi = (acc, acc + share) if normalize else (acc * 1.0, acc + v)
            acc = hi
            y1, y2 = y_of(hi), y_of(lo)
            tip = f"{cat} · {s.name}: " + (
                f"{fmt_pct(share)} ({value_fmt(v)} of {value_fmt(total)})"
                if normalize
                else f"{value_fmt(v)}{unit and ' ' + unit}"
            )
            parts.append(
                f'<rect class="bar" data-series="{_e(s.name)}" data-value="{_e(v)}" x="{_n(x)}" '
                f'y="{_n(y1)}" width="{_n(bar_w)}" height="{_n(max(y2 - y1, 0.5))}" fill="{_e(s.color)}">'
                f"<title>{_e(tip)}</title></rect>"
            )
    parts.append("</g>")
    parts.append(
        f'<line class="baseline" x1="{_n(left)}" y1="{_n(top + plot_h)}" x2="{_n(width - right)}" '
        f'y2="{_n(top + plot_h)}" stroke="{AXIS_COLOR}"/>'
    )
    parts.append(_x_labels(categories, x_center, height - 6, label_every))
    parts.append("</svg>")
    return "".join(parts)


# --- Horizontal bars ------------------------------------------------------------------------------


def bar_chart(
    *,
    title: str,
    items: Sequence[Item],
    unit: str = "",
    max_value: float | None = None,
    value_fmt: Callable[[float], str] = fmt_number,
    suppressed_label: str = "suppressed",
    width: float = 480,
    row_height: float = 24,
    label_width: float | None = None,
    chart_id: str | None = None,
    empty_message: str = "no data",
) -> str:
    """Horizontal bars with the label on the left and the value at the bar's end."""
    if not items or not any((it.value or 0) > 0 or it.suppressed for it in items):
        return empty_chart(title, empty_message, width=width, chart_id=chart_id)
    cid = _chart_id(title, chart_id)
    values = [it.value or 0.0 for it in items if not it.suppressed]
    vmax = max_value if max_value is not None else max(values or [0.0])
    vmax = vmax if vmax > 0 else 1.0
    lw = label_width if label_width is not None else min(160.0, 10 + max(_text_width(it.label) for it in items))
    value_w = (
        max(
            _text_width(suppressed_label) if any(it.suppressed for it in items) else 0,
            max((_text_width(value_fmt(v) + (" " + unit if unit else "")) for v in values), default=0),
        )
        + 12
    )
    bar_area = max(40.0, width - lw - value_w - 8)
    height = row_height * len(items) + 8
    desc = (
        f"{title}. "
        + "; ".join(
            f"{it.label}: {suppressed_label if it.suppressed else value_fmt(it.value or 0) + (' ' + unit if unit else '')}"
            for it in items
        )
        + "."
    )
    parts = [_svg_open(cid, width, height, title, desc, "bar"), _hatch(cid), '<g class="marks">']
    for i, it in enumerate(items):
        y = 4 + i * row_height
        bh = row_height * 0.62
        by = y + (row_height - bh) / 2
        parts.append(
            f'<text class="row-label" x="{_n(lw - 8)}" y="{_n(y + row_height / 2 + 4)}" text-anchor="end" '
            f'fill="{TEXT_COLOR}">{_e(it.label)}</text>'
        )
        parts.append(
            f'<rect class="track" x="{_n(lw)}" y="{_n(by)}" width="{_n(bar_area)}" height="{_n(bh)}" '
            f'rx="3" fill="{GRID_COLOR}" opacity="0.45"/>'
        )
        if it.suppressed:
            parts.append(
                f'<rect class="suppressed" x="{_n(lw)}" y="{_n(by)}" width="{_n(bar_area)}" '
                f'height="{_n(bh)}" rx="3" fill="url(#{cid}-hatch)"><title>{_e(it.label)}: '
                f"{_e(suppressed_label)}</title></rect>"
            )
            parts.append(
                f'<text class="value suppressed-label" x="{_n(lw + bar_area + 6)}" '
                f'y="{_n(y + row_height / 2 + 4)}" fill="{AXIS_COLOR}" font-style="italic">'
                f"{_e(suppressed_label)}</text>"
            )
            continue
        v = it.value or 0.0
        w = max(0.0, min(1.0, v / vmax)) * bar_area
        label = value_fmt(v) + (f" {unit}" if unit else "")
        tip = f"{it.label}: {label}" + (f" ({it.note})" if it.note else "")
        if v > 0:
            parts.append(
                f'<rect class="bar" data-value="{_e(v)}" x="{_n(lw)}" y="{_n(by)}" '
                f'width="{_n(max(w, 1.5))}" height="{_n(bh)}" rx="3" fill="{_e(it.color)}">'
                f"<title>{_e(tip)}</title></rect>"
            )
        parts.append(
            f'<text class="value" x="{_n(lw + w + 6)}" y="{_n(y + row_height / 2 + 4)}" '
            f'fill="{TEXT_COLOR}">{_e(label)}{(" · " + _e(it.note)) if it.note else ""}</text>'
        )
    parts.append("</g></svg>")
    return "".join(parts)


# --- Lines ---------------------------------------------------------------------------------------------


def line_chart(
    *,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    unit: str = "",
    value_fmt: Callable[[float], str] = fmt_number,
    label_every: int = 1,
    width: float = 640,
    height: float = 230,
    chart_id: str | None = None,
    empty_message: str = "no data",
) -> str:
    """Lines over categories; ``None`` values break a line (a gap, not a zero)."""
    values = [v for s in series for v in s.values if v is not None]
    if not categories or not values:
        return empty_chart(title, empty_message, width=width, chart_id=chart_id)
    cid = _chart_id(title, chart_id)
    left, right, bottom = 52.0, 12.0, 22.0
    legend, legend_h = _legend([(s.name, s.color) for s in series], left, 4, width - left - right, swatch="line")
    top = 4 + legend_h + 6
    plot_h, plot_w = height - top - bottom, width - left - right
    ticks = axis_ticks(max(values))
    y_max = ticks[-1] or 1.0
    n = len(categories)
    step = plot_w / max(n - 1, 1)

    def x_of(i: int) -> float:
        return left + (step * i if n > 1 else plot_w / 2)

    def y_of(v: float) -> float:
        return top + plot_h - (v / y_max) * plot_h

    desc = (
        f"{title}. "
        + "; ".join(
            f"{s.name}: max {value_fmt(max(v for v in s.values if v is not None))}{unit and ' ' + unit}"
            for s in series
            if any(v is not None for v in s.values)
        )
        + f" over {n} points."
    )
    parts = [_svg_open(cid, width, height, title, desc, "line"), legend]
    parts.append(_y_axis(ticks, left, width - right, y_of, lambda t: value_fmt(t) + (f" {unit}" if unit else "")))
    parts.append('<g class="marks">')
    for s in series:
        segments: list[list[tuple[float, float]]] = [[]]
        for i, v in enumerate(s.values):
            if v is None:
                if segments[-1]:
                    segments.append([])
                continue
            segments[-1].append((x_of(i), y_of(v)))
        for seg in segments:
            if len(seg) >= 2:
                d = "M" + " L".join(f"{_n(x)},{_n(y)}" for x, y in seg)
                parts.append(
                    f'<path class="line" data-series="{_e(s.name)}" d="{d}" fill="none" '
                    f'stroke="{_e(s.color)}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>'
                )
        for i, v in enumerate(s.values):
            if v is None:
                continue
            parts.append(
                f'<circle class="point" data-series="{_e(s.name)}" data-value="{_e(v)}" cx="{_n(x_of(i))}" '
                f'cy="{_n(y_of(v))}" r="2.6" fill="{_e(s.color)}"><title>{_e(categories[i])} · '
                f"{_e(s.name)}: {_e(value_fmt(v))}{_e(' ' + unit if unit else '')}</title></circle>"
            )
    parts.append("</g>")
    parts.append(
        f'<line class="baseline" x1="{_n(left)}" y1="{_n(top + plot_h)}" x2="{_n(width - right)}" '
        f'y2="{_n(top + plot_h)}" stroke="{AXIS_COLOR}"/>'
    )
    parts.append(_x_labels(categories, x_of, height - 6, label_every))
    parts.append("</svg>")
    return "".join(parts)


# --- Donut ------------------------------------------------------------------------------------------------


def _arc_path(cx: float, cy: float, r_out: float, r_in: float, a0: float, a1: float) -> str:
    """An annular sector from angle a0 to a1 (radians, clockwise from 12 o'clock)."""
    if a1 - a0 >= 2 * math.pi - 1e-6:  # full ring: two half arcs
        a1 = a0 + 2 * math.pi - 1e-4

    def pt(r: float, a: float) -> tuple[float, float]:
        return cx + r * math.sin(a), cy - r * math.cos(a)

    large = 1 if a1 - a0 > math.pi else 0
    (x0, y0), (x1, y1) = pt(r_out, a0), pt(r_out, a1)
    (x2, y2), (x3, y3) = pt(r_in, a1), pt(r_in, a0)
    return (
        f"M{x0:.2f},{y0:.2f} A{r_out:.2f},{r_out:.2f} 0 {large} 1 {x1:.2f},{y1:.2f} "
        f"L{x2:.2f},{y2:.2f} A{r_in:.2f},{r_in:.2f} 0 {large} 0 {x3:.2f},{y3:.2f} Z"
    )


def donut_chart(
    *,
    title: str,
    items: Sequence[Item],
    center_label: str = "",
    center_sub: str = "",
    unit: str = "",
    suppressed_label: str = "suppressed",
    width: float = 420,
    height: float = 200,
    chart_id: str | None = None,
    empty_message: str = "no data",
) -> str:
    """A donut of the non-suppressed items with a legend (label, value, share) on the right.

    Suppressed items are listed in the legend, hatched, without a value or share.
    """
    visible = [it for it in items if not it.suppressed and (it.value or 0) > 0]
    if not visible:
        return empty_chart(title, empty_message, width=width, chart_id=chart_id)
    cid = _chart_id(title, chart_id)
    total = sum(it.value or 0.0 for it in visible)
    cy = height / 2
    r_out = min(height / 2 - 8, 88.0)
    r_in = r_out * 0.6
    cx = 8 + r_out
    desc = (
        f"{title}. "
        + "; ".join(
            f"{it.label}: {suppressed_label}"
            if it.suppressed
            else f"{it.label}: {fmt_number(it.value or 0)}{(' ' + unit) if unit else ''} ({fmt_pct((it.value or 0) / total)})"
            for it in items
            if it.suppressed or (it.value or 0) > 0
        )
        + "."
    )
    parts = [_svg_open(cid, width, height, title, desc, "donut"), _hatch(cid), '<g class="marks">']
    a = 0.0
    for it in visible:
        share = (it.value or 0.0) / total
        a1 = a + share * 2 * math.pi
        parts.append(
            f'<path class="slice" data-value="{_e(it.value)}" d="{_arc_path(cx, cy, r_out, r_in, a, a1)}" '
            f'fill="{_e(it.color)}" stroke="#fff" stroke-width="1.5"><title>{_e(it.label)}: '
            f"{_e(fmt_number(it.value or 0))}{_e(' ' + unit if unit else '')} ({fmt_pct(share)})</title></path>"
        )
        a = a1
    parts.append("</g>")
    if center_label:
        parts.append(
            f'<text class="center-label" x="{_n(cx)}" y="{_n(cy + (0 if center_sub else 6))}" '
            f'text-anchor="middle" font-size="20" font-weight="600" fill="{TEXT_COLOR}">{_e(center_label)}</text>'
        )
    if center_sub:
        parts.append(
            f'<text class="center-sub" x="{_n(cx)}" y="{_n(cy + 16)}" text-anchor="middle" '
            f'fill="{AXIS_COLOR}">{_e(center_sub)}</text>'
        )
    legend_items = [it for it in items if it.suppressed or (it.value or 0) > 0]
    lx = cx + r_out + 20
    row = min(20.0, (height - 8) / max(len(legend_items), 1))
    ly = cy - row * len(legend_items) / 2
    parts.append('<g class="legend">')
    for i, it in enumerate(legend_items):
        y = ly + i * row
        fill = f"url(#{cid}-hatch)" if it.suppressed else it.color
        stroke = f' stroke="{SUPPRESSED_STROKE}"' if it.suppressed else ""
        parts.append(f'<rect x="{_n(lx)}" y="{_n(y + 2)}" width="10" height="10" rx="2" fill="{_e(fill)}"{stroke}/>')
        text = (
            f'{_e(it.label)} <tspan fill="{AXIS_COLOR}" font-style="italic">{_e(suppressed_label)}</tspan>'
            if it.suppressed
            else f'{_e(it.label)} <tspan font-weight="600">{fmt_pct((it.value or 0) / total)}</tspan> '
            f'<tspan fill="{AXIS_COLOR}">({_e(fmt_number(it.value or 0))})</tspan>'
        )
        parts.append(f'<text class="legend-label" x="{_n(lx + 15)}" y="{_n(y + 11)}" fill="{TEXT_COLOR}">{text}</text>')
    parts.append("</g></svg>")
    return "".join(parts)


# --- Progress ---------------------------------------------------------------------------------------------------


def progress_bar(
    *,
    title: str,
    done: int,
    failed: int = 0,
    total: int,
    width: float = 360,
    height: float = 22,
    chart_id: str | None = None,
) -> str:
    """A progress bar: done (green) and failed (red) out of total, with the percentage."""
    total = max(int(total or 0), 0)
    done, failed = max(int(done or 0), 0), max(int(failed or 0), 0)
    cid = _chart_id(title, chart_id)
    frac_done = min(done / total, 1.0) if total else 0.0
    frac_failed = min(failed / total, 1.0 - frac_done) if total else 0.0
    pct = (frac_done + frac_failed) if total else 0.0
    label = f"{fmt_pct(pct)} · {fmt_number(done + failed)} / {fmt_number(total)}" if total else "no items"
    desc = f"{title}: {done} done, {failed} failed of {total}."
    track_w = width - 120
    parts = [
        _svg_open(cid, width, height, title, desc, "progress"),
        '<g class="marks">',
        f'<rect class="track" x="0" y="4" width="{_n(track_w)}" height="{_n(height - 8)}" rx="{_n((height - 8) / 2)}" '
        f'fill="{GRID_COLOR}"/>',
    ]
    if frac_done > 0:
        parts.append(
            f'<rect class="bar progress-done" data-value="{done}" x="0" y="4" '
            f'width="{_n(max(track_w * frac_done, 2))}" height="{_n(height - 8)}" rx="{_n((height - 8) / 2)}" '
            f'fill="{STATUS_COLORS["done"]}"><title>{done:,} done</title></rect>'
        )
    if frac_failed > 0:
        parts.append(
            f'<rect class="bar progress-failed" data-value="{failed}" x="{_n(track_w * frac_done)}" y="4" '
            f'width="{_n(max(track_w * frac_failed, 2))}" height="{_n(height - 8)}" '
            f'fill="{STATUS_COLORS["failed"]}"><title>{failed:,} failed</title></rect>'
        )
    parts.append("</g>")
    parts.append(
        f'<text class="value" x="{_n(track_w + 8)}" y="{_n(height / 2 + 4)}" fill="{TEXT_COLOR}">'
        f"{_e(label)}</text></svg>"
    )
    return "".join(parts)
