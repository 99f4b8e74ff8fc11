"""`aitrack dashboard`: the report's figures as one self-contained HTML page.

The page reads the ledger through figures.py exactly as `aitrack report` does (the same
numbers under the same filters) and holds everything it shows: inline SVG charts, one
small inline script that sorts the sessions table, CSS with light and dark themes that
follow the system. A Content-Security-Policy allows nothing but that script and that
style (by hash), so the page loads nothing, from the network or from disk, when opened:
it can be attached to an email and read offline.

Sensible aggregation keeps it small and quick on a heavy year: per day (per week past
MAX_BARS days), the costliest SERIES models with the rest as "other models", the newest
TABLE_SESSIONS sessions with the rest summed in one line, and cost per project only up to
PROJECT_COST_SESSIONS sessions (the ledger keeps no summary per project, so it means
reading every usage row; above that, projects are ranked by sessions).
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path

from aitrack import __version__
from aitrack.domain.pricing import PriceTable
from aitrack.reports import tables as rep
from aitrack.reports.figures import build, decisions, session_counts
from aitrack.reports.periods import Options
from aitrack.reports.rows import Decisions, Figures, Report

TABLE_SESSIONS = 1000  # the newest sessions listed in the table
PROJECT_COST_SESSIONS = 20_000  # above this many sessions, projects show sessions only
MAX_BARS = 400  # past this many days the charts have a bar per week
SERIES = 7  # models with a colour of their own; the rest are "other models"
TOP_PROJECTS = 10
OTHER = "other models"


@dataclass
class Dashboard:
    opts: Options
    periods: Report  # daily (weekly past MAX_BARS days), a sub-row per model
    unit: str  # "day" | "week"
    models: Report
    tools: Report
    sessions: Report  # the newest TABLE_SESSIONS; totals over all
    projects: Report | None  # None: too many sessions to price per project
    project_sessions: dict[str, int]
    generated: datetime


def collect(db, opts: Options, prices: PriceTable, ledger: Path | None = None) -> Dashboard:
    """Every figure the page shows, from figures.py under the same options.

    With the ledger's path, the tool decisions (a scan of every decision, when the rest
    reads summaries) are read meanwhile on a second read-only connection: SQLite lets go of
    the GIL while it works."""
    base = replace(opts, breakdown=False, limit=None, order=None)
    found: list = []
    worker = None
    if ledger is not None:
        import threading

        def read_decisions() -> None:
            own = rep.open_ledger(ledger)
            try:
                found.append(decisions(own, base))
            except Exception as exc:  # noqa: BLE001 - raised again in the caller's thread
                found.append(exc)
            finally:
                own.close()

        worker = threading.Thread(target=read_decisions, daemon=True)
        worker.start()
    periods = build(db, replace(base, kind="daily", breakdown=True), prices)
    unit = "day"
    if len(periods.rows) > MAX_BARS:
        periods = build(db, replace(base, kind="weekly", breakdown=True), prices)
        unit = "week"
    counts = session_counts(db, base, "project")
    projects = (build(db, replace(base, kind="project"), prices)
                if sum(counts.values()) <= PROJECT_COST_SESSIONS else None)
    models = build(db, replace(base, kind="model"), prices, with_decisions=worker is None)
    d = Dashboard(
        opts=opts, periods=periods, unit=unit, models=models,
        tools=build(db, replace(base, kind="tool"), prices),
        sessions=build(db, replace(base, kind="session", limit=TABLE_SESSIONS), prices),
        projects=projects, project_sessions=counts,
        generated=datetime.now(opts.tz))
    if worker is not None:
        worker.join()
        if isinstance(found[0], BaseException):
            raise found[0]
        models.decisions = found[0]
    return d


# ---------------------------------------------------------------- numbers as text


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def money(value: float | None) -> str:
    if value is None:
        return "unpriced"
    return f"${value:,.2f}" if abs(value) < 1e4 else f"${value:,.0f}"


def cost_cell(fig: Figures) -> str:
    """As the report's table says it: `unpriced`, or a * on a partial sum."""
    return money(fig.cost_usd) + ("*" if fig.cost_source == "partial" else "")


