"""`aitrack dashboard`: the report's figures as one self-contained HTML page.

The page reads the ledger through figures.py exactly as `aitrack report` does (the same
numbers under the same filters) and holds everything it shows: inline SVG charts
(charts.py), one small inline script that sorts the sessions table (dashboard.js), CSS with
light and dark themes that follow the system (dashboard.css). A Content-Security-Policy
allows nothing but that script and that style (by hash), so the page loads nothing, from
the network or from disk, when opened: it can be attached to an email and read offline.

Sensible aggregation keeps it small and quick on a heavy year: per day (per week past
MAX_BARS days), the costliest SERIES models with the rest as "other models", the newest
TABLE_SESSIONS sessions with the rest summed in one line, and cost per project only up to
PROJECT_COST_SESSIONS sessions (the ledger keeps no summary per project, so it means
reading every usage row; above that, projects are ranked by sessions).
"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import tempfile
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from aitrack import __version__
from aitrack.domain import pricing
from aitrack.domain.pricing import PriceTable
from aitrack.reports import sections
from aitrack.reports.charts import Series, esc
from aitrack.reports.figures import build, decisions, session_counts
from aitrack.reports.periods import Options
from aitrack.reports.readonly import is_empty, open_ledger, reading
from aitrack.reports.rows import Report

TABLE_SESSIONS = 1000  # the newest sessions listed in the table
PROJECT_COST_SESSIONS = 20_000  # above this many sessions, projects show sessions only
MAX_BARS = 400  # past this many days the charts have a bar per week
SERIES = 7  # models with a colour of their own; the rest are "other models"


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


def collect(db: sqlite3.Connection, opts: Options, prices: PriceTable,
            ledger: Path | None = None) -> Dashboard:
    """Every figure the page shows, from figures.py under the same options.

    With the ledger's path, the tool decisions (a scan of every decision, when the rest
    reads summaries) are read meanwhile on a second read-only connection: SQLite lets go of
    the GIL while it works."""
    base = replace(opts, breakdown=False, limit=None, order=None)
    found: list = []
    worker = None
    if ledger is not None:
        def read_decisions() -> None:
            own = open_ledger(ledger)
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


def page(d: Dashboard, prices_as_of: str | None) -> str:
    series = Series.costliest(d.models, SERIES)
    scope = _scope(d)
    decided = d.models.decisions
    if d.periods.rows:
        body = (sections.kpis(d.periods, d.unit, decided)
                + sections.usage(d.periods, d.unit, series) + '<div class="grid"><div>'
                + sections.tools(d.tools, decided) + sections.acceptance(decided)
                + "</div><div>"
                + sections.projects(d.projects, d.project_sessions, PROJECT_COST_SESSIONS)
                + "</div><div>" + sections.models(d.models, series) + "</div><div>"
                + sections.cost_per_commit(d.periods) + "</div></div>"
                + sections.sessions(d.sessions, d.opts.tz))
    else:
        body = '<section class="card wide"><p>No sessions match these filters.</p></section>'
    # the text between the tags, as the Content-Security-Policy hashes it
    style, script = "\n" + _asset("dashboard.css"), "\n" + _asset("dashboard.js")
    csp = (f"default-src 'none'; style-src '{_hash(style)}'; script-src '{_hash(script)}'; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        '<meta name=referrer content=no-referrer><meta name=color-scheme content="light dark">'
        '<link rel=icon href="data:,">'
        f"<title>AI coding usage: {esc(scope)}</title><style>{style}</style></head><body>"
        '<header><div><h1>AI coding usage</h1><p class=scope>'
        f"{esc(scope)} <span class=dim>· days in {esc(d.opts.tz_name)}</span></p></div>"
        f'<p class=meta>Generated {d.generated.strftime("%Y-%m-%d %H:%M")} by aitrack '
        f"{esc(__version__)}<br>Prices as of {esc(prices_as_of or 'unknown')}</p></header>"
        f"<main>{body}{_footer(d, prices_as_of)}</main>"
        f"<script>{script}</script></body></html>\n")


def _footer(d: Dashboard, prices_as_of: str | None) -> str:
    parts = []
    unpriced = sorted(d.periods.totals.unpriced)
    if unpriced:
        parts.append("<h2>Models without a price</h2><p>Their cost is not counted: "
                     + ", ".join(f"<code>{esc(m)}</code>" for m in unpriced)
                     + ". A row shows <code>unpriced</code>, or the priced part with a * (a "
                       "lower bound). Add a price to your profile (<code>aitrack paths</code> "
                       "shows where):</p><pre>"
                     + esc(pricing.snippet(unpriced[0])) + "</pre>")
    stale = pricing.stale_line(prices_as_of, d.opts.today)
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


def _asset(name: str) -> str:
    """The page's stylesheet or script, shipped beside this module (package data: an
    installed aitrack is plain files; importlib.resources would add ~5 ms of imports)."""
    return Path(__file__).with_name(name).read_text(encoding="utf-8")


def _hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def write(ledger: Path, opts: Options, prices: PriceTable, out: Path) -> int | None:
    """Write the dashboard to `out` (its folder must exist); its size in bytes, or None when
    the ledger holds no session yet (nothing is written)."""
    db = open_ledger(ledger)
    with reading(ledger):
        if is_empty(db):
            return None
        text = page(collect(db, opts, prices, ledger), prices.as_of)
    data = text.encode("utf-8")
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
