"""The dashboard's sections, as HTML: totals, usage per period, tools, tool acceptance,
projects, models, cost per commit and the sessions table.

Each takes the reports it shows (figures.py's, under the page's options); dashboard.py
puts them on the page.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo

from aitrack.reports.axis import gaps, slots
from aitrack.reports.charts import Series, esc, hbar, split_bar, stacked_bars, weekly_bars
from aitrack.reports.exports import amount
from aitrack.reports.rows import Decisions, Figures, Report
from aitrack.reports.sessions import duration_s
from aitrack.reports.text import (
    axis_money,
    cost_cell,
    duration,
    exit_status,
    money,
    short,
    sources,
    usd,
)

TOP_PROJECTS = 10


def fit(table: str) -> str:
    """A table that scrolls inside its card when the card is narrower than it (long model
    or project names on a narrow window), instead of running across the card's border."""
    return f'<div class="fit">{table}</div>'


def kpis(periods: Report, unit: str, decisions: list[Decisions] | None) -> str:
    """The totals as tiles: cost, sessions, tokens, cost per commit, tool acceptance."""
    t = periods.totals
    decided = decisions or []
    accepted = sum(x.accepted for x in decided)
    rejected = sum(x.rejected for x in decided)
    rate = Decisions.rate(accepted, rejected)
    source = {"reported": "reported by the tools", "estimated": "estimated from list prices",
              "mixed": "reported and estimated", "partial": "a lower bound: some models "
              "have no price", "unpriced": "no model has a price", "none": "no usage"}
    tiles = [
        ("Cost", f'<data id="total-cost" value="{amount(t.cost_usd) or ""}">'
                 f"{esc(cost_cell(t))}</data>", source[t.cost_source]),
        ("Sessions", f'<data id="total-sessions" value="{t.sessions}">{t.sessions:,}</data>',
         f"{len(periods.rows):,} active {unit}s"),
        ("Tokens", f'<data id="total-tokens" value="{t.total}">{short(t.total)}</data>',
         f"{short(t.tokens['cache_read'])} of them cache reads"),
        ("Cost per commit", f'<data id="cost-per-commit" value="'
                            f'{"" if t.cost_per_commit is None else t.cost_per_commit}">'
                            f"{esc(money(t.cost_per_commit) if t.cost_per_commit else '—')}"
                            "</data>", f"{int(t.contrib['commits']):,} commits, "
                                       f"{int(t.contrib['pull_requests']):,} pull requests"),
        ("Tool acceptance", f'<data id="acceptance" value="{"" if rate is None else rate}">'
                            f"{'—' if rate is None else f'{rate:.0%}'}</data>",
         f"{accepted:,} accepted, {rejected:,} rejected tool uses"),
    ]
    return ('<section class="kpis" aria-label="Totals"><dl>' + "".join(
        f'<div class="kpi"><dt>{esc(name)}</dt><dd class="value">{value}</dd>'
        f'<dd class="note">{esc(note)}</dd></div>' for name, value, note in tiles)
        + "</dl></section>")


def _legend(series: Series) -> str:
    return ('<ul class="legend" aria-label="Models">' + "".join(
        f'<li><span class="swatch s{i}" aria-hidden="true"></span>{esc(name)}</li>'
        for i, name in enumerate(series.names)) + "</ul>")