def short(n: float) -> str:
    return rep._short(n)


def axis_money(v: float) -> str:
    if v >= 1000:
        return f"${v / 1000:g}k"
    return f"${v:g}" if v >= 1 or v == 0 else f"${v:.2f}"


def nice_step(top: float, ticks: int = 4) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about `ticks` gridlines."""
    if top <= 0:
        return 1.0
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if raw <= m * power * (1 + 1e-9))


# ---------------------------------------------------------------- charts


@dataclass
class Series:
    names: list[str]  # the models with a colour, then OTHER when there are more

    def of(self, model: str) -> int:
        return self.names.index(model) if model in self.names else len(self.names) - 1


def series_of(models: Report) -> Series:
    names = [label for label, _, _ in models.rows]  # costliest first
    if len(names) > SERIES:
        names = names[:SERIES] + [OTHER]
    return Series(names)


def slots(rows: list, unit: str) -> list[str]:
    """Every period from the first row's to the last's: days (or weeks) without a session
    keep their place on the axis."""
    if not rows:
        return []
    step = timedelta(days=1 if unit == "day" else 7)
    first, last = date.fromisoformat(rows[0][0]), date.fromisoformat(rows[-1][0])
    return [(first + i * step).isoformat() for i in range((last - first) // step + 1)]


def stacked_bars(chart_id: str, title: str, desc: str, periods: Report, series: Series,
                 value, fmt, axis, unit: str) -> str:
    """An SVG bar per period, stacked by model, with gridlines and a <title> per bar."""
    width, height, left, right, top, bottom = 960, 260, 56, 8, 12, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    axis_periods = slots(periods.rows, unit)
    at = {label: i for i, label in enumerate(axis_periods)}
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
    out.append(_x_labels(axis_periods, left, slot, height - 8))
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


def _x_labels(periods: list[str], left: float, slot: float, y: float) -> str:
    """Dates under the bars: each month's first period on a long axis (the year on January
    and on the first), else every few periods."""
    long_axis = len(periods) > 45
    every = max(1, math.ceil(64 / max(slot, 0.1)))
    out, last_x = ['<g class="xlabels">'], -1e9
    for i, label in enumerate(periods):
        d = date.fromisoformat(label)
        if long_axis:
            if i and date.fromisoformat(periods[i - 1]).month == d.month:
                continue
            text = d.strftime("%b %Y" if i == 0 or d.month == 1 else "%b")
        else:
            if i % every:
                continue
            text = d.strftime("%b %d")
        x = left + i * slot + slot / 2
        if x - last_x < 56:
            continue
        last_x = x
        out.append(f'<text x="{x:.1f}" y="{y}" text-anchor="middle">{esc(text)}</text>')
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


# ---------------------------------------------------------------- sections


def _kpis(d: Dashboard) -> str:
    t = d.periods.totals
    decided = [x for x in (d.models.decisions or [])]
    accepted = sum(x.accepted for x in decided)
    rejected = sum(x.rejected for x in decided)
    rate = Decisions.rate(accepted, rejected)
    source = {"reported": "reported by the tools", "estimated": "estimated from list prices",
              "mixed": "reported and estimated", "partial": "a lower bound: some models "
              "have no price", "unpriced": "no model has a price", "none": "no usage"}
    tiles = [
        ("Cost", f'<data id="total-cost" value="{rep._money(t.cost_usd) or ""}">'
                 f"{esc(cost_cell(t))}</data>", source[t.cost_source]),
        ("Sessions", f'<data id="total-sessions" value="{t.sessions}">{t.sessions:,}</data>',
         f"{len(d.periods.rows):,} active {d.unit}s"),
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


def _charts(d: Dashboard, series: Series) -> str:
    unit, rows = d.unit, d.periods.rows
    first, last = (rows[0][0], rows[-1][0]) if rows else ("", "")
    cost_desc = (f"Cost per {unit} from {first} to {last}, stacked by model; the highest "
                 f"{unit} cost {money(max((f.cost_usd or 0 for _, f, _ in rows), default=0))}."
                 " The table below the chart lists every " + unit + ".")
    tokens_desc = (f"Tokens per {unit} from {first} to {last}, stacked by model; the highest "
                   f"{unit} used {short(max((f.total for _, f, _ in rows), default=0))} tokens.")

    def fmt_cost(v: float, fig: Figures | None) -> str:
        return cost_cell(fig) if fig is not None else money(v)

    def fmt_tokens(v: float, fig: Figures | None) -> str:
        return f"{int(v):,} tokens"

    cost = stacked_bars("cost-chart", f"Cost per {unit}, by model", cost_desc, d.periods,
                        series, lambda f: f.cost_usd or 0.0, fmt_cost, axis_money, unit)
    tokens = stacked_bars("tokens-chart", f"Tokens per {unit}, by model", tokens_desc,
                          d.periods, series, lambda f: float(f.total), fmt_tokens, short, unit)
    table = _period_table(d)
    return (f'<section class="card wide" aria-labelledby="cost-h"><h2 id="cost-h">Cost per '
            f"{unit}</h2>{_legend(series)}<figure>{cost}</figure>"
            f'<h2 id="tokens-h">Tokens per {unit}</h2><figure>{tokens}</figure>'
            f"<details><summary>The figures per {unit}</summary>{table}</details></section>")


def _period_table(d: Dashboard) -> str:
    head = (f"<tr><th scope=col>{'Date' if d.unit == 'day' else 'Week of'}</th>"
            "<th scope=col>Sessions</th><th scope=col>Tokens</th><th scope=col>Cost</th>"
            "<th scope=col>Commits</th><th scope=col>Cost per commit</th></tr>")
    body = "".join(
        f"<tr><th scope=row>{label}</th><td>{f.sessions:,}</td><td>{f.total:,}</td>"
        f"<td>{esc(cost_cell(f))}</td><td>{int(f.contrib['commits']):,}</td>"
        f"<td>{esc(money(f.cost_per_commit)) if f.cost_per_commit else '—'}</td></tr>"
        for label, f, _ in reversed(d.periods.rows))
    return f'<table class="data"><thead>{head}</thead><tbody>{body}</tbody></table>'


def _tools(d: Dashboard) -> str:
    rows = d.tools.rows
    decisions = {x.tool: x for x in d.models.decisions or []}
    total_cost = sum(f.cost_usd or 0 for _, f, _ in rows)
    parts = [(label, f.cost_usd or 0.0, f"t{i % 4}") for i, (label, f, _) in enumerate(rows)]
    body = []
    for i, (label, f, _) in enumerate(rows):
        dec = decisions.get(label)
        acc = "—" if dec is None or dec.acceptance_rate is None else f"{dec.acceptance_rate:.0%}"
        share = (f.cost_usd or 0) / total_cost if total_cost else 0
        body.append(f'<tr><th scope=row><span class="swatch t{i % 4}" aria-hidden="true">'
                    f"</span>{esc(label)}</th><td>{f.sessions:,}</td><td>{short(f.total)}</td>"
                    f"<td>{esc(cost_cell(f))}</td><td>{share:.0%}</td><td>{acc}</td></tr>")
    return ('<section class="card" aria-labelledby="tools-h"><h2 id="tools-h">Tools</h2>'
            + (split_bar(parts) if total_cost else "")
            + '<table class="data"><thead><tr><th scope=col>Tool</th><th scope=col>Sessions'
              "</th><th scope=col>Tokens</th><th scope=col>Cost</th><th scope=col>Share</th>"
              "<th scope=col>Acceptance</th></tr></thead><tbody>" + "".join(body)
            + "</tbody></table></section>")


def _projects(d: Dashboard) -> str:
    if d.projects is not None:
        rows = [(label or "(no project)", f.sessions, f) for label, f, _ in d.projects.rows]
        rank = "by cost"
    else:
        rows = sorted(((p or "(no project)", n, None) for p, n in d.project_sessions.items()),
                      key=lambda r: (-r[1], r[0]))
        rank = "by sessions"
    top, rest = rows[:TOP_PROJECTS], rows[TOP_PROJECTS:]
    if d.projects is not None:
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
    cols = "<th scope=col>Tokens</th><th scope=col>Cost</th>" if d.projects is not None else ""
    note = ""
    if rest:
        note += (f"<p class=note>{len(rest):,} more projects: "
                 f"{sum(n for _, n, _ in rest):,} sessions.</p>")
    if d.projects is None:
        note += (f"<p class=note>Ranked by sessions: pricing more than "
                 f"{PROJECT_COST_SESSIONS:,} sessions per project reads every usage row. "
                 "<code>aitrack report model --project NAME</code> gives one project's cost."
                 "</p>")
    return (f'<section class="card" aria-labelledby="projects-h"><h2 id="projects-h">Top '
            f'projects <small>{rank}</small></h2><table class="data"><thead><tr>'
            f'<th scope=col>Project</th><th scope=col><span class="sr">Share</span></th>'
            f"<th scope=col>Sessions</th>{cols}</tr></thead><tbody>{''.join(body)}</tbody>"
            f"</table>{note}</section>")


def _models(d: Dashboard, series: Series) -> str:
    body = []
    for label, f, _ in d.models.rows:
        flag = ' <span class="tag warn">no price</span>' if f.unpriced else ""
        body.append(f'<tr><th scope=row><span class="swatch s{series.of(label)}" '
                    f'aria-hidden="true"></span>{esc(label)}{flag}</th><td>{f.sessions:,}</td>'
                    f"<td>{short(f.tokens['input'])}</td><td>{short(f.tokens['output'])}</td>"
                    f"<td>{short(f.tokens['cache_read'] + f.tokens['cache_creation'])}</td>"
                    f"<td>{esc(cost_cell(f))}</td></tr>")
    return ('<section class="card" aria-labelledby="models-h"><h2 id="models-h">Models</h2>'
            '<table class="data"><thead><tr><th scope=col>Model</th><th scope=col>Sessions'
            "</th><th scope=col>Input</th><th scope=col>Output</th><th scope=col>Cache</th>"
            "<th scope=col>Cost</th></tr></thead><tbody>" + "".join(body)
            + "</tbody></table></section>")


def _cost_per_commit(d: Dashboard) -> str:
    """Cost per commit per week (weeks from Monday), from the report's days."""
    weeks: dict[str, list[float]] = {}
    for label, f, _ in d.periods.rows:
        day = date.fromisoformat(label)
        week = (day - timedelta(days=day.weekday())).isoformat()
        w = weeks.setdefault(week, [0.0, 0.0])
        w[0] += f.cost_usd or 0.0
        w[1] += f.contrib["commits"]
    points = [(w, c / n) for w, (c, n) in sorted(weeks.items()) if n]
    axis_weeks = slots([(w, None, None) for w, _ in points], "week")
    at = {w: i for i, w in enumerate(axis_weeks)}
    total = d.periods.totals.cost_per_commit
    if not points:
        chart = "<p class=note>No commits reported in this range (Claude Code reports them).</p>"
    else:
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
        parts.append('</g><g class="bars">')
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
        chart = "<figure>" + "".join(parts) + "</figure>"
    return ('<section class="card" aria-labelledby="cpc-h"><h2 id="cpc-h">Cost per commit '
            f'<small>{esc(money(total) if total else "—")} overall</small></h2>{chart}'
            "</section>")


