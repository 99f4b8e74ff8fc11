"""The bar chart above a daily or weekly table on a terminal: one line of bars over the
whole range, on the dashboard's axis (reports/axis.py).

Every period from the first to the last has its place, so quiet days show as gaps; a long
stretch without sessions is one `┊`. When there are more periods than columns, a bar sums
several consecutive ones, and the title says how many.
"""

from __future__ import annotations

import math

from aitrack.reports.axis import Gap, Slot, slots
from aitrack.reports.rows import Report
from aitrack.reports.text import short

LEVELS = " ▁▂▃▄▅▆▇█"
GAP_MARK = "┊"

Bar = tuple[str, float] | Gap  # (first period of the bar, its sum), or a collapsed gap


def bars(axis: list[Slot], values: dict[str, float], per_bar: int) -> list[Bar]:
    """The axis in bars of `per_bar` consecutive periods; a gap stays one bar of its own."""
    out: list[Bar] = []
    run: list[str] = []

    def flush() -> None:
        for i in range(0, len(run), per_bar):
            group = run[i:i + per_bar]
            out.append((group[0], sum(values.get(p, 0.0) for p in group)))
        run.clear()

    for slot in axis:
        if isinstance(slot, Gap):
            flush()
            out.append(slot)
        else:
            run.append(slot)
    flush()
    return out


def fitted(axis: list[Slot], values: dict[str, float], width: int) -> tuple[list[Bar], int]:
    """The bars for `width` columns, and how many periods each holds."""
    per_bar = max(1, math.ceil(len(axis) / width))
    while len(found := bars(axis, values, per_bar)) > width:
        per_bar += 1
    return found, per_bar


def chart(report: Report, width: int) -> list[str]:
    """A title, the bars and the first and last period under them."""
    rows = sorted(report.rows, key=lambda r: r[0])
    use_cost = all(f.cost_usd is not None for _, f, _ in rows)
    values = {label: (f.cost_usd or 0.0) if use_cost else float(f.total) for label, f, _ in rows}
    unit = "day" if report.kind == "daily" else "week"
    axis = slots([label for label, _, _ in rows], unit)
    shown, per_bar = fitted(axis, values, max(10, width))
    top = max((b[1] for b in shown if not isinstance(b, Gap)), default=0.0) or 1
    line = "".join(GAP_MARK if isinstance(b, Gap) else
                   LEVELS[max(1, round(b[1] / top * 8))] if b[1] > 0 else LEVELS[0]
                   for b in shown)
    first, last = rows[0][0], rows[-1][0]
    peak_label = max(values, key=lambda k: values[k])
    peak = f"${values[peak_label]:,.2f}" if use_cost else short(values[peak_label])
    notes = [f"peak {peak} on {peak_label}"]
    if per_bar > 1:
        notes.append(f"a bar is {per_bar} {unit}s")
    quiet = [b for b in shown if isinstance(b, Gap)]
    if len(quiet) == 1:
        notes.append(f"{GAP_MARK}: {quiet[0].periods} {unit}s without sessions")
    elif quiet:
        longest = max(g.periods for g in quiet)
        notes.append(f"{GAP_MARK}: {len(quiet)} stretches without sessions, the longest "
                     f"{longest} {unit}s")
    what = "cost" if use_cost else "tokens"
    title = f"{what} per {unit}, {first} to {last} ({'; '.join(notes)})"
    under = first if len(line) < len(first) + len(last) + 2 else \
        first + " " * (len(line) - len(first) - len(last)) + last
    return [title, line, under, ""]