def usage(periods: Report, unit: str, series: Series) -> str:
    """Cost and tokens per period, stacked by model, and a table of them."""
    rows = periods.rows
    first, last = (rows[0][0], rows[-1][0]) if rows else ("", "")
    cost_desc = (f"Cost per {unit} from {first} to {last}, stacked by model; the highest "
                 f"{unit} cost {money(max((f.cost_usd or 0 for _, f, _ in rows), default=0))}."
                 " The table below the chart lists every " + unit + ".")
    tokens_desc = (f"Tokens per {unit} from {first} to {last}, stacked by model; the highest "
                   f"{unit} used {short(max((f.total for _, f, _ in rows), default=0))} tokens.")
    quiet = gaps(slots([label for label, _, _ in rows], unit))
    if quiet:  # collapsed on the axis: said, as the chart marks them
        said = "; ".join(g.describe(unit) for g in quiet)
        cost_desc += f" Collapsed on the axis: {said}."
        tokens_desc += f" Collapsed on the axis: {said}."

    def fmt_cost(v: float, fig: Figures | None) -> str:
        return cost_cell(fig) if fig is not None else money(v)

    def fmt_tokens(v: float, fig: Figures | None) -> str:
        return f"{int(v):,} tokens"

    cost = stacked_bars("cost-chart", f"Cost per {unit}, by model", cost_desc, periods,
                        series, lambda f: f.cost_usd or 0.0, fmt_cost, axis_money, unit)
    tokens = stacked_bars("tokens-chart", f"Tokens per {unit}, by model", tokens_desc,
                          periods, series, lambda f: float(f.total), fmt_tokens, short, unit)
    table = _period_table(periods, unit)
    return (f'<section class="card wide" aria-labelledby="cost-h"><h2 id="cost-h">Cost per '
            f"{unit}</h2>{_legend(series)}<figure>{cost}</figure>"
            f'<h2 id="tokens-h">Tokens per {unit}</h2><figure>{tokens}</figure>'
            f"<details><summary>The figures per {unit}</summary>{table}</details></section>")


def _period_table(periods: Report, unit: str) -> str:
    head = (f"<tr><th scope=col>{'Date' if unit == 'day' else 'Week of'}</th>"
            "<th scope=col>Sessions</th><th scope=col>Tokens</th><th scope=col>Cost</th>"
            "<th scope=col>Commits</th><th scope=col>Cost per commit</th></tr>")
    body = "".join(
        f"<tr><th scope=row>{label}</th><td>{f.sessions:,}</td><td>{f.total:,}</td>"
        f"<td>{esc(cost_cell(f))}</td><td>{int(f.contrib['commits']):,}</td>"
        f"<td>{esc(money(f.cost_per_commit)) if f.cost_per_commit else '—'}</td></tr>"
        for label, f, _ in reversed(periods.rows))
    return fit(f'<table class="data"><thead>{head}</thead><tbody>{body}</tbody></table>')


def tools(report: Report, decisions: list[Decisions] | None) -> str:
    """Sessions, tokens, cost and acceptance per tool."""
    rows = report.rows
    by_tool = {x.tool: x for x in decisions or []}
    total_cost = sum(f.cost_usd or 0 for _, f, _ in rows)
    parts = [(label, f.cost_usd or 0.0, f"t{i % 4}") for i, (label, f, _) in enumerate(rows)]
    body = []
    for i, (label, f, _) in enumerate(rows):
        dec = by_tool.get(label)
        acc = "—" if dec is None or dec.acceptance_rate is None else f"{dec.acceptance_rate:.0%}"
        share = (f.cost_usd or 0) / total_cost if total_cost else 0
        body.append(f'<tr><th scope=row><span class="swatch t{i % 4}" aria-hidden="true">'
                    f"</span>{esc(label)}</th><td>{f.sessions:,}</td><td>{short(f.total)}</td>"
                    f"<td>{esc(cost_cell(f))}</td><td>{share:.0%}</td><td>{acc}</td></tr>")
    return ('<section class="card" aria-labelledby="tools-h"><h2 id="tools-h">Tools</h2>'
            + (split_bar(parts) if total_cost else "")
            + fit('<table class="data"><thead><tr><th scope=col>Tool</th><th scope=col>Sessions'
                  "</th><th scope=col>Tokens</th><th scope=col>Cost</th><th scope=col>Share</th>"
                  "<th scope=col>Acceptance</th></tr></thead><tbody>" + "".join(body)
                  + "</tbody></table>") + "</section>")