def _acceptance(d: Dashboard) -> str:
    rows = []
    for x in d.models.decisions or []:
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
        body = ('<table class="data"><thead><tr><th scope=col>Tool</th><th scope=col>'
                '<span class="sr">Accepted and rejected</span></th><th scope=col>Accepted</th>'
                "<th scope=col>Rejected</th><th scope=col>Rate</th></tr></thead><tbody>"
                + "".join(trs) + "</tbody></table>")
    return ('<section class="card" aria-labelledby="acc-h"><h2 id="acc-h">Tool acceptance'
            f"</h2>{body}</section>")


SESSION_COLUMNS = (("Started", "num"), ("Tool", "text"), ("Project", "text"),
                   ("Models", "text"), ("Entry", "text"), ("Source", "text"), ("Exit", "num"),
                   ("Duration", "num"), ("Tokens", "num"), ("Cost", "num"))


def _sessions(d: Dashboard) -> str:
    r = d.sessions
    tz = d.opts.tz
    trs, failed = [], 0
    for sid, f, _ in r.rows:
        facts = r.sessions.get(sid, {})
        started = facts.get("started_at") or 0
        code = facts.get("exit_code")
        failed += bool(code)
        dur = rep.duration_s(facts)
        names = rep.source_names(facts.get("sources"))
        sources = "+".join(rep.SHORT_SOURCES.get(n, n) for n in names) or "—"
        cost = f.cost_usd
        models = esc(", ".join(sorted(f.models)))
        trs.append(
            f'<tr><td data-v="{started:.0f}">'
            f"{datetime.fromtimestamp(started, tz).strftime('%Y-%m-%d %H:%M')}</td>"
            f"<td>{esc(facts.get('tool') or '')}</td><td>{esc(facts.get('project') or '')}</td>"
            f'<td title="{models}">{models}</td>'
            f"<td>{esc(facts.get('entrypoint') or '—')}</td><td>{esc(sources)}</td>"
            f'<td data-v="{"" if code is None else code}"'
            f'{" class=bad" if code else ""}>{rep.exit_status(code)}</td>'
            f'<td data-v="{"" if dur is None else f"{dur:.0f}"}">{rep.duration(dur)}</td>'
            f'<td data-v="{f.total}">{f.total:,}</td>'
            f'<td data-v="{"" if cost is None else f"{cost:.6f}"}">{esc(rep.usd(f))}</td></tr>')
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


