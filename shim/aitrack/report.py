"""`aitrack report`: the ledger's usage as a terminal table, JSON or CSV.

report_build.py computes the figures; this module lays them out. The terminal table has
thousands separators (abbreviated, with columns dropped, when the terminal is narrow), a
sparkline of each period's cost, and colours only on a terminal without NO_COLOR. A
session table shows the newest SESSION_TABLE_ROWS sessions unless --limit says otherwise;
JSON and CSV list every row. The JSON shape is documented in README.md and only ever grows.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from pathlib import Path

from aitrack.pricing import PriceTable
from aitrack.report_build import (
    CONTRIB_FIELDS,
    TOKEN_FIELDS,
    Figures,
    Options,
    Report,
    build,
)

SESSION_TABLE_ROWS = 50  # the session table's default --limit: the newest sessions
START_HINT = ("No sessions in the ledger yet. Start one with `aitrack claude ...` or "
              "`aitrack codex ...` (or `aitrack run -- CMD` for any OTLP tool), "
              "then run `aitrack report` again.")


# ---------------------------------------------------------------- machine-readable output


def _iso(ts: float | None, tz: tzinfo) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _flat(fig: Figures) -> dict:
    return {
        "sessions": fig.sessions,
        **{k: fig.tokens[k] for k in TOKEN_FIELDS},
        "total": fig.total,
        "cost_usd": _money(fig.cost_usd),
        "cost_source": fig.cost_source,
        "unpriced_models": sorted(fig.unpriced),
        **{k: int(fig.contrib[k]) for k in CONTRIB_FIELDS},
        "cost_per_commit": _money(fig.cost_per_commit),
    }


def _tokens(fig: Figures) -> dict:
    return {**{k: fig.tokens[k] for k in TOKEN_FIELDS}, "total": fig.total}


def _session_row(report: Report, sid: str, fig: Figures, models: list) -> dict:
    facts = report.sessions.get(sid, {})
    tz = report.opts.tz
    started, ended = facts.get("started_at"), facts.get("ended_at")
    row = {
        "id": sid,
        "tool": facts.get("tool"),
        "tool_version": facts.get("tool_version"),
        "started_at": _iso(started, tz),
        "ended_at": _iso(ended, tz),
        "duration_s": round(ended - started, 3) if started is not None and ended else None,
        "exit_code": facts.get("exit_code"),
        "project": facts.get("project"),
        "cwd": facts.get("cwd"),
        "models": sorted(fig.models),
        "tokens": _tokens(fig),
        "cost_usd": _money(fig.cost_usd),
        "cost_source": fig.cost_source,
        "unpriced_models": sorted(fig.unpriced),
        **{k: int(fig.contrib[k]) for k in CONTRIB_FIELDS},
        "cost_per_commit": _money(fig.cost_per_commit),
    }
    if report.opts.breakdown:
        row["breakdown"] = [{"model": m, "tokens": _tokens(f), "cost_usd": _money(f.cost_usd),
                             "cost_source": f.cost_source} for m, f in models]
    return row


def to_json(report: Report) -> dict:
    """The documented JSON shape (README, "Report JSON")."""
    meta = {"timezone": report.opts.tz_name, "prices_as_of": report.prices_as_of,
            "unpriced_models": sorted(report.totals.unpriced)}
    if report.kind == "session":
        return {
            "sessions": [_session_row(report, *r) for r in report.rows],
            "totals": {"sessions": report.totals.sessions, "tokens": _tokens(report.totals),
                       "cost_usd": _money(report.totals.cost_usd),
                       "cost_source": report.totals.cost_source},
            **meta,
        }
    rows = []
    for label, fig, models in report.rows:
        row = {"period": label, **_flat(fig), "models": sorted(fig.models)}
        if report.opts.breakdown and report.kind != "model":
            row["breakdown"] = [{"model": m, **_flat(f)} for m, f in models]
        rows.append(row)
    key = {"model": "models"}.get(report.kind, report.kind)
    return {key: rows, "totals": _flat(report.totals), **meta}


CSV_PERIOD_FIELDS = ("period", "model", "sessions", *TOKEN_FIELDS, "total", "cost_usd",
                     "cost_source", *CONTRIB_FIELDS, "cost_per_commit")
CSV_SESSION_FIELDS = ("id", "model", "tool", "tool_version", "started_at", "ended_at",
                      "duration_s", "exit_code", "project", *TOKEN_FIELDS, "total", "cost_usd",
                      "cost_source", *CONTRIB_FIELDS, "cost_per_commit")


def to_csv(report: Report) -> str:
    """One header line, then one line per row (and per model with --breakdown).

    `model` is empty on a period's own line and names the model on breakdown lines.
    """
    import csv
    import io

    data = to_json(report)
    out = io.StringIO()
    if report.kind == "session":
        writer = csv.DictWriter(out, CSV_SESSION_FIELDS, extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        for row in data["sessions"]:
            flat = {**row, **row["tokens"], "model": ";".join(row["models"])}
            writer.writerow(flat)
            for sub in row.get("breakdown", []):
                writer.writerow({"id": row["id"], "model": sub["model"], **sub["tokens"],
                                 "cost_usd": sub["cost_usd"], "cost_source": sub["cost_source"]})
        return out.getvalue()
    writer = csv.DictWriter(out, CSV_PERIOD_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in data[next(iter(data))]:
        writer.writerow({**row, "model": row["period"] if report.kind == "model" else ""})
        for sub in row.get("breakdown", []):
            writer.writerow({**sub, "period": row["period"]})
    return out.getvalue()


# ---------------------------------------------------------------- the terminal table


@dataclass
class Style:
    color: bool

    def __call__(self, text: str, **kw) -> str:
        if not self.color:
            return text
        import click

        return click.style(text, **kw)


def _int(n: float) -> str:
    return f"{int(round(n)):,}"


def _short(n: float) -> str:
    """12,345,678 -> 12.3M: for narrow terminals."""
    n = float(n)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size * 0.9995:
            value = n / size
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return f"{int(round(n))}"


def _usd(fig: Figures) -> str:
    cost = fig.cost_usd
    if cost is None:
        return "n/a"
    text = f"${cost:,.2f}"
    return text + "*" if fig.cost_source == "partial" else text


@dataclass
class Column:
    header: str
    full: list[str]
    short: list[str]
    drop_order: int  # 0: never dropped; higher numbers go first
    left: bool = False


def _layout(columns: list[Column], width: int) -> tuple[list[Column], bool, bool]:
    """The columns to show and whether numbers are shortened; shortening comes first."""
    def needed(cols: list[Column], short: bool) -> int:
        return sum(max(len(c.header), *(len(v) for v in (c.short if short else c.full)))
                   for c in cols) + 2 * (len(cols) - 1)

    if needed(columns, False) <= width:
        return columns, False, False
    cols = list(columns)
    while needed(cols, True) > width:
        droppable = [c for c in cols if c.drop_order]
        if not droppable:
            break
        cols.remove(max(droppable, key=lambda c: c.drop_order))
    return cols, True, len(cols) < len(columns)


def _table(columns: list[Column], width: int, style: Style, bold_last: bool,
           dim_rows: set[int]) -> tuple[list[str], bool]:
    cols, short, dropped = _layout(columns, width)
    cells = [c.short if short else c.full for c in cols]
    widths = [max(len(c.header), *(len(v) for v in vals)) for c, vals in zip(cols, cells,
                                                                            strict=True)]
    n_rows = len(cells[0]) if cells else 0

    def line(values: list[str]) -> str:
        parts = [v.ljust(w) if c.left else v.rjust(w)
                 for c, v, w in zip(cols, values, widths, strict=True)]
        return "  ".join(parts).rstrip()

    out = [style(line([c.header for c in cols]), bold=True),
           "  ".join("-" * w for w in widths)]
    for i in range(n_rows):
        text = line([vals[i] for vals in cells])
        if bold_last and i == n_rows - 1:
            out.append("  ".join("-" * w for w in widths))
            text = style(text, bold=True)
        elif i in dim_rows:
            text = style(text, dim=True)
        out.append(text)
    return out, dropped


def _spark(values: list[float]) -> str:
    bars = " ▁▂▃▄▅▆▇█"
    top = max(values) or 1
    return "".join(bars[max(1, round(v / top * 8))] if v > 0 else bars[0] for v in values)


def render(report: Report, width: int, color: bool, chart: bool) -> str:
    style = Style(color)
    kind = report.kind
    if not report.rows:
        return "No sessions match these filters.\n"
    lines: list[str] = []
    entries: list[tuple[str, Figures, bool]] = []  # label, figures, is a model sub-row
    for label, fig, models in report.rows:
        if kind == "session":
            facts = report.sessions.get(label, {})
            started = facts.get("started_at")
            when = (datetime.fromtimestamp(started, report.opts.tz).strftime("%Y-%m-%d %H:%M")
                    if started is not None else "?")
            label = f"{when} {facts.get('tool') or ''}".rstrip()
        entries.append((label, fig, False))
        if report.opts.breakdown and kind != "model":
            entries += [(f"  {m}", f, True) for m, f in models]
    entries.append(("Total", report.totals, False))
    figs = [f for _, f, _ in entries]
    has_contrib = any(report.totals.contrib[k] for k in CONTRIB_FIELDS)

    def col(header: str, values: list[str], drop: int, short: list[str] | None = None,
            left: bool = False) -> Column:
        return Column(header, values, short or values, drop, left)

    def tokens(key: str) -> tuple[list[str], list[str]]:
        vals = [f.tokens[key] if key != "total" else f.total for f in figs]
        return [_int(v) for v in vals], [_short(v) for v in vals]

    first = {"daily": "Date", "weekly": "Week of", "monthly": "Month", "session": "Started",
             "model": "Model"}[kind]
    columns = [col(first, [e[0] for e in entries], 0, left=True)]
    if kind == "session":
        projects = [report.sessions.get(label, {}).get("project") or "" for label, _, _ in
                    report.rows]
        proj_cells, i = [], 0
        for _, _, sub in entries:
            if sub:
                proj_cells.append("")
            elif i < len(projects):
                proj_cells.append(projects[i])
                i += 1
            else:
                proj_cells.append("")
        columns.append(col("Project", proj_cells, 5, [p[:12] for p in proj_cells], left=True))
        models = ["" if sub else ", ".join(sorted(f.models)) for _, f, sub in entries]
        models[-1] = ""
        columns.append(col("Models", models, 8, [m[:18] for m in models], left=True))
    else:
        columns.append(col("Sessions", [_int(f.sessions) for f in figs], 2))
    for header, key, drop in (("Input", "input", 0), ("Output", "output", 0),
                              ("Cache read", "cache_read", 4 if kind == "session" else 3),
                              ("Cache write", "cache_creation", 4), ("Total", "total", 0)):
        if kind == "session" and key in ("input", "output"):
            drop = 3
        full, short = tokens(key)
        columns.append(col(header, full, drop, short))
    columns.append(col("Cost (USD)", [_usd(f) for f in figs], 0))
    if has_contrib:
        columns.append(col("Lines +/-", [f"+{_int(f.contrib['lines_added'])}/"
                                         f"-{_int(f.contrib['lines_removed'])}" for f in figs],
                           10, [f"+{_short(f.contrib['lines_added'])}/"
                                f"-{_short(f.contrib['lines_removed'])}" for f in figs]))
        columns.append(col("Commits", [_int(f.contrib["commits"]) for f in figs], 9))
        columns.append(col("PRs", [_int(f.contrib["pull_requests"]) for f in figs], 11))
        per_commit = [("n/a" if f.cost_per_commit is None else f"${f.cost_per_commit:,.2f}")
                      for f in figs]
        columns.append(col("$/commit", per_commit, 12))
    dim = {i for i, e in enumerate(entries) if e[2]}
    table, dropped = _table(columns, width, style, bold_last=True, dim_rows=dim)

    if chart and kind in ("daily", "weekly") and len(report.rows) > 1:
        lines += _chart(report, width)
    lines += table
    import textwrap

    for line in _footer(report, dropped):
        wrapped = textwrap.wrap(line, width) or [""]
        lines += [style(w, fg="yellow") if line.startswith("No price") else w for w in wrapped]
    return "\n".join(lines) + "\n"


def _chart(report: Report, width: int) -> list[str]:
    rows = sorted(report.rows, key=lambda r: r[0])
    use_cost = all(r[1].cost_usd is not None for r in rows)
    values = [(r[1].cost_usd or 0.0) if use_cost else float(r[1].total) for r in rows]
    room = max(10, width - 24)
    values, first = values[-room:], rows[-len(values[-room:])][0]
    what = "cost" if use_cost else "tokens"
    peak = f"${max(values):,.2f}" if use_cost else _short(max(values))
    unit = "day" if report.kind == "daily" else "week"
    return [f"{what} per {unit} since {first} (peak {peak})", _spark(values), ""]


def _footer(report: Report, dropped: bool) -> list[str]:
    out = []
    unpriced = sorted(report.totals.unpriced)
    if unpriced:
        names = ", ".join(unpriced)
        out.append(f"No price for: {names}. Their cost is not counted (n/a, or * for a "
                   "partial sum).")
        out.append(f'Add prices to your profile: [prices."{unpriced[0]}"] input = ..., '
                   "output = ..., cache_read = ... (USD per million tokens).")
    if report.hidden:
        what = "sessions" if report.kind == "session" else "rows"
        out.append(f"{report.hidden:,} more {what} not shown (the totals include them): use "
                   "--limit N (0 for all), --json or --csv.")
    if dropped:
        out.append("Narrow terminal: some columns are hidden; widen it or use --json.")
    if report.prices_as_of and report.totals.n_estimated:
        out.append(f"Estimated costs use list prices as of {report.prices_as_of}.")
    return ([""] + out) if out else []


# ---------------------------------------------------------------- entry point


def open_ledger(path: Path) -> sqlite3.Connection | None:
    """The ledger, read-only; None when it does not exist yet (never created by a report)."""
    if not path.exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    db.execute("PRAGMA query_only = 1")
    return db


def is_empty(db: sqlite3.Connection | None) -> bool:
    if db is None:
        return True
    try:
        return db.execute("SELECT 1 FROM sessions LIMIT 1").fetchone() is None
    except sqlite3.OperationalError:  # a ledger the wrapper has not set up yet
        return True


def run(ledger: Path, opts: Options, prices: PriceTable, fmt: str = "table",
        stream=None) -> None:
    stream = stream or sys.stdout
    db = open_ledger(ledger)
    if is_empty(db):
        if fmt == "table":
            stream.write(START_HINT + "\n")
            return
        report = Report(opts.kind, opts, [], Figures(), prices.as_of)
        print(START_HINT, file=sys.stderr)
    else:
        if fmt == "table" and opts.kind == "session" and opts.limit is None:
            opts = replace(opts, limit=SESSION_TABLE_ROWS)
        report = build(db, opts, prices)
    if fmt == "json":
        import json

        stream.write(json.dumps(to_json(report), indent=2) + "\n")
    elif fmt == "csv":
        stream.write(to_csv(report))
    else:
        import shutil

        tty = stream.isatty()
        color = tty and not os.environ.get("NO_COLOR")
        width = shutil.get_terminal_size((80, 24)).columns
        stream.write(render(report, width, color, chart=tty))
