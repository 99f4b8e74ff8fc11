"""The dashboard's charts, as inline SVG: bars stacked by model, small bars, split bars;
and the HTML escaping that the page's sections share with them.

No inline style anywhere (the page's Content-Security-Policy forbids it): colours come from
the page's classes (s0.. per model, t0.. per tool, ok and bad).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from aitrack.domain.display import safe_lines
from aitrack.reports.axis import Gap, Slot, slots
from aitrack.reports.rows import Figures, Report
from aitrack.reports.text import axis_money, money

OTHER = "other models"
MAX_HTML = 2000  # characters of a line on the page (a 15 MiB model name is cut there)


def esc(value: object) -> str:
    """As HTML text or an attribute's value: escaped, and safe (domain/display.py) first."""
    return html.escape("\n".join(safe_lines(str(value), MAX_HTML)), quote=True)


@dataclass
class Series:
    names: list[str]  # the models with a colour, then OTHER when there are more

    @classmethod
    def costliest(cls, models: Report, colours: int) -> Series:
        """The `colours` costliest models of a model report; the rest are OTHER."""
        names = [label for label, _, _ in models.rows]  # costliest first
        if len(names) > colours:
            names = names[:colours] + [OTHER]
        return cls(names)

    def of(self, model: str) -> int:
        return self.names.index(model) if model in self.names else len(self.names) - 1


