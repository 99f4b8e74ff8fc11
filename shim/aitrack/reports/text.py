"""Figures and facts as text, the same in the terminal table and on the dashboard."""

from __future__ import annotations

from aitrack.reports.rows import Decisions, Figures
from aitrack.reports.sessions import source_names

UNKNOWN = "—"  # an exit status or duration aitrack does not know
SHORT_SOURCES = {"telemetry": "otel"}  # the table's name for a source, where it is shorter


def thousands(n: float) -> str:
    return f"{int(round(n)):,}"


def short(n: float) -> str:
    """12,345,678 -> 12.3M: for narrow terminals."""
    n = float(n)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size * 0.9995:
            value = n / size
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return f"{int(round(n))}"


def usd(fig: Figures) -> str:
    """`$1.25`; `$0.08*` when some models are unpriced (the known part); `unpriced`."""
    cost = fig.cost_usd
    if cost is None:
        return "unpriced"
    text = f"${cost:,.2f}"
    return text + "*" if fig.cost_source == "partial" else text


def money(value: float | None) -> str:
    """The page's dollars: no cents from $10,000 on."""
    if value is None:
        return "unpriced"
    return f"${value:,.2f}" if abs(value) < 1e4 else f"${value:,.0f}"


def cost_cell(fig: Figures) -> str:
    """As the report's table says it: `unpriced`, or a * on a partial sum."""
    return money(fig.cost_usd) + ("*" if fig.cost_source == "partial" else "")


def axis_money(v: float) -> str:
    if v >= 1000:
        return f"${v / 1000:g}k"
    return f"${v:g}" if v >= 1 or v == 0 else f"${v:.2f}"


def duration(seconds: float | None) -> str:
    """90.5 -> 1m 30s; 7380 -> 2h 03m."""
    if seconds is None:
        return UNKNOWN
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def exit_status(code: int | None) -> str:
    return UNKNOWN if code is None else str(code)


def sources(flags: int | None) -> str:
    """Where a session was seen, short: `otel+transcript+wrapper`."""
    return "+".join(SHORT_SOURCES.get(n, n) for n in source_names(flags)) or UNKNOWN


def rate(accepted: int, rejected: int) -> str:
    value = Decisions.rate(accepted, rejected)
    return UNKNOWN if value is None else f"{value:.1%}"

