"""The time axis of a chart: every period from the first row's to the last's, with long
stretches without a session collapsed into one marked gap.

A continuous axis keeps quiet days visible as quiet; but months of nothing (a history from
last winter, then today) would squeeze every bar into a corner. So a run of more than
GAP_PERIODS empty periods takes one slot, drawn as a break and named with its dates.
The dashboard's charts and the terminal's bar chart share this axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

# longer runs of empty periods collapse into a gap: a holiday keeps its place, a season not
GAP_PERIODS = {"day": 14, "week": 8}


@dataclass(frozen=True)
class Gap:
    """Empty periods collapsed into one slot: from `first` to `last`, `periods` of them."""

    first: str
    last: str
    periods: int

    def describe(self, unit: str) -> str:
        return f"no sessions from {self.first} to {self.last} ({self.periods} {unit}s)"


Slot = str | Gap  # a period's label, or a gap


def periods_between(first: str, last: str, unit: str) -> list[str]:
    """Every period label from `first` to `last` (days, or weeks by their first day)."""
    step = timedelta(days=1 if unit == "day" else 7)
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    return [(a + i * step).isoformat() for i in range((b - a) // step + 1)]


def slots(labels: list[str], unit: str) -> list[Slot]:
    """The axis for periods `labels` (sorted ISO dates): each period in their span, and a
    Gap in place of each run of more than GAP_PERIODS[unit] empty ones."""
    if not labels:
        return []
    busy = set(labels)
    out: list[Slot] = []
    empty: list[str] = []
    longest = GAP_PERIODS[unit]

    def flush() -> None:
        if len(empty) > longest:
            out.append(Gap(empty[0], empty[-1], len(empty)))
        else:
            out.extend(empty)
        empty.clear()

    for label in periods_between(labels[0], labels[-1], unit):
        if label in busy:
            flush()
            out.append(label)
        else:
            empty.append(label)
    flush()
    return out


def gaps(axis: list[Slot]) -> list[Gap]:
    return [s for s in axis if isinstance(s, Gap)]