def nice_step(top: float, ticks: int = 4) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about `ticks` gridlines."""
    if top <= 0:
        return 1.0
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if raw <= m * power * (1 + 1e-9))


def stacked_bars(chart_id: str, title: str, desc: str, periods: Report, series: Series,
                 value: Callable[[Figures], float], fmt: Callable[[float, Figures | None], str],
                 axis: Callable[[float], str], unit: str) -> str:
    """An SVG bar per period, stacked by model, with gridlines and a <title> per bar."""
    width, height, left, right, top, bottom = 960, 260, 56, 8, 12, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    axis_periods = slots([label for label, _, _ in periods.rows], unit)
    at = {label: i for i, label in enumerate(axis_periods) if not isinstance(label, Gap)}
    stacks = []
    for label, fig, models in periods.rows:
        parts = [0.0] * len(series.names)
        for model, f in models:
            parts[series.of(model)] += value(f)
        stacks.append((label, fig, parts))
    peak = max((sum(p) for _, _, p in stacks), default=0.0)
    step = nice_step(peak)
    ceiling = step * max(1, -(-peak // step)) if peak else step
    scale = plot_h / ceiling
    slot = plot_w / max(1, len(axis_periods))
    bar = min(44.0, max(1.0, slot * 0.78)) if slot > 2 else slot
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
           f'aria-labelledby="{chart_id}-t {chart_id}-d" id="{chart_id}">',
           f'<title id="{chart_id}-t">{esc(title)}</title>',
           f'<desc id="{chart_id}-d">{esc(desc)}</desc>', '<g class="gridlines">']
    for k in range(round(ceiling / step) + 1):
        y = top + plot_h - k * step * scale
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                   f"{esc(axis(k * step))}</text>")
    out.append("</g>")
    out.append(_x_labels(axis_periods, left, slot, height - 8, width - right))
    out.append(_gap_marks(axis_periods, left, slot, top, top + plot_h, unit))
    out.append('<g class="bars">')
    for label, fig, parts in stacks:
        total = sum(parts)
        if not total:
            continue
        x = left + at[label] * slot + (slot - bar) / 2
        lines = [f"{label}: {fmt(total, fig)}"] + [
            f"{name}: {fmt(v, None)}" for name, v in zip(series.names, parts, strict=True) if v]
        out.append(f'<g data-period="{esc(label)}"><title>{esc("; ".join(lines))}</title>')
        y = top + plot_h
        for i, v in enumerate(parts):
            if v <= 0:
                continue
            h = v * scale
            y -= h
            out.append(f'<rect class="s{i}" x="{x:.2f}" y="{y:.2f}" width="{bar:.2f}" '
                       f'height="{max(h, 0.5):.2f}"/>')
        out.append("</g>")
    out.append("</g></svg>")
    return "".join(out)


def _x_labels(periods: list[Slot], left: float, slot: float, y: float, edge: float) -> str:
    """Dates under the bars: each month's first period on a long axis (the year on January
    and on the first, and after a gap), else every few periods."""
    long_axis = len(periods) > 45
    every = max(1, math.ceil(64 / max(slot, 0.1)))
    out, last_x = ['<g class="xlabels">'], -1e9
    previous: date | None = None
    for i, label in enumerate(periods):
        if isinstance(label, Gap):
            previous = None
            continue
        d = date.fromisoformat(label)
        if long_axis:
            if previous is not None and previous.month == d.month:
                previous = d
                continue
            text = d.strftime("%b %Y" if previous is None or d.month == 1 else "%b")
        else:
            if i % every and previous is not None:
                previous = d
                continue
            text = d.strftime("%b %d" if previous is not None or i == 0 else "%b %d %Y")
        previous = d
        x = left + i * slot + slot / 2
        if x - last_x < 56:
            continue
        last_x = x
        # a label at either end stays inside the chart (the newest day, after a gap, say)
        anchor = "end" if x > edge - 28 else "start" if x < left + 28 else "middle"
        at = edge if anchor == "end" else left if anchor == "start" else x
        out.append(f'<text x="{at:.1f}" y="{y}" text-anchor="{anchor}">{esc(text)}</text>')
    out.append("</g>")
    return "".join(out)


def _gap_marks(periods: list[Slot], left: float, slot: float, top: float, bottom: float,
               unit: str) -> str:
    """A dashed break where a long stretch without sessions was collapsed, named in its
    title (and for screen readers)."""
    out = ['<g class="gaps">']
    for i, label in enumerate(periods):
        if isinstance(label, Gap):
            x = left + i * slot + slot / 2
            out.append(f'<g class="gap"><title>{esc(label.describe(unit))}</title>'
                       f'<rect x="{left + i * slot:.2f}" y="{top}" width="{slot:.2f}" '
                       f'height="{bottom - top}"/><line x1="{x:.2f}" x2="{x:.2f}" y1="{top}" '
                       f'y2="{bottom}"/></g>')
    out.append("</g>")
    return "".join(out)


def hbar(fraction: float, cls: str = "s0", label: str = "") -> str:
    """A small horizontal bar, as SVG (no inline style: the page's CSP forbids it)."""
    w = max(0.0, min(1.0, fraction)) * 100
    return (f'<svg class="hbar" viewBox="0 0 100 10" preserveAspectRatio="none" '
            f'aria-hidden="true"><rect class="track" width="100" height="10"/>'
            f'<rect class="{cls}" width="{w:.2f}" height="10"/></svg>'
            + (f'<span class="sr">{esc(label)}</span>' if label else ""))


def split_bar(parts: list[tuple[str, float, str]]) -> str:
    """One bar split into parts: (name, value, class); proportions of their sum."""
    total = sum(v for _, v, _ in parts) or 1.0
    x, rects = 0.0, []
    for name, v, cls in parts:
        w = v / total * 100
        if w > 0:
            rects.append(f'<rect class="{cls}" x="{x:.3f}" width="{w:.3f}" height="10">'
                         f"<title>{esc(name)}: {v / total:.1%}</title></rect>")
        x += w
    return (f'<svg class="split" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" '
            f'aria-label="{esc(", ".join(f"{n} {v / total:.0%}" for n, v, _ in parts))}">'
            + "".join(rects) + "</svg>")


def weekly_bars(points: list[tuple[str, float]], total: float | None) -> str:
    """Cost per commit per week: a bar per week with commits (`points`, oldest first), on
    an axis that keeps the weeks without."""
    axis_weeks = slots([w for w, _ in points], "week")
    at = {w: i for i, w in enumerate(axis_weeks) if not isinstance(w, Gap)}
    width, height, left, top, bottom = 460, 150, 48, 10, 22
    plot_w, plot_h = width - left - 6, height - top - bottom
    peak = max(v for _, v in points)
    step = nice_step(peak, 3)
    ceiling = step * max(1, -(-peak // step))
    slot = plot_w / len(axis_weeks)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             'aria-labelledby="cpc-t cpc-d" id="cpc-chart"><title id="cpc-t">Cost per '
             'commit per week</title><desc id="cpc-d">'
             f"{esc(f'{len(points)} weeks with commits; overall {money(total)} per commit')}"
             '</desc><g class="gridlines">']
    for k in range(round(ceiling / step) + 1):
        y = top + plot_h - k * step / ceiling * plot_h
        parts.append(f'<line x1="{left}" x2="{width - 6}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{esc(axis_money(k * step))}</text>")
    parts.append("</g>" + _gap_marks(axis_weeks, left, slot, top, top + plot_h, "week"))
    parts.append('<g class="bars">')
    bar = min(36.0, max(slot * 0.7, 1.0))
    for week, v in points:
        h = v / ceiling * plot_h
        x = left + at[week] * slot + (slot - bar) / 2
        parts.append(f'<rect class="s0" x="{x:.2f}" y="{top + plot_h - h:.2f}" '
                     f'width="{bar:.2f}" height="{max(h, 0.5):.2f}">'
                     f"<title>week of {week}: {money(v)} per commit</title></rect>")
    parts.append(f'</g><g class="xlabels"><text x="{left}" y="{height - 6}">'
                 f'{esc(points[0][0])}</text><text x="{width - 6}" y="{height - 6}" '
                 f'text-anchor="end">{esc(points[-1][0])}</text></g></svg>')
    return "".join(parts)
