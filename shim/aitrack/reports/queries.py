"""The SQL a report runs over the ledger's sessions, usage and session_metrics.

These exact queries answer any zone and any filter; summaries.py answers the common cases
from migration m002's summaries instead. A period or model report runs three queries (a
Plan): sessions per key, contributions per key and per-(key, model) sums, where the key is
the local day, the tool or the project.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from aitrack.domain import tokens as token_types
from aitrack.reports.periods import DAY, GROUPS, Options, local_seconds_sql, offset_segments
from aitrack.reports.rows import PRICED, TOKEN_FIELDS

# the token types a pairs query sums: the shown ones, then the subsets
SUMMED = (*TOKEN_FIELDS, *token_types.SUBSETS)


def int_total(expr: str) -> str:
    """A sum of token counts that never fails: SQLite's SUM() raises "integer overflow" past
    2^63-1, which a ledger an older aitrack fed hostile transcripts can reach; TOTAL() sums
    as floats, and the CAST gives an integer back (2^63-1 at most)."""
    return f"CAST(TOTAL({expr}) AS INTEGER)"


def type_sums(alias: str) -> str:
    """Per token type of SUMMED, the sum of the tokens of that type, named c0, c1, ..."""
    return ", ".join(
        f"{int_total(f'CASE {alias}.token_type WHEN {t!r} THEN {alias}.tokens ELSE 0 END')}"
        f" AS c{i}" for i, t in enumerate(SUMMED))


_PAIRS_SQL = f"""
SELECT k, model, COUNT(*), {", ".join(int_total(f"c{i}") for i in range(len(TOKEN_FIELDS)))},
       SUM(cost), COUNT(cost),
       {", ".join(int_total(f"CASE WHEN cost IS NULL THEN c{SUMMED.index(t)} END")
                  for t in PRICED)}
FROM (
    SELECT {{key}} AS k, u.model AS model, {type_sums("u")},
           (SELECT c.value FROM session_metrics c WHERE c.session_id = u.session_id
              AND c.model = u.model AND c.name = 'cost_usd') AS cost
    FROM sessions s JOIN usage u ON u.session_id = s.id
    WHERE {{where}} {{usage_model}}
    GROUP BY u.session_id, u.model
    UNION ALL
    -- a reported cost for a model the session has no token counts for
    SELECT {{key}}, c.model, {", ".join("0" * len(SUMMED))}, c.value
    FROM sessions s JOIN session_metrics c ON c.session_id = s.id
    WHERE c.name = 'cost_usd' AND {{where}} {{cost_model}}
      AND NOT EXISTS (SELECT 1 FROM usage u WHERE u.session_id = c.session_id
                      AND u.model = c.model)
)
GROUP BY k, model
"""

_SESSIONS_SQL = """
SELECT {key} AS k, COUNT(*) FROM sessions s WHERE {where} {session_model} GROUP BY k
"""

_CONTRIB_SQL = """
SELECT {key} AS k,
       SUM(CASE m.name WHEN 'lines_added' THEN m.value ELSE 0 END),
       SUM(CASE m.name WHEN 'lines_removed' THEN m.value ELSE 0 END),
       SUM(CASE m.name WHEN 'commits' THEN m.value ELSE 0 END),
       SUM(CASE m.name WHEN 'pull_requests' THEN m.value ELSE 0 END)
