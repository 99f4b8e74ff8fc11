"""The figures behind `aitrack report`: usage and cost per day, week, month, session or model.

SQLite does the aggregation; Python only prices the (day, model) sums. tables.py lays
them out, exports.py writes them as JSON or CSV, dashboard.py draws them.

Where the sums come from:
- Period and model reports read the summaries of migration m002 whenever that gives
  exactly the same rows (summaries.py says when), else the exact queries over sessions and
  usage (queries.py). `USE_SUMMARIES = False` forces those; the tests compare the two.
- The session report reads the sessions in range first and then only their rows
  (sessions.py); with a --limit the totals still cover every matching session, from the
  summaries when they apply.
The rules for costs and contributions are rows.py's.
"""

from __future__ import annotations

import difflib
import sqlite3
from dataclasses import replace
from pathlib import Path

from aitrack.domain.pricing import PriceTable
from aitrack.reports import notes, summaries
from aitrack.reports.periods import GROUPS, Options, period_of, time_range
from aitrack.reports.queries import Plan, exact_plan, model_sql, project_filter, where_clause
from aitrack.reports.rows import CONTRIB_FIELDS, Decisions, Figures, Report, add_pairs, figures_in
from aitrack.reports.sessions import session_rows

# Tests set this to False to check the hourly summaries against the exact queries.
USE_SUMMARIES = True


def _summary_plan(db: sqlite3.Connection, opts: Options, lo: float | None,
                  hi: float | None) -> Plan | None:
    return summaries.hourly_plan(db, opts, lo, hi) if USE_SUMMARIES else None


def build(db: sqlite3.Connection, opts: Options, prices: PriceTable,
          with_decisions: bool = True) -> Report:
    """The report `opts` ask for; a model report with its tool decisions unless told not
    to (the dashboard reads those on a connection of their own, meanwhile)."""
    lo, hi = time_range(opts)
    if opts.kind == "session":
        report = _build_sessions(db, opts, prices, lo, hi)
    else:
        plan = _summary_plan(db, opts, lo, hi) or exact_plan(db, opts, lo, hi)
        report = _build_periods(db, opts, prices, plan)
        if opts.kind == "model" and with_decisions:
            report.decisions = decisions(db, opts)
    if opts.by_tool and opts.kind not in ("session", "model", *GROUPS):
        report.tools = _by_tool(db, opts, prices)
    _sort(report)
    if opts.limit and len(report.rows) > opts.limit:
        report.hidden = len(report.rows) - opts.limit
        del report.rows[opts.limit:]
    if opts.kind in ("session", "model"):
        shown = {m for _, fig, _ in report.rows for m in fig.models}
        report.requested = notes.requested_names(db, shown)
    if opts.kind == "session":
        report.notes = notes.session_notes(db, [sid for sid, _, _ in report.rows])
    return report


def _by_tool(db: sqlite3.Connection, opts: Options, prices: PriceTable
             ) -> dict[str, list[tuple[str, Figures]]]:
    """Each period's figures per tool: the same report once per tool (a handful), so every
    sub-row is exactly what `--tool NAME` gives."""
    lo, hi = time_range(opts)
    where, params = where_clause(replace(opts, tool=None), lo, hi)
    tools = [t for (t,) in db.execute(
        f"SELECT DISTINCT s.tool FROM sessions s WHERE {where} ORDER BY 1", params)]
    if opts.tool:
        tools = [t for t in tools if t == opts.tool]
    per: dict[str, list[tuple[str, Figures]]] = {}
    for tool in tools:
        one = build(db, replace(opts, tool=tool, by_tool=False, breakdown=False, limit=None),
                    prices)
        for label, fig, _ in one.rows:
            per.setdefault(label, []).append((tool, fig))
    return per


