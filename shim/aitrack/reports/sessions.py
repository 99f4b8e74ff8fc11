"""The session report's rows: each session's facts and figures, read session by session.

The sessions in range come first (the started_at index), then their own rows by primary
key: a month of sessions never groups the whole usage table. Thousands of rows, so the
work per row stays on plain lists.
"""

from __future__ import annotations

import sqlite3

from aitrack import adapters
from aitrack.domain.pricing import PriceTable, estimate
from aitrack.reports.periods import Options
from aitrack.reports.queries import SUMMED, model_sql, type_sums
from aitrack.reports.rows import CONTRIB_FIELDS, TOKEN_FIELDS, Figures
from aitrack.store.ledger import SOURCE_NAMES

_SESSION_PAIRS_SQL = f"""
SELECT u.session_id, u.model, {type_sums("u")},
       (SELECT c.value FROM session_metrics c WHERE c.session_id = u.session_id
          AND c.model = u.model AND c.name = 'cost_usd')
FROM usage u WHERE u.session_id IN ({{ids}}) {{usage_model}}
GROUP BY u.session_id, u.model
UNION ALL
-- a reported cost for a model the session has no token counts for
SELECT c.session_id, c.model, {", ".join("0" * len(SUMMED))}, c.value
FROM session_metrics c WHERE c.session_id IN ({{ids}}) AND c.name = 'cost_usd' {{cost_model}}
  AND NOT EXISTS (SELECT 1 FROM usage u WHERE u.session_id = c.session_id
                  AND u.model = c.model)
"""

_SESSION_CONTRIB_SQL = """
SELECT m.session_id,
       SUM(CASE m.name WHEN 'lines_added' THEN m.value ELSE 0 END),
       SUM(CASE m.name WHEN 'lines_removed' THEN m.value ELSE 0 END),
       SUM(CASE m.name WHEN 'commits' THEN m.value ELSE 0 END),
       SUM(CASE m.name WHEN 'pull_requests' THEN m.value ELSE 0 END)
FROM session_metrics m WHERE m.session_id IN ({ids}) AND m.model = ''
GROUP BY m.session_id
"""

# the figures a tool reports of a session besides its tokens and cost of record (Copilot's
# premium_requests, opencode's own tool_cost_usd and its unrecorded_requests), summed over models
_SESSION_TOOL_FIGURES_SQL = f"""
SELECT m.session_id, m.name, SUM(m.value) FROM session_metrics m
WHERE m.session_id IN ({{ids}}) AND m.name NOT IN ('cost_usd', {", ".join(
    f"'{name}'" for name in CONTRIB_FIELDS)}, 'active_time_s')
GROUP BY m.session_id, m.name
"""

_SESSION_FACTS = ("id", "tool", "tool_version", "started_at", "ended_at", "exit_code",
                  "project", "cwd", "entrypoint", "sources", "tool_session_id")  # the last
# three since m004

SessionRow = tuple[str, Figures, list[tuple[str, Figures]]]  # id, figures, by model