FROM sessions s JOIN session_metrics m ON m.session_id = s.id AND m.model = ''
WHERE {where} {session_model} GROUP BY k
"""

_SESSION_MODEL_SQL = (
    "AND (EXISTS (SELECT 1 FROM usage u WHERE u.session_id = s.id AND u.model GLOB :model) "
    "OR EXISTS (SELECT 1 FROM session_metrics c WHERE c.session_id = s.id "
    "AND c.name = 'cost_usd' AND c.model GLOB :model))"
)


def project_filter(value: str) -> tuple[str, dict[str, str]]:
    """--project: a directory (sessions run in it or below it) or a project name."""
    path = Path(value).expanduser()
    if os.sep in value or value in (".", "..") or path.is_dir():
        root = path.resolve()
        for d in (root, *root.parents):  # the git work tree, as the wrapper names projects
            if (d / ".git").exists():
                root = d
                break
        prefix = str(root).rstrip(os.sep) + os.sep
        return ("AND (s.cwd = :dir OR substr(s.cwd, 1, length(:dirp)) = :dirp)",
                {"dir": str(root), "dirp": prefix})
    return "AND s.project = :project", {"project": value}


def where_clause(opts: Options, lo: float | None, hi: float | None) -> tuple[str, dict]:
    parts, params = ["1"], {}
    if lo is not None:
        parts.append("s.started_at >= :lo")
        params["lo"] = lo
    if hi is not None:
        parts.append("s.started_at < :hi")
        params["hi"] = hi
    if opts.tool:
        parts.append("s.tool = :tool")
        params["tool"] = opts.tool
    sql = " AND ".join(parts)
    if opts.project:
        extra, p = project_filter(opts.project)
        sql += " " + extra
        params.update(p)
    if opts.model:
        params["model"] = opts.model
    return sql, params


def model_sql(opts: Options) -> dict[str, str]:
    """The --model filter for the usage, the reported costs and the sessions."""
    if not opts.model:
        return {"usage_model": "", "cost_model": "", "session_model": ""}
    return {"usage_model": "AND u.model GLOB :model", "cost_model": "AND c.model GLOB :model",
            "session_model": _SESSION_MODEL_SQL}


@dataclass
class Plan:
    """The three queries a period or model report runs, and their parameters."""

    source: str  # "hourly" (the summaries of migration m002) | "exact" (sessions and usage)
    sessions_sql: str = ""
    contrib_sql: str = ""
    pairs_sql: str = ""
    params: dict = field(default_factory=dict)
    empty: bool = False  # no session in range: nothing to query


def exact_plan(db: sqlite3.Connection, opts: Options, lo: float | None,
               hi: float | None) -> Plan:
    """Queries over sessions, usage and session_metrics themselves: any zone and filter."""
    where, params = where_clause(opts, lo, hi)
    if opts.kind == "model":
        key = "''"
    elif opts.kind in GROUPS:
        key = f"COALESCE(s.{opts.kind}, '')"
    else:
        span = db.execute(f"SELECT MIN(s.started_at), MAX(s.started_at) FROM sessions s "
                          f"WHERE {where}", params).fetchone()
        if span[0] is None:
            return Plan("exact", empty=True)
        segments = offset_segments(opts.tz, span[0], span[1])
        key = f"CAST({local_seconds_sql(segments)} / {DAY} AS INTEGER)"
    fmt = {"key": key, "where": where, **model_sql(opts)}
    return Plan("exact", _SESSIONS_SQL.format(**fmt), _CONTRIB_SQL.format(**fmt),
                _PAIRS_SQL.format(**fmt), params)


def models(db: sqlite3.Connection | None) -> list[str]:
    """Every model the ledger holds usage for; none without a ledger (`db` None)."""
    if db is None:
        return []
    rows = db.execute("SELECT DISTINCT model FROM usage WHERE model != '' ORDER BY model")
    return [model for (model,) in rows]


def reported_by(db: sqlite3.Connection | None) -> dict[str, list[str]]:
    """Model -> the tools that reported a cost of their own for it (their estimate, which a
    report takes as the cost of record)."""
    if db is None:
        return {}
    found: dict[str, list[str]] = {}
    for model, tool in db.execute(
            "SELECT DISTINCT c.model, s.tool FROM session_metrics c JOIN sessions s "
            "ON s.id = c.session_id WHERE c.name = 'cost_usd' ORDER BY 1, 2"):
        found.setdefault(model, []).append(tool)
    return found
