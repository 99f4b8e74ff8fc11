"""`aitrack report`: the ledger's usage as a terminal table, JSON or CSV.

figures.py computes the figures; this module lays them out. The terminal table has
thousands separators, a sparkline of each period's cost and colours on a terminal without
NO_COLOR. It fits the terminal's width, or --width: numbers are abbreviated first, then
columns drop out in one order for every kind (the cache columns merge into one before the
token columns go together), so the token columns shown always add up to Total. A file or
a pipe gets every column. A session table shows the newest SESSION_TABLE_ROWS sessions
unless --limit says otherwise; JSON and CSV list every row. The JSON shape is documented in
README.md and only ever grows.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import textwrap
from dataclasses import dataclass, field, replace
from datetime import date, datetime, tzinfo
from pathlib import Path

from aitrack.domain import pricing
from aitrack.domain.pricing import PriceTable
from aitrack.reports.figures import build, why_empty
from aitrack.reports.periods import Options
from aitrack.reports.rows import CONTRIB_FIELDS, TOKEN_FIELDS, Decisions, Figures, Report
from aitrack.store.ledger import SOURCE_NAMES

SESSION_TABLE_ROWS = 50  # the session table's default --limit: the newest sessions
START_HINT = ("No sessions in the ledger yet. Start one with `aitrack claude ...` or "
              "`aitrack codex ...` (or `aitrack run -- CMD` for any OTLP tool), "
              "then run `aitrack report` again.")
# SQLite's primary result codes of a damaged ledger: corrupt, not a database (an I/O error,
# a full disk say, is cli.common's to explain)
UNREADABLE = (11, 26)
UNKNOWN = "—"  # an exit status or duration aitrack does not know
NBSP = "\u00a0"  # joins words the footer must not wrap between
SHORT_SOURCES = {"telemetry": "otel"}  # the table's name for a source, where it is shorter


class LedgerError(Exception):
    """The ledger cannot be read; the message is one line naming the fix."""


# ---------------------------------------------------------------- machine-readable output


def _iso(ts: float | None, tz: tzinfo) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _contrib(fig: Figures) -> dict:
    """Contribution figures; null where they are unknown (a model's: they are per session)."""
    if not fig.has_contrib:
        return {**dict.fromkeys(CONTRIB_FIELDS), "cost_per_commit": None}
    return {**{k: int(fig.contrib[k]) for k in CONTRIB_FIELDS},
            "cost_per_commit": _money(fig.cost_per_commit)}


def _flat(fig: Figures) -> dict:
    return {
        "sessions": fig.sessions,
        **{k: fig.tokens[k] for k in TOKEN_FIELDS},
        "total": fig.total,
        "cost_usd": _money(fig.cost_usd),
        "cost_source": fig.cost_source,
        "unpriced_models": sorted(fig.unpriced),
        **_contrib(fig),
    }


def _tokens(fig: Figures) -> dict:
    return {**{k: fig.tokens[k] for k in TOKEN_FIELDS}, "total": fig.total}


def source_names(flags: int | None) -> list[str]:
    """sessions.sources bit flags as names: ["telemetry", "transcript", "wrapper"]."""
    return [name for bit, name in sorted(SOURCE_NAMES.items()) if (flags or 0) & bit]


def duration_s(facts: dict) -> float | None:
    started, ended = facts.get("started_at"), facts.get("ended_at")
    return round(ended - started, 3) if started is not None and ended else None


def _session_row(report: Report, sid: str, fig: Figures, models: list) -> dict:
    facts = report.sessions.get(sid, {})
    tz = report.opts.tz
    row = {
        "id": sid,
        "tool": facts.get("tool"),
        "tool_version": facts.get("tool_version"),
        "started_at": _iso(facts.get("started_at"), tz),
        "ended_at": _iso(facts.get("ended_at"), tz),
        "duration_s": duration_s(facts),
        "exit_code": facts.get("exit_code"),
        "project": facts.get("project"),
        "cwd": facts.get("cwd"),
        "models": sorted(fig.models),
        "tokens": _tokens(fig),
        "cost_usd": _money(fig.cost_usd),
        "cost_source": fig.cost_source,
        "unpriced_models": sorted(fig.unpriced),
        **_contrib(fig),
        "entrypoint": facts.get("entrypoint"),
        "sources": source_names(facts.get("sources")),
    }
    if report.opts.breakdown:
        row["breakdown"] = [{"model": m, "tokens": _tokens(f), "cost_usd": _money(f.cost_usd),
                             "cost_source": f.cost_source} for m, f in models]
    return row


def acceptance_json(decisions: list[Decisions]) -> list[dict]:
    """Per tool: accepted and rejected tool uses, the rate, and the same per tool name."""
    def counts(accepted: int, rejected: int) -> dict:
        return {"accepted": accepted, "rejected": rejected,
                "acceptance_rate": Decisions.rate(accepted, rejected)}

    return [{"tool": d.tool, **counts(d.accepted, d.rejected),
             "tool_names": [{"tool_name": name, **counts(*n)} for name, n in d.by_name.items()]}
            for d in decisions]


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
    out = {key: rows, "totals": _flat(report.totals), **meta}
    if report.decisions is not None:
        out["acceptance"] = acceptance_json(report.decisions)
    return out


CSV_PERIOD_FIELDS = ("period", "model", "sessions", *TOKEN_FIELDS, "total", "cost_usd",
                     "cost_source", *CONTRIB_FIELDS, "cost_per_commit")
CSV_SESSION_FIELDS = ("id", "model", "tool", "tool_version", "started_at", "ended_at",
                      "duration_s", "exit_code", "project", *TOKEN_FIELDS, "total", "cost_usd",
                      "cost_source", *CONTRIB_FIELDS, "cost_per_commit", "entrypoint",
                      "sources")


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
            flat = {**row, **row["tokens"], "model": ";".join(row["models"]),
                    "sources": ";".join(row["sources"])}
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


# ---------------------------------------------------------------- cells


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


def usd(fig: Figures) -> str:
    """`$1.25`; `$0.08*` when some models are unpriced (the known part); `unpriced`."""
    cost = fig.cost_usd
    if cost is None:
        return "unpriced"
    text = f"${cost:,.2f}"
    return text + "*" if fig.cost_source == "partial" else text


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


# ---------------------------------------------------------------- the terminal table


@dataclass
class Style:
    color: bool

    def __call__(self, text: str, **kw) -> str:
        if not self.color or not kw:
            return text
        import click

        return click.style(text, **kw)


@dataclass(eq=False)  # compared by identity: layouts ask which of these very columns show
class Column:
    header: str
    full: list[str]
    short: list[str]
    drop: int  # 0: never dropped; the highest goes first, columns of equal `drop` together
    left: bool = False
    stand_in: Column | None = None  # shown in their place when these drop (a merged column)
    styles: list[dict] = field(default_factory=list)  # per cell, click.style keywords


# The order columns drop out in when the table is too wide (the highest first), the same in
# every kind. The cache columns merge into "Cache" before Input, Output and Cache go
# together, so the token columns shown always add up to Total.
DROP = {"Source": 20, "Entry": 19, "PRs": 18, "Lines +/-": 17, "$/commit": 16, "Commits": 15,
        "Models": 14, "Cache read": 13, "Cache write": 13, "Project": 12, "Duration": 11,
        "Sessions": 10, "Input": 7, "Output": 7, "Cache": 7, "Tool": 5}


def _width_of(cols: list[Column], short: bool) -> int:
    return sum(max(len(c.header), *(len(v) for v in (c.short if short else c.full)))
               for c in cols) + 2 * (len(cols) - 1)


def _layout(columns: list[Column], width: int | None) -> tuple[list[Column], bool, list[str]]:
    """The columns to show, whether numbers are shortened (that comes first) and the headers
    of the columns left out."""
    if width is None or _width_of(columns, False) <= width:
        return columns, False, []
    cols = list(columns)
    while _width_of(cols, True) > width:
        top = max((c.drop for c in cols), default=0)
        if not top:
            break
        at = next(i for i, c in enumerate(cols) if c.drop == top)
        gone = [c for c in cols if c.drop == top]
        cols = [c for c in cols if c.drop != top]
        stand_in = next((c.stand_in for c in gone if c.stand_in), None)
        if stand_in is not None:
            cols.insert(at, stand_in)
    # a single column dropped on the way may fit again in the room left (never one of a
    # group, such as the token columns, which go and come together)
    alone = [c for c in columns if c.drop and c.stand_in is None
             and sum(o.drop == c.drop for o in columns) == 1]
    for c in sorted(alone, key=lambda c: c.drop):
        if c not in cols:
            trial = [o for o in columns if o in cols or o is c]
            trial += [o for o in cols if o not in columns]  # stand-ins, kept in place below
            trial.sort(key=lambda o: _position(columns, o))
            if _width_of(trial, True) <= width:
                cols = trial
    shown = {id(c) for c in cols}
    return cols, True, [c.header for c in columns if id(c) not in shown
                        and (c.stand_in is None or id(c.stand_in) not in shown)]


def _position(columns: list[Column], col: Column) -> float:
    """Where a column stands; a stand-in stands where the first column it replaces did."""
    for i, c in enumerate(columns):
        if c is col or c.stand_in is col:
            return i
    return len(columns)


def _table(columns: list[Column], width: int | None, style: Style, bold_last: bool,
           dim_rows: set[int]) -> tuple[list[str], list[str]]:
    """The table's lines and the headers of the columns left out to fit `width`."""
    cols, short, hidden = _layout(columns, width)
    cells = [c.short if short else c.full for c in cols]
    widths = [max(len(c.header), *(len(v) for v in vals))
              for c, vals in zip(cols, cells, strict=True)]
    n_rows = len(cells[0]) if cells else 0

    def line(values: list[str], row: int | None = None) -> str:
        parts = []
        for c, v, w in zip(cols, values, widths, strict=True):
            text = v.ljust(w) if c.left else v.rjust(w)
            if row is not None and c.styles and c.styles[row]:
                text = style(text, **c.styles[row])
            parts.append(text)
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [style(line([c.header for c in cols]), bold=True), rule]
    for i in range(n_rows):
        values = [vals[i] for vals in cells]
        if bold_last and i == n_rows - 1:
            out += [rule, style(line(values), bold=True)]
        elif i in dim_rows:
            out.append(style(line(values), dim=True))
        else:
            out.append(line(values, i))
    return out, hidden


def _spark(values: list[float]) -> str:
    bars = " ▁▂▃▄▅▆▇█"
    top = max(values) or 1
    return "".join(bars[max(1, round(v / top * 8))] if v > 0 else bars[0] for v in values)


@dataclass
class _Entry:
    label: str
    fig: Figures
    sub: bool  # a model's sub-row (--breakdown)
    facts: dict = field(default_factory=dict)  # a session's own row: its facts


def _col(header: str, full: list[str], short: list[str] | None = None, left: bool = False,
         styles: list[dict] | None = None) -> Column:
    return Column(header, full, short or full, DROP.get(header, 0), left, styles=styles or [])


def _columns(report: Report, entries: list[_Entry]) -> list[Column]:
    kind = report.kind
    figs = [e.fig for e in entries]
    first = {"daily": "Date", "weekly": "Week of", "monthly": "Month", "session": "Started",
             "model": "Model"}[kind]
    columns = [_col(first, [e.label for e in entries], left=True)]
    if kind == "session":
        def fact(show) -> list[str]:  # a session's own row has facts; sub-rows, Total none
            return [show(e.facts, e.fig) if e.facts else "" for e in entries]

        projects = fact(lambda f, _: f.get("project") or "")
        models = fact(lambda _, fig: ", ".join(sorted(fig.models)))
        columns += [
            _col("Tool", fact(lambda f, _: f.get("tool") or ""), left=True),
            _col("Exit", fact(lambda f, _: exit_status(f.get("exit_code"))),
                 styles=[{"fg": "red"} if e.facts.get("exit_code") else {} for e in entries]),
            _col("Duration", fact(lambda f, _: duration(duration_s(f)))),
            _col("Entry", fact(lambda f, _: f.get("entrypoint") or UNKNOWN), left=True),
            _col("Source", fact(lambda f, _: "+".join(
                SHORT_SOURCES.get(n, n) for n in source_names(f.get("sources"))) or UNKNOWN),
                left=True),
            _col("Project", projects, [p[:12] for p in projects], left=True),
            _col("Models", models, [m[:18] for m in models], left=True)]
    else:
        columns.append(_col("Sessions", [_int(f.sessions) for f in figs]))

    def tokens(header: str, values: list[float]) -> Column:
        return _col(header, [_int(v) for v in values], [_short(v) for v in values])

    cache = tokens("Cache", [f.tokens["cache_read"] + f.tokens["cache_creation"] for f in figs])
    columns += [tokens("Input", [f.tokens["input"] for f in figs]),
                tokens("Output", [f.tokens["output"] for f in figs]),
                tokens("Cache read", [f.tokens["cache_read"] for f in figs]),
                tokens("Cache write", [f.tokens["cache_creation"] for f in figs]),
                tokens("Total", [f.total for f in figs])]
    columns[-3].stand_in = columns[-2].stand_in = cache
    columns.append(_col("Cost (USD)", [usd(f) for f in figs]))
    if any(report.totals.contrib[k] for k in CONTRIB_FIELDS):
        def contrib(render) -> list[str]:
            return [render(f) if f.has_contrib else "" for f in figs]

        columns.append(_col("Lines +/-",
                            contrib(lambda f: f"+{_int(f.contrib['lines_added'])}/"
                                              f"-{_int(f.contrib['lines_removed'])}"),
                            contrib(lambda f: f"+{_short(f.contrib['lines_added'])}/"
                                              f"-{_short(f.contrib['lines_removed'])}")))
        columns.append(_col("Commits", contrib(lambda f: _int(f.contrib["commits"]))))
        columns.append(_col("PRs", contrib(lambda f: _int(f.contrib["pull_requests"]))))
        columns.append(_col("$/commit", contrib(
            lambda f: UNKNOWN if f.cost_per_commit is None else f"${f.cost_per_commit:,.2f}")))
    return columns


def render(report: Report, width: int | None, color: bool, chart: bool,
           today: date | None = None) -> str:
    """The terminal table; `width` None: every column (a file or a pipe)."""
    style = Style(color)
    kind = report.kind
    if not report.rows:
        return "No sessions match these filters.\n"
    entries: list[_Entry] = []
    for label, fig, models in report.rows:
        facts = report.sessions.get(label, {}) if kind == "session" else {}
        if kind == "session":
            started = facts.get("started_at")
            label = (datetime.fromtimestamp(started, report.opts.tz).strftime("%Y-%m-%d %H:%M")
                     if started is not None else "?")
        entries.append(_Entry(label, fig, False, facts))
        if report.opts.breakdown and kind != "model":
            entries += [_Entry(f"  {m}", f, True) for m, f in models]
    entries.append(_Entry("Total", report.totals, False))
    dim = {i for i, e in enumerate(entries) if e.sub}
    table, hidden = _table(_columns(report, entries), width, style, bold_last=True,
                           dim_rows=dim)

    lines: list[str] = []
    if chart and kind in ("daily", "weekly") and len(report.rows) > 1:
        lines += _chart(report, width or 80)
    lines += table
    if report.decisions:
        lines += [""] + _acceptance_table(report.decisions, width, style)
    for text, verbatim in _footer(report, hidden, width, today):
        if width is None or len(text) <= width:
            wrapped = [text]
        elif verbatim:  # TOML: only a comment may be wrapped, into comment lines
            indent = text[:len(text) - len(text.lstrip())]
            wrapped = (textwrap.wrap(text, width, subsequent_indent=indent + "# ",
                                     break_long_words=False)
                       if text.lstrip().startswith("#") else [text])
        else:
            wrapped = textwrap.wrap(text, width, break_long_words=False,
                                    break_on_hyphens=False) or [""]
        lines += [style(w.replace(NBSP, " "), fg="yellow") if text.startswith("No price")
                  else w.replace(NBSP, " ") for w in wrapped]
    return "\n".join(lines) + "\n"


def rate(accepted: int, rejected: int) -> str:
    value = Decisions.rate(accepted, rejected)
    return UNKNOWN if value is None else f"{value:.1%}"


def _acceptance_table(decisions: list[Decisions], width: int | None,
                      style: Style) -> list[str]:
    """Accepted and rejected tool uses per tool, and per tool name below it."""
    rows: list[tuple[str, int, int]] = []
    dim: set[int] = set()
    for d in decisions:
        rows.append((d.tool, d.accepted, d.rejected))
        for name, (accepted, rejected) in d.by_name.items():
            dim.add(len(rows))
            rows.append((f"  {name}", accepted, rejected))
    columns = [_col("Tool acceptance", [r[0] for r in rows], left=True),
               _col("Accepted", [_int(r[1]) for r in rows]),
               _col("Rejected", [_int(r[2]) for r in rows]),
               _col("Rate", [rate(r[1], r[2]) for r in rows])]
    table, _ = _table(columns, width, style, bold_last=False, dim_rows=dim)
    return table


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


def price_snippet(model: str) -> str:
    """Profile TOML adding a price for `model` (pricing's own when it has one)."""
    own = getattr(pricing, "snippet", None)
    if own is not None:
        return own(model)
    key = model.replace("\\", "\\\\").replace('"', '\\"')
    return (f'[prices."{key}"]\n# USD per million tokens: uncomment and set the list prices\n'
            "# input = 0.0\n# output = 0.0\n# cache_read = 0.0\n")


def stale_prices(as_of: str | None, today: date | None = None) -> str | None:
    """The price table's age warning, once the pricing module offers one."""
    stale_line = getattr(pricing, "stale_line", None)
    return stale_line(as_of, today or date.today()) if stale_line and as_of else None


def _footer(report: Report, hidden: list[str], width: int | None,
            today: date | None) -> list[tuple[str, bool]]:
    """(line, verbatim): verbatim lines (TOML) are never wrapped."""
    out: list[tuple[str, bool]] = []
    unpriced = sorted(report.totals.unpriced)
    if unpriced:
        names = ", ".join(unpriced)
        out.append((f"No price for {names}: its cost is not counted. A row with only unpriced "
                    "models shows `unpriced`; one with priced models too shows their sum and "
                    "a * (a lower bound).", False))
        out.append(("Add a price to your profile (`aitrack paths` shows where), e.g.:", False))
        out += [(f"  {line}", True) for line in price_snippet(unpriced[0]).splitlines()]
    if report.hidden:
        what = "sessions" if report.kind == "session" else "rows"
        out.append((f"{report.hidden:,} more {what} not shown (the totals include them): use "
                    "--limit N (0 for all), --json or --csv.", False))
    if hidden:
        names = ", ".join(h.replace(" ", NBSP) for h in hidden)  # never wrapped inside
        out.append((f"Hidden to fit {width} columns: {names}. Widen the terminal, "
                    "or use --width N, --json or --csv (a file or a pipe gets every column).",
                    False))
    if report.prices_as_of and report.totals.n_estimated:
        out.append((f"Estimated costs use list prices as of {report.prices_as_of}.", False))
        stale = stale_prices(report.prices_as_of, today)
        if stale:
            out.append((stale, False))
    return ([("", True)] + out) if out else []


# ---------------------------------------------------------------- entry point


def open_ledger(path: Path) -> sqlite3.Connection | None:
    """The ledger, read-only; None when it does not exist yet (never created by a report).

    Raises LedgerError when the path is not a ledger a report can read."""
    if path.is_dir():
        raise LedgerError(f"the ledger path {path} is a directory, not a ledger: move it aside "
                          f"(`mv {path} {path}.old`); the next tracked run starts a new ledger")
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        db.execute("PRAGMA query_only = 1")
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF not in UNREADABLE:
            raise
        raise damaged(path, exc) from None
    return db


def damaged(path: Path, exc: sqlite3.Error) -> LedgerError:
    return LedgerError(f"the ledger {path} cannot be read ({exc}): `aitrack doctor` checks it; "
                       f"if it is damaged, move it aside (`mv {path} {path}.broken`) and the "
                       "next tracked run starts a new one")


def is_empty(db: sqlite3.Connection | None) -> bool:
    if db is None:
        return True
    try:
        return db.execute("SELECT 1 FROM sessions LIMIT 1").fetchone() is None
    except sqlite3.OperationalError:  # a ledger the wrapper has not set up yet
        return True


def run(ledger: Path, opts: Options, prices: PriceTable, fmt: str = "table",
        stream=None, width: int | None = None) -> None:
    """Write the report; `width` lays the table out for that many columns (default: the
    terminal's, or every column when `stream` is not a terminal)."""
    stream = stream or sys.stdout
    db = open_ledger(ledger)
    try:
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
            if not report.rows:
                hint = why_empty(db, opts)
                if hint:
                    print(f"aitrack: {hint}", file=sys.stderr)
    except sqlite3.DatabaseError as exc:
        if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF not in UNREADABLE:
            raise
        raise damaged(ledger, exc) from None
    if fmt == "json":
        import json

        stream.write(json.dumps(to_json(report), indent=2) + "\n")
    elif fmt == "csv":
        stream.write(to_csv(report))
    else:
        tty = stream.isatty()
        if width is None and tty:
            import shutil

            width = shutil.get_terminal_size((80, 24)).columns
        color = tty and not os.environ.get("NO_COLOR")
        stream.write(render(report, width, color, chart=tty, today=opts.today))