def _build_periods(db: sqlite3.Connection, opts: Options, prices: PriceTable,
                   plan: Plan) -> Report:
    """Rows per period (model, tool or project) from the plan's per-(key, model) sums,
    whichever source."""
    kind = opts.kind
    if plan.empty:
        return Report(kind, opts, [], Figures(), prices.as_of, source=plan.source)
    labels: dict[object, str] = {}

    def label_of(k: object) -> str:
        label = labels.get(k)
        if label is None:
            label = labels[k] = str(k) if kind in GROUPS else period_of(k, kind,
                                                                        opts.week_start)
        return label

    rows: dict[str, Figures] = {}
    models: dict[str, dict[str, Figures]] = {}  # label -> model -> figures
    whole = Figures()  # model report: sessions and contributions are per session, not model
    for k, n in db.execute(plan.sessions_sql, plan.params):
        if kind == "model":
            whole.sessions += n
        else:
            figures_in(rows, label_of(k)).sessions += n
    for k, *values in db.execute(plan.contrib_sql, plan.params):
        contrib = (whole if kind == "model" else figures_in(rows, label_of(k))).contrib
        for name, v in zip(CONTRIB_FIELDS, values, strict=True):
            contrib[name] += v or 0
    for k, model, pairs, *sums in db.execute(plan.pairs_sql, plan.params):
        if kind == "model":
            add_pairs(figures_in(rows, model), model, pairs, sums, prices, sessions=True)
        else:
            add_pairs(figures_in(rows, label_of(k)), model, pairs, sums, prices)
            if opts.breakdown:
                add_pairs(figures_in(models.setdefault(label_of(k), {}), model), model, pairs,
                          sums, prices, sessions=True)

    totals = Figures()
    for fig in rows.values():
        totals.add(fig, sessions=kind != "model")
    if kind == "model":
        totals.sessions, totals.contrib = whole.sessions, whole.contrib
    for fig in (*(rows.values() if kind == "model" else ()),
                *(f for by in models.values() for f in by.values())):
        fig.has_contrib = False
    report_rows = [(label, fig, sorted(models.get(label, {}).items()) if kind != "model"
                    else [(label, fig)]) for label, fig in rows.items()]
    return Report(kind, opts, report_rows, totals, prices.as_of, source=plan.source)


def _build_sessions(db: sqlite3.Connection, opts: Options, prices: PriceTable,
                    lo: float | None, hi: float | None) -> Report:
    """One row per session.

    With --limit N only the first N sessions (newest, unless --order asc) are read one by
    one, when the totals over all of them can come from the hourly summaries instead.
    """
    where, params = where_clause(opts, lo, hi)
    matching = f"FROM sessions s WHERE {where} {model_sql(opts)['session_model']}"
    summed = hidden = None  # the totals over all sessions, when only some are read
    if opts.limit:
        plan = _summary_plan(db, replace(opts, kind="model"), lo, hi)
        count = db.execute(f"SELECT COUNT(*) {matching}", params).fetchone()[0]
        if plan is not None and count > opts.limit:
            summed = _build_periods(db, replace(opts, kind="model"), prices, plan).totals
            hidden = count - opts.limit
            order = "ASC" if opts.order == "asc" else "DESC"
            matching += f" ORDER BY s.started_at {order}, s.id {order} LIMIT {int(opts.limit)}"
    facts, rows, totals = session_rows(db, opts, prices, matching, params)
    if hidden is not None:
        return Report("session", opts, rows, summed, prices.as_of, sessions=facts,
                      hidden=hidden, source="hourly")
    return Report("session", opts, rows, totals, prices.as_of, sessions=facts)


_DECISIONS_SQL = """
SELECT s.tool, d.tool_name, SUM(CASE d.decision WHEN 'accept' THEN d.count ELSE 0 END),
       SUM(CASE d.decision WHEN 'reject' THEN d.count ELSE 0 END)
FROM sessions s JOIN tool_decisions d ON d.session_id = s.id
WHERE {where} {session_model}
GROUP BY s.tool, d.tool_name
"""