def _footer(d: Dashboard, prices_as_of: str | None) -> str:
    parts = []
    unpriced = sorted(d.periods.totals.unpriced)
    if unpriced:
        parts.append("<h2>Models without a price</h2><p>Their cost is not counted: "
                     + ", ".join(f"<code>{esc(m)}</code>" for m in unpriced)
                     + ". A row shows <code>unpriced</code>, or the priced part with a * (a "
                       "lower bound). Add a price to your profile (<code>aitrack paths</code> "
                       "shows where):</p><pre>"
                     + esc(rep.price_snippet(unpriced[0])) + "</pre>")
    stale = rep.stale_prices(prices_as_of, d.opts.today)
    parts.append(f"<p>Costs are what the tools reported (Claude Code) or estimates from list "
                 f"prices as of <strong>{esc(prices_as_of or 'unknown')}</strong>"
                 + (f'. <span class="warn">{esc(stale)}</span>' if stale else ".")
                 + " Figures are the ones <code>aitrack report</code> gives for the same "
                   "filters.</p>")
    return '<footer class="card wide">' + "".join(parts) + "</footer>"


def _scope(d: Dashboard) -> str:
    o = d.opts
    rows = d.periods.rows
    if o.last:
        when = f"the last {o.last} days"
    elif o.since or o.until:
        when = f"{o.since or 'the start'} to {o.until or 'today'}"
    elif rows:
        when = f"{rows[0][0]} to {rows[-1][0]}" if len(rows) > 1 else rows[0][0]
    else:
        when = "all time"
    project = o.project
    if project and ("/" in project or "\\" in project or project in (".", "..")):
        project = Path(project).expanduser().resolve().name  # the page shows no paths
    filters = [f"tool {o.tool}" if o.tool else "", f"project {project}" if project else "",
               f"model {o.model}" if o.model else ""]
    return ", ".join(p for p in (when, *filters) if p)