def projects(report: Report | None, counts: dict[str, int], priced_up_to: int) -> str:
    """The top projects by cost; by sessions alone (`counts`) when there is no `report`:
    more than `priced_up_to` sessions."""
    if report is not None:
        rows = [(label or "(no project)", f.sessions, f) for label, f, _ in report.rows]
        rank = "by cost"
    else:
        rows = sorted(((p or "(no project)", n, None) for p, n in counts.items()),
                      key=lambda r: (-r[1], r[0]))
        rank = "by sessions"
    top, rest = rows[:TOP_PROJECTS], rows[TOP_PROJECTS:]
    if report is not None:
        peak = max((f.cost_usd or 0 for _, _, f in top), default=0) or 1
    else:
        peak = max((n for _, n, _ in top), default=0) or 1
    body = []
    for name, n, f in top:
        value = (f.cost_usd or 0) if f is not None else n
        cost = esc(cost_cell(f)) if f is not None else ""
        body.append(f"<tr><th scope=row>{esc(name)}</th><td class=bar>"
                    f"{hbar(value / peak, 's0')}</td><td>{n:,}</td>"
                    + (f"<td>{short(f.total)}</td><td>{cost}</td>" if f is not None else "")
                    + "</tr>")
    cols = "<th scope=col>Tokens</th><th scope=col>Cost</th>" if report is not None else ""
    note = ""
    if rest:
        note += (f"<p class=note>{len(rest):,} more projects: "
                 f"{sum(n for _, n, _ in rest):,} sessions.</p>")
    if report is None:
        note += (f"<p class=note>Ranked by sessions: pricing more than "
                 f"{priced_up_to:,} sessions per project reads every usage row. "
                 "<code>aitrack report model --project NAME</code> gives one project's cost."
                 "</p>")
    return (f'<section class="card" aria-labelledby="projects-h"><h2 id="projects-h">Top '
            f"projects <small>{rank}</small></h2>"
            + fit('<table class="data"><thead><tr><th scope=col>Project</th><th scope=col>'
                  f'<span class="sr">Share</span></th><th scope=col>Sessions</th>{cols}</tr>'
                  f"</thead><tbody>{''.join(body)}</tbody></table>") + f"{note}</section>")


def models(report: Report, series: Series) -> str:
    """Sessions, tokens and cost per model, in the charts' colours."""
    body = []
    for label, f, _ in report.rows:
        flag = ' <span class="tag warn">no price</span>' if f.unpriced else ""
        body.append(f'<tr><th scope=row><span class="swatch s{series.of(label)}" '
                    f'aria-hidden="true"></span>{esc(label)}{flag}</th><td>{f.sessions:,}</td>'
                    f"<td>{short(f.tokens['input'])}</td><td>{short(f.tokens['output'])}</td>"
                    f"<td>{short(f.tokens['cache_read'] + f.tokens['cache_creation'])}</td>"
                    f"<td>{esc(cost_cell(f))}</td></tr>")
    return ('<section class="card" aria-labelledby="models-h"><h2 id="models-h">Models</h2>'
            + fit('<table class="data"><thead><tr><th scope=col>Model</th><th scope=col>Sessions'
                  "</th><th scope=col>Input</th><th scope=col>Output</th><th scope=col>Cache"
                  "</th><th scope=col>Cost</th></tr></thead><tbody>" + "".join(body)
                  + "</tbody></table>") + "</section>")


def cost_per_commit(periods: Report) -> str:
    """Cost per commit per week (weeks from Monday), from the report's days."""
    weeks: dict[str, list[float]] = {}
    for label, f, _ in periods.rows:
        day = date.fromisoformat(label)
        week = (day - timedelta(days=day.weekday())).isoformat()
        w = weeks.setdefault(week, [0.0, 0.0])
        w[0] += f.cost_usd or 0.0
        w[1] += f.contrib["commits"]
    points = [(w, c / n) for w, (c, n) in sorted(weeks.items()) if n]
    total = periods.totals.cost_per_commit
    if not points:
        chart = "<p class=note>No commits reported in this range (Claude Code reports them).</p>"
    else:
        chart = "<figure>" + weekly_bars(points, total) + "</figure>"
    return ('<section class="card" aria-labelledby="cpc-h"><h2 id="cpc-h">Cost per commit '
            f'<small>{esc(money(total) if total else "—")} overall</small></h2>{chart}'
            "</section>")


