"""`aitrack report`: the ledger's usage as a terminal table, JSON or CSV.

figures.py computes the figures; this module lays them out. The terminal table has
thousands separators, a bar chart of each period's cost (spark.py) and colours (on a
terminal, unless NO_COLOR; or as --color and FORCE_COLOR say). It fits the terminal's
width, or --width (layout.py): numbers are abbreviated and names cut first, then columns
drop out in one order for every kind (the cache columns merge into one before the token
columns go together), so the token columns shown always add up to Total. A file or a pipe
gets every column and every row; on a terminal a session table shows the newest
SESSION_TABLE_ROWS sessions unless --limit says otherwise; JSON and CSV (exports.py) list
every row.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
import textwrap
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path

from aitrack.domain import pricing
from aitrack.domain.display import MAX_LINE, safe
from aitrack.domain.pricing import PriceTable
from aitrack.reports.exports import to_csv, to_json
from aitrack.reports.figures import build, why_empty
from aitrack.reports.layout import Column, Style, cut_end, cut_list, draw, wants_color
from aitrack.reports.periods import Options
from aitrack.reports.readonly import START_HINT, is_empty, open_ledger, reading
from aitrack.reports.rows import CONTRIB_FIELDS, Decisions, Figures, Report
from aitrack.reports.sessions import duration_s
from aitrack.reports.spark import chart
from aitrack.reports.text import (
    UNKNOWN,
    duration,
    exit_status,
    rate,
    short,
    sources,
    thousands,
    usd,
)

SESSION_TABLE_ROWS = 50  # the session table's default --limit: the newest sessions
NBSP = "\u00a0"  # joins words the footer must not wrap between

# The order columns drop out in when the table is too wide (the highest first), the same in
# every kind. The cache columns merge into "Cache" before Input, Output and Cache go
# together, so the token columns shown always add up to Total.
DROP = {"Session id": 21, "Source": 20, "Entry": 19, "PRs": 18, "Lines +/-": 17, "$/commit": 16,
        "Commits": 15, "Models": 14, "Cache read": 13, "Cache write": 13, "Project": 12,
        "Duration": 11, "Sessions": 10, "Input": 7, "Output": 7, "Cache": 7, "Tool": 5}


@dataclass
class _Entry:
    label: str
    fig: Figures
    sub: bool  # a model's sub-row (--breakdown)
    facts: dict = field(default_factory=dict)  # a session's own row: its facts


def _col(header: str, full: list[str], narrow: list[str] | None = None, left: bool = False,
         styles: list[dict] | None = None, **names) -> Column:
    return Column(header, full, narrow or full, DROP.get(header, 0), left, styles=styles or [],
                  **names)


def _columns(report: Report, entries: list[_Entry]) -> list[Column]:
    kind = report.kind
    figs = [e.fig for e in entries]
    first = {"daily": "Date", "weekly": "Week of", "monthly": "Month", "session": "Started",
             "model": "Model", "project": "Project"}[kind]
    names = {"cut": cut_end, "least": 12} if kind == "project" else {}
    columns = [_col(first, [e.label for e in entries], left=True, **names)]
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
            _col("Source", fact(lambda f, _: sources(f.get("sources"))), left=True),
            _col("Project", projects, left=True, cut=cut_end, least=12),
            _col("Models", models, left=True, cut=cut_list, least=18)]
    else:
        columns.append(_col("Sessions", [thousands(f.sessions) for f in figs]))

    def tokens(header: str, values: list[float]) -> Column:
        return _col(header, [thousands(v) for v in values], [short(v) for v in values])

    cache = tokens("Cache", [f.tokens["cache_read"] + f.tokens["cache_creation"] for f in figs])
    columns += [tokens("Input", [f.tokens["input"] for f in figs]),
                tokens("Output", [f.tokens["output"] for f in figs]),
                tokens("Cache read", [f.tokens["cache_read"] for f in figs]),
                tokens("Cache write", [f.tokens["cache_creation"] for f in figs]),
                tokens("Total", [f.total for f in figs])]
    columns[-3].stand_in = columns[-2].stand_in = cache
    columns.append(_col("Cost (USD)", [usd(f) for f in figs]))
    if any(report.totals.contrib[k] for k in CONTRIB_FIELDS):
        def contrib(show) -> list[str]:
            return [show(f) if f.has_contrib else "" for f in figs]

        columns.append(_col("Lines +/-",
                            contrib(lambda f: f"+{thousands(f.contrib['lines_added'])}/"
                                              f"-{thousands(f.contrib['lines_removed'])}"),
                            contrib(lambda f: f"+{short(f.contrib['lines_added'])}/"
                                              f"-{short(f.contrib['lines_removed'])}")))
        columns.append(_col("Commits", contrib(lambda f: thousands(f.contrib["commits"]))))
        columns.append(_col("PRs", contrib(lambda f: thousands(f.contrib["pull_requests"]))))
        columns.append(_col("$/commit", contrib(
            lambda f: UNKNOWN if f.cost_per_commit is None else f"${f.cost_per_commit:,.2f}")))
    if kind == "session":  # the tool's own id, whole: `claude --resume ID`, `codex resume ID`
        columns.append(_col("Session id", [e.facts.get("tool_session_id") or UNKNOWN
                                           if e.facts else "" for e in entries], left=True))
    return columns


def render(report: Report, width: int | None, color: bool, bars: bool,
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
        shown = label or "(no project)" if kind == "project" else label
        entries.append(_Entry(shown, fig, False, facts))
        if report.opts.breakdown and kind != "model":
            entries += [_Entry(f"  {m}", f, True) for m, f in models]
        if report.opts.by_tool:
            entries += [_Entry(f"  {t}", f, True) for t, f in report.tools.get(label, [])]
    entries.append(_Entry("Total", report.totals, False))
    dim = {i for i, e in enumerate(entries) if e.sub}
    table, hidden = draw(_columns(report, entries), width, style, bold_last=True, dim_rows=dim)

    lines: list[str] = []
    if bars and kind in ("daily", "weekly") and len(report.rows) > 1:
        title, *rest = chart(report, width or 80)
        lines += _wrap(title, False, width) + rest
    lines += table
    if report.decisions:
        lines += [""] + _acceptance_table(report.decisions, width, style)
    for text, verbatim in _footer(report, hidden, width, today):
        lines += [style(w.replace(NBSP, " "), fg="yellow") if text.startswith("No price")
                  else w.replace(NBSP, " ") for w in _wrap(text, verbatim, width)]
    return "\n".join(lines) + "\n"


def _wrap(text: str, verbatim: bool, width: int | None) -> list[str]:
    """A footer line in lines of at most `width` (None: as it is)."""
    if width is None or len(text) <= width:
        return [text]
    if verbatim:  # TOML: only a comment may be wrapped, into comment lines
        indent = text[:len(text) - len(text.lstrip())]
        return (textwrap.wrap(text, width, subsequent_indent=indent + "# ",
                              break_long_words=False)
                if text.lstrip().startswith("#") else [text])
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


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
               _col("Accepted", [thousands(r[1]) for r in rows]),
               _col("Rejected", [thousands(r[2]) for r in rows]),
               _col("Rate", [rate(r[1], r[2]) for r in rows])]
    table, _ = draw(columns, width, style, bold_last=False, dim_rows=dim)
    return table


def _footer(report: Report, hidden: list[str], width: int | None,
            today: date | None) -> list[tuple[str, bool]]:
    """(line, verbatim): verbatim lines (TOML) are never wrapped."""
    out: list[tuple[str, bool]] = []
    unpriced = sorted(report.totals.unpriced)
    if unpriced:
        names = ", ".join(safe(name) for name in unpriced)
        one = len(unpriced) == 1
        out.append((f"No price for {names}: {'its' if one else 'their'} cost is not counted "
                    "(`unpriced`, or a lower bound marked *); `aitrack prices "
                    f"{' '.join(safe(_shell_word(m)) for m in unpriced)}` shows how to add "
                    f"{'one' if one else 'them'}.", False))
    for answered, names in sorted(report.requested.items()):
        asked = ", ".join(safe(name) for name in names)
        out.append((f"{safe(answered)} was requested as {asked} (usage counts under the "
                    "model that answered).", False))
    for sid, lines in report.notes.items():
        out += [(f"Session {safe(sid)}: {line}.", False) for line in lines]
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
        stale = pricing.stale_line(report.prices_as_of, today)
        if stale:
            out.append((stale, False))
    return ([("", True)] + out) if out else []


def _shell_word(text: str) -> str:
    """A model name as a shell argument: quoted only when it has to be."""
    return text if re.fullmatch(r"[\w@%+=:,./-]+", text) else shlex.quote(text)


def run(ledger: Path, opts: Options, prices: PriceTable, fmt: str = "table",
        stream=None, width: int | None = None, color: bool | None = None) -> bool:
    """Write the report; `width` lays the table out for that many columns (default: the
    terminal's, or every column when `stream` is not a terminal); `color` None: as the
    terminal and the environment say. False when a --project or --tool names nothing in
    the ledger (said on stderr)."""
    stream = stream or sys.stdout
    tty = stream.isatty()
    found = True
    db = open_ledger(ledger)
    with reading(ledger):
        if is_empty(db):
            if fmt == "table":
                stream.write(START_HINT + "\n")
                return True
            report = Report(opts.kind, opts, [], Figures(), prices.as_of)
            print(START_HINT, file=sys.stderr)
        else:
            if fmt == "table" and opts.kind == "session" and opts.limit is None and tty:
                opts = replace(opts, limit=SESSION_TABLE_ROWS)  # a screenful; a pipe gets all
            report = build(db, opts, prices)
            if not report.rows:
                hint = why_empty(db, opts)
                if hint:
                    print(f"aitrack: {safe(hint, MAX_LINE)}", file=sys.stderr)
                    found = False
    if fmt == "json":
        stream.write(json.dumps(to_json(report), indent=2) + "\n")
    elif fmt == "csv":
        stream.write(to_csv(report))
    else:
        if width is None and tty:
            width = shutil.get_terminal_size((80, 24)).columns
        color = wants_color(stream) if color is None else color
        stream.write(render(report, width, color, bars=tty, today=opts.today))
    return found