def session_rows(db: sqlite3.Connection, opts: Options, prices: PriceTable, matching: str,
                 params: dict) -> tuple[dict[str, dict], list[SessionRow], Figures]:
    """The facts of the sessions `matching` selects (`FROM sessions s ...`), a row per
    session and their totals."""
    fmt = {**model_sql(opts), "ids": f"SELECT s.id {matching}"}
    present = {row[1] for row in db.execute("PRAGMA table_info(sessions)")}
    facts_sql = (f"SELECT {', '.join(f's.{n}' if n in present else 'NULL' for n in _SESSION_FACTS)}"
                 f" {matching}")
    facts = {row[0]: dict(zip(_SESSION_FACTS, row, strict=True))
             for row in db.execute(facts_sql, params)}
    acc, by_model = _sums(db, opts, prices, fmt, params)
    contrib = {sid: values for sid, *values in
               db.execute(_SESSION_CONTRIB_SQL.format(**fmt), params)}
    for sid, name, value in db.execute(_SESSION_TOOL_FIGURES_SQL.format(**fmt), params):
        if sid in facts:
            facts[sid].setdefault("tool_figures", {})[name] = round(value, 6)

    no_contrib = (0, 0, 0, 0)
    totals = Figures()
    t_tokens = [0, 0, 0, 0, 0]
    t_contrib = [0.0, 0.0, 0.0, 0.0]
    rows = []
    for sid in facts:
        a = acc.get(sid) or [0, 0, 0, 0, 0, 0.0, 0.0, 0, 0, [], []]
        c = contrib.get(sid, no_contrib)
        fig = Figures(sessions=1, tokens=dict(zip(TOKEN_FIELDS, a[:5], strict=True)),
                      contrib=dict(zip(CONTRIB_FIELDS, (v or 0 for v in c), strict=True)),
                      reported=a[5], estimated=a[6], n_reported=a[7], n_estimated=a[8],
                      unpriced=set(a[10]), models=set(a[9]))
        rows.append((sid, fig, sorted(by_model.get(sid, ()), key=lambda kv: kv[0])))
        for i in range(5):
            t_tokens[i] += a[i]
        for i in range(4):
            t_contrib[i] += c[i] or 0
        totals.reported += a[5]
        totals.estimated += a[6]
        totals.n_reported += a[7]
        totals.n_estimated += a[8]
        totals.unpriced.update(a[10])
        totals.models.update(a[9])
    totals.sessions = len(rows)
    totals.tokens = dict(zip(TOKEN_FIELDS, t_tokens, strict=True))
    totals.contrib = dict(zip(CONTRIB_FIELDS, t_contrib, strict=True))
    return facts, rows, totals


def _sums(db: sqlite3.Connection, opts: Options, prices: PriceTable, fmt: dict[str, str],
          params: dict) -> tuple[dict[str, list], dict[str, list[tuple[str, Figures]]]]:
    """Per session: its 5 token sums, reported, estimated, n_reported, n_estimated, models
    and unpriced models; and with --breakdown, its figures per model."""
    acc: dict[str, list] = {}
    by_model: dict[str, list[tuple[str, Figures]]] = {}
    for sid, model, *sums, cost in db.execute(_SESSION_PAIRS_SQL.format(**fmt), params):
        tokens = sums[:5]
        a = acc.get(sid)
        if a is None:
            a = acc[sid] = [0, 0, 0, 0, 0, 0.0, 0.0, 0, 0, [], []]
        for i in range(5):
            a[i] += tokens[i]
        a[9].append(model)
        estimated = None
        if cost is not None:
            a[5] += cost
            a[7] += 1
        else:
            price = prices.price_for(model)
            if price is None:
                a[10].append(model)
            else:
                estimated = estimate(dict(zip(SUMMED, sums, strict=True)), price)
                a[6] += estimated
                a[8] += 1
        if opts.breakdown:
            by_model.setdefault(sid, []).append(
                (model, _pair_figures(model, tokens, cost, estimated)))
    return acc, by_model


def _pair_figures(model: str, tokens: list[int], reported: float | None,
                  estimated: float | None) -> Figures:
    """One (session, model) pair, for --breakdown."""
    f = Figures(sessions=1, tokens=dict(zip(TOKEN_FIELDS, tokens, strict=True)), models={model},
                has_contrib=False)
    if reported is not None:
        f.reported, f.n_reported = reported, 1
    elif estimated is not None:
        f.estimated, f.n_estimated = estimated, 1
    else:
        f.unpriced = {model}
    return f


def source_names(flags: int | None) -> list[str]:
    """sessions.sources bit flags as names: ["telemetry", "transcript", "wrapper"]."""
    return [name for bit, name in sorted(SOURCE_NAMES.items()) if (flags or 0) & bit]


MAX_DURATION_S = 366 * 86400  # longer is an end time an older aitrack took from a bad line


def duration_s(facts: dict) -> float | None:
    """How long a session ran; None when unknown or not a duration (an end of 1e300)."""
    started, ended = facts.get("started_at"), facts.get("ended_at")
    if started is None or not ended or not 0 <= ended - started <= MAX_DURATION_S:
        return None
    return round(ended - started, 3)


def resume_command(facts: dict) -> str | None:
    """The command that resumes the session in its tool (`claude --resume ID`), when the
    tool has one and the session has its own id (a run that failed to start has none)."""
    tool, own = facts.get("tool"), facts.get("tool_session_id")
    if not own or tool not in adapters.TOOLS:
        return None
    template = adapters.load(tool).RESUME
    return template.format(id=own) if template else None