def acceptance(decisions: list[Decisions] | None) -> str:
    """Accepted and rejected tool uses per tool, and per tool name below it."""
    rows = []
    for x in decisions or []:
        rows.append((x.tool, x.accepted, x.rejected, True))
        rows += [(name, a, r, False) for name, (a, r) in list(x.by_name.items())[:6]]
    if not rows:
        body = ("<p class=note>No tool decisions in this range (Claude Code reports "
                "accepted and rejected edits, Codex its tool approvals).</p>")
    else:
        trs = []
        for name, a, r, tool in rows:
            rate = Decisions.rate(a, r)
            trs.append(f'<tr class="{"tool" if tool else "sub"}"><th scope=row>{esc(name)}</th>'
                       f'<td class=bar>{split_bar([("accepted", a, "ok"), ("rejected", r, "bad")])}'
                       f"</td><td>{a:,}</td><td>{r:,}</td>"
                       f"<td>{'—' if rate is None else f'{rate:.0%}'}</td></tr>")
        body = fit('<table class="data"><thead><tr><th scope=col>Tool</th><th scope=col>'
                   '<span class="sr">Accepted and rejected</span></th><th scope=col>Accepted'
                   "</th><th scope=col>Rejected</th><th scope=col>Rate</th></tr></thead><tbody>"
                   + "".join(trs) + "</tbody></table>")
    return ('<section class="card" aria-labelledby="acc-h"><h2 id="acc-h">Tool acceptance'
            f"</h2>{body}</section>")


SESSION_COLUMNS = (("Started", "num"), ("Tool", "text"), ("Project", "text"),
                   ("Models", "text"), ("Entry", "text"), ("Source", "text"), ("Exit", "num"),
                   ("Duration", "num"), ("Tokens", "num"), ("Cost", "num"))


def sessions(r: Report, tz: tzinfo) -> str:
    """The newest sessions in a table sorted by the page's script; the rest in one line."""
    trs, failed = [], 0
    for sid, f, _ in r.rows:
        facts = r.sessions.get(sid, {})
        started = facts.get("started_at") or 0
        code = facts.get("exit_code")
        failed += bool(code)
        dur = duration_s(facts)
        cost = f.cost_usd
        names = esc(", ".join(sorted(f.models)))
        trs.append(
            f'<tr><td data-v="{started:.0f}">'
            f"{datetime.fromtimestamp(started, tz).strftime('%Y-%m-%d %H:%M')}</td>"
            f"<td>{esc(facts.get('tool') or '')}</td><td>{esc(facts.get('project') or '')}</td>"
            f'<td title="{names}">{names}</td>'
            f"<td>{esc(facts.get('entrypoint') or '—')}</td>"
            f"<td>{esc(sources(facts.get('sources')))}</td>"
            f'<td data-v="{"" if code is None else code}"'
            f'{" class=bad" if code else ""}>{exit_status(code)}</td>'
            f'<td data-v="{"" if dur is None else f"{dur:.0f}"}">{duration(dur)}</td>'
            f'<td data-v="{f.total}">{f.total:,}</td>'
            f'<td data-v="{"" if cost is None else f"{cost:.6f}"}">{esc(usd(f))}</td></tr>')
    heads = "".join(
        f'<th scope=col data-type="{kind}"'
        f'{" aria-sort=descending" if name == "Started" else ""}><button type=button>'
        f"{name}</button></th>" for name, kind in SESSION_COLUMNS)
    listed = len(r.rows)
    note = f"The newest {listed:,} sessions" if r.hidden else f"{listed:,} sessions"
    if failed:
        note += f"; {failed:,} of them exited with a failure status"
    tail = ""
    if r.hidden:
        shown_cost = sum(f.cost_usd or 0 for _, f, _ in r.rows)
        shown_tokens = sum(f.total for _, f, _ in r.rows)
        rest_cost = (r.totals.cost_usd or 0) - shown_cost
        tail = (f'<tfoot><tr><th scope=row colspan=8>{r.hidden:,} older sessions, not listed'
                f"</th><td>{max(0, r.totals.total - shown_tokens):,}</td>"
                f"<td>{esc(money(rest_cost))}</td></tr></tfoot>")
    return ('<section class="card wide" aria-labelledby="sessions-h"><h2 id="sessions-h">'
            f'Sessions</h2><p class=note>{esc(note)}. Select a column heading to sort.</p>'
            '<p class="sr" aria-live="polite" id="sort-status"></p>'
            '<div class="scroll" tabindex=0 role=region aria-labelledby="sessions-h">'
            '<table class="data sessions" id="sessions" data-sortable>'
            f"<thead><tr>{heads}</tr></thead><tbody>{''.join(trs)}</tbody>{tail}</table>"
            "</div></section>")