# ---------------------------------------------------------------- the page


def page(d: Dashboard, prices_as_of: str | None) -> str:
    series = series_of(d.models)
    scope = _scope(d)
    if d.periods.rows:
        body = (_kpis(d) + _charts(d, series) + '<div class="grid"><div>' + _tools(d)
                + _acceptance(d) + "</div><div>" + _projects(d) + "</div><div>"
                + _models(d, series) + "</div><div>" + _cost_per_commit(d) + "</div></div>"
                + _sessions(d))
    else:
        body = '<section class="card wide"><p>No sessions match these filters.</p></section>'
    csp = (f"default-src 'none'; style-src '{_hash(STYLE)}'; script-src '{_hash(SCRIPT)}'; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        '<meta name=referrer content=no-referrer><meta name=color-scheme content="light dark">'
        '<link rel=icon href="data:,">'
        f"<title>AI coding usage: {esc(scope)}</title><style>{STYLE}</style></head><body>"
        '<header><div><h1>AI coding usage</h1><p class=scope>'
        f"{esc(scope)} <span class=dim>· days in {esc(d.opts.tz_name)}</span></p></div>"
        f'<p class=meta>Generated {d.generated.strftime("%Y-%m-%d %H:%M")} by aitrack '
        f"{esc(__version__)}<br>Prices as of {esc(prices_as_of or 'unknown')}</p></header>"
        f"<main>{body}{_footer(d, prices_as_of)}</main>"
        f"<script>{SCRIPT}</script></body></html>\n")