def decisions(db: sqlite3.Connection, opts: Options) -> list[Decisions]:
    """Accepted and rejected tool uses per tool, of the sessions the options select; most
    decisions first. Empty on a ledger from before m004 (no tool_decisions table)."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
                  "'tool_decisions'").fetchone() is None:
        return []
    lo, hi = time_range(opts)
    where, params = where_clause(opts, lo, hi)
    by_tool: dict[str, Decisions] = {}
    sql = _DECISIONS_SQL.format(where=where, session_model=model_sql(opts)["session_model"])
    for tool, name, accepted, rejected in db.execute(sql, params):
        d = by_tool.setdefault(tool, Decisions(tool))
        d.accepted += accepted
        d.rejected += rejected
        d.by_name[name] = (accepted, rejected)
    for d in by_tool.values():
        d.by_name = dict(sorted(d.by_name.items(), key=lambda kv: (-sum(kv[1]), kv[0])))
    return sorted(by_tool.values(), key=lambda d: (-(d.accepted + d.rejected), d.tool))


def session_counts(db: sqlite3.Connection, opts: Options, kind: str) -> dict[str, int]:
    """Sessions per tool or project (`kind`) of the sessions the options select: the
    sessions query of that grouping alone, which reads no usage."""
    lo, hi = time_range(opts)
    plan = exact_plan(db, replace(opts, kind=kind), lo, hi)
    return {k: n for k, n in db.execute(plan.sessions_sql, plan.params)}


def why_empty(db: sqlite3.Connection, opts: Options) -> str | None:
    """When no session matches: whether --project or --tool names anything in the ledger,
    with the near matches and every name it holds (the most recent first)."""
    problems = []
    if opts.project:
        extra, params = project_filter(opts.project)
        if db.execute(f"SELECT 1 FROM sessions s WHERE 1 {extra} LIMIT 1", params
                      ).fetchone() is None:
            known = [r[0] for r in db.execute(
                "SELECT project FROM sessions WHERE project IS NOT NULL GROUP BY project "
                "ORDER BY MAX(started_at) DESC")]
            if "dir" in params:
                what = (f"no session ran in {params['dir']}" if Path(params["dir"]).is_dir()
                        else f"{params['dir']} is not a directory and no session ran there")
            else:
                what = f"no session has the project name {opts.project!r}"
            problems.append(f"--project {opts.project}: {what}"
                            + _suggest(opts.project, known, "projects"))
    if opts.tool and db.execute("SELECT 1 FROM sessions WHERE tool = ? LIMIT 1",
                                (opts.tool,)).fetchone() is None:
        known = [r[0] for r in db.execute("SELECT DISTINCT tool FROM sessions ORDER BY 1")]
        problems.append(f"--tool {opts.tool}: no session of that tool"
                        + _suggest(opts.tool, known, "tools"))
    return "; ".join(problems) or None


SHOWN_NAMES = 6  # names listed when a filter matches nothing; "and N more" for the rest


def _suggest(wanted: str, known: list[str], what: str) -> str:
    """` (did you mean X?; projects: a, b and 8 more)` for a name that matched nothing."""
    if not known:
        return ""
    name = Path(wanted).name.lower() or wanted.lower()
    lowered = {k.lower(): k for k in known}
    near = [k for k in known if name in k.lower()]
    near += [lowered[m] for m in difflib.get_close_matches(name, list(lowered), n=3)
             if lowered[m] not in near]
    listed = ", ".join(known[:SHOWN_NAMES])
    more = f" and {len(known) - SHOWN_NAMES} more" if len(known) > SHOWN_NAMES else ""
    hint = f"did you mean {' or '.join(near[:3])}?; " if near else ""
    return f" ({hint}{what}: {listed}{more})"


def _sort(report: Report) -> None:
    kind, order = report.kind, report.opts.order
    if kind == "model" or kind in GROUPS:  # most expensive first; unpriced at the end
        report.rows.sort(key=lambda r: (r[1].cost_usd is not None, r[1].cost_usd or 0,
                                        r[1].total), reverse=(order != "asc"))
    elif kind == "session":  # newest first unless --order asc
        started = {sid: facts["started_at"] for sid, facts in report.sessions.items()}
        report.rows.sort(key=lambda r: (started.get(r[0], 0), r[0]), reverse=(order != "asc"))
    else:  # chronological unless --order desc
        report.rows.sort(key=lambda r: r[0], reverse=(order == "desc"))