def _hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def write(ledger: Path, opts: Options, prices: PriceTable, out: Path) -> int | None:
    """Write the dashboard to `out`; its size in bytes, or None when the ledger holds no
    session yet (nothing is written)."""
    import os
    import tempfile

    db = rep.open_ledger(ledger)
    try:
        if rep.is_empty(db):
            return None
        text = page(collect(db, opts, prices, ledger), prices.as_of)
    except rep.sqlite3.DatabaseError as exc:
        if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF not in rep.UNREADABLE:
            raise
        raise rep.damaged(ledger, exc) from None
    data = text.encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # a page to share, like any file the user writes
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(data)


# ---------------------------------------------------------------- style and script


STYLE = """
:root{--bg:#f6f7f9;--card:#fff;--ink:#1b1f24;--dim:#5d6673;--line:#e3e6eb;--grid:#eceff3;
--s0:#4c6ef5;--s1:#f08c3a;--s2:#2f9e77;--s3:#d6457a;--s4:#c9a227;--s5:#1c9fc4;--s6:#8b63d8;
--s7:#9aa2ad;--t0:#6d5bd0;--t1:#2f9e77;--t2:#f08c3a;--t3:#1c9fc4;--ok:#2f9e77;--bad:#d6453d;
--track:#edf0f4;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#0f1216;--card:#171b21;--ink:#e7eaee;
--dim:#9aa3ae;--line:#2a3038;--grid:#222830;--s0:#7b93ff;--s1:#ffa45c;--s2:#4cc79a;
--s3:#ff6b9c;--s4:#e6c04a;--s5:#4cc3e6;--s6:#a98bf0;--s7:#7c8591;--t0:#9a8cf0;--t1:#4cc79a;
--t2:#ffa45c;--t3:#4cc3e6;--ok:#4cc79a;--bad:#ff6b63;--track:#232a33}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,Ubuntu,sans-serif;font-variant-numeric:tabular-nums}
header,main{max-width:1180px;margin:0 auto;padding:0 20px}
header{display:flex;justify-content:space-between;align-items:flex-end;gap:16px;
padding-top:28px;padding-bottom:12px}
h1{font-size:24px;margin:0;letter-spacing:-.01em}
h2{font-size:15px;margin:0 0 10px}h2 small{font-weight:400;color:var(--dim);margin-left:6px}
.scope{margin:4px 0 0;font-size:15px}.dim,.meta,.note,dd.note{color:var(--dim)}
.meta{text-align:right;font-size:12px;margin:0}
.kpis dl{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;
margin:8px 0 14px}
.kpi,.card{background:var(--card);border:1px solid var(--line);border-radius:10px}
.kpi{padding:14px 16px}.kpi dt{color:var(--dim);font-size:12px;text-transform:uppercase;
letter-spacing:.05em}.kpi dd{margin:0}.kpi .value{font-size:26px;font-weight:650;
letter-spacing:-.02em;margin:2px 0}.kpi .note{font-size:12px}
.card{padding:16px 18px;margin-bottom:14px;min-width:0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:0 14px;
align-items:start}
.wide h2+figure,.card figure{margin:0 0 8px}
svg.chart{width:100%;height:auto;display:block}
.gridlines line{stroke:var(--grid);stroke-width:1}
.chart text{fill:var(--dim);font-size:11px}
.s0{fill:var(--s0);background:var(--s0)}.s1{fill:var(--s1);background:var(--s1)}
.s2{fill:var(--s2);background:var(--s2)}.s3{fill:var(--s3);background:var(--s3)}
.s4{fill:var(--s4);background:var(--s4)}.s5{fill:var(--s5);background:var(--s5)}
.s6{fill:var(--s6);background:var(--s6)}.s7{fill:var(--s7);background:var(--s7)}
.t0{fill:var(--t0);background:var(--t0)}.t1{fill:var(--t1);background:var(--t1)}
.t2{fill:var(--t2);background:var(--t2)}.t3{fill:var(--t3);background:var(--t3)}
.ok{fill:var(--ok)}.bad{fill:var(--bad)}td.bad{color:var(--bad);font-weight:600}
.track{fill:var(--track)}
.bars g:hover rect{opacity:.8}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;list-style:none;padding:0;margin:0 0 8px;
font-size:12px;color:var(--dim)}
.swatch{display:inline-block;width:10px;height:10px;border-radius:3px;margin-right:6px;
vertical-align:-1px}
svg.split{width:100%;height:12px;display:block;border-radius:4px;margin:2px 0 10px}
svg.hbar{width:100%;height:10px;display:block;border-radius:3px}
table.data{width:100%;border-collapse:collapse;font-size:13px}
.data th,.data td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:right;
white-space:nowrap}
.data th:first-child,.data td:first-child{text-align:left}
.data thead th{color:var(--dim);font-weight:600;font-size:12px}
.data tbody th{font-weight:500}.data td.bar{width:38%;min-width:90px}
.data tr.sub th{font-weight:400;padding-left:22px;color:var(--dim)}
.sessions td:nth-child(n+2):nth-child(-n+6){text-align:left}
.sessions th:nth-child(n+2):nth-child(-n+6){text-align:left}
.sessions td:nth-child(4){max-width:220px;overflow:hidden;text-overflow:ellipsis}
.sessions{font-size:12.5px}
.sessions tfoot th,.sessions tfoot td{color:var(--dim);font-weight:500;border-bottom:0}
th button{font:inherit;color:inherit;background:none;border:0;padding:0;cursor:pointer}
th button:hover{color:var(--ink)}
th button:focus-visible,summary:focus-visible,.scroll:focus-visible{
outline:2px solid var(--s0);outline-offset:2px;border-radius:3px}
th[aria-sort=ascending] button::after{content:" \\2191"}
th[aria-sort=descending] button::after{content:" \\2193"}
.scroll{max-height:560px;overflow:auto;border:1px solid var(--line);border-radius:8px}
.scroll thead th{position:sticky;top:0;background:var(--card);z-index:1}
details{margin-top:6px}summary{cursor:pointer;color:var(--dim);font-size:13px}
details table{margin-top:8px}
.tag{font-size:11px;border-radius:4px;padding:1px 5px;margin-left:6px}
.warn{color:var(--bad)}.tag.warn{border:1px solid var(--bad)}
pre{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:10px;
overflow:auto}code{font-size:12.5px}
footer{font-size:13px;color:var(--dim);margin-bottom:28px}footer h2{color:var(--ink)}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);
white-space:nowrap}
@media (max-width:640px){header{display:block}.meta{text-align:left;margin-top:8px}
.grid{grid-template-columns:1fr}}
@media print{body{background:#fff}.scroll{max-height:none}}
"""

SCRIPT = """
for (const table of document.querySelectorAll("table[data-sortable]")) {
  const heads = [...table.tHead.rows[0].cells];
  const status = document.getElementById("sort-status");
  heads.forEach((th, i) => th.querySelector("button").addEventListener("click", () => {
    const asc = th.getAttribute("aria-sort") === "descending";
    for (const h of heads) h.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    const num = th.dataset.type === "num";
    const key = (row) => {
      const c = row.cells[i];
      const v = c.dataset.v !== undefined ? c.dataset.v : c.textContent;
      return num ? (v === "" ? -Infinity : Number(v)) : v.toLowerCase();
    };
    const body = table.tBodies[0];
    const rows = [...body.rows].sort((a, b) => {
      const x = key(a), y = key(b);
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    });
    body.append(...rows);
    if (status) status.textContent = `Sorted by ${th.textContent.trim()}, ` +
      (asc ? "ascending" : "descending");
  }));
}
"""
