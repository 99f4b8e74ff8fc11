"""Period and model reports from the summaries that migration m002's triggers keep: usage
per UTC hour and day, sessions and contributions per UTC hour.

A heavy user's year is 1,000,000 usage rows, and grouping them takes about a second here;
the summaries give exactly the same rows in a fraction of that whenever they can: no
--project or --model filter, and a zone whose offsets over the range are whole hours (then
local days start on UTC hours). Anything else (a +05:30 zone, --project, --model, a ledger
no writer has migrated yet) runs the exact queries of queries.py.
"""

from __future__ import annotations

import sqlite3

from aitrack.reports.periods import DAY, Options, local_seconds_sql, offset_segments
from aitrack.reports.queries import Plan, int_total
from aitrack.reports.rows import PRICED, TOKEN_FIELDS

_HOURLY_SESSIONS_SQL = """
SELECT {key} AS k, SUM(h.sessions) FROM sessions_hourly h WHERE {where} GROUP BY k
"""

_HOURLY_CONTRIB_SQL = """
SELECT {key} AS k, SUM(h.lines_added), SUM(h.lines_removed), SUM(h.commits),
       SUM(h.pull_requests)
FROM contrib_hourly h WHERE {where} GROUP BY k
"""

# the summaries' columns in the order of a pairs query's row (u_*: tokens to be priced)
_USAGE_SUMS = ("pairs", *TOKEN_FIELDS, "cost_reported", "cost_pairs",
               *(f"u_{t}" for t in PRICED))


def _columns(table: str, present: set[str], sign: str = "") -> str:
    """The summary columns of `table`; 0 for the subsets a ledger before m004 lacks."""
    return ", ".join(f"{sign}{table}.{c} AS {c}" if c in present else f"0 AS {c}"
                     for c in _USAGE_SUMS)


def hourly_plan(db: sqlite3.Connection, opts: Options, lo: float | None,
                hi: float | None) -> Plan | None:
    """Queries over the summaries of migration m002, when they give what the exact ones do.

    That is when nothing filters on what the summaries do not keep (--project, --model), the
    range starts and ends on UTC hours, and every local day in it starts on a UTC hour: the
    zone's offsets are whole hours and change on whole hours. Then a session's local day
    follows from its UTC hour, and a day, week or month is a sum of hours.

    Usage is read per UTC day where it can be: each UTC day inside the range counts whole
    for the local day its midpoint (12:00 UTC) falls in, and the hours of it that belong to
    another local day are moved there (added to theirs, subtracted from the midpoint's).
    Only hours in partial UTC days at the range's ends are read as hours.
    """
    if opts.project or opts.model or opts.kind == "project":
        return None
    if any(t is not None and t % 3600 for t in (lo, hi)):
        return None
    present = {row[1] for row in db.execute("PRAGMA table_info(usage_daily)")}
    if not present:
        return None  # a ledger no writer has migrated yet (the report opens it read-only)
    params: dict[str, object] = {"tool": opts.tool} if opts.tool else {}
    in_range = ["1"]  # for h, an alias of an hourly table
    whole = []  # UTC days wholly inside the range, for a column {c} holding a day number
    if lo is not None:
        params["lo_hour"] = lo_hour = int(lo) // 3600
        params["first_day"] = -(-lo_hour // 24)
        in_range.append("h.hour >= :lo_hour")
        whole.append("{c} >= :first_day")
    if hi is not None:
        params["hi_hour"] = hi_hour = int(hi) // 3600
        params["end_day"] = hi_hour // 24
        in_range.append("h.hour < :hi_hour")
        whole.append("{c} < :end_day")
    if opts.tool:
        in_range.append("h.tool = :tool")
    where = " AND ".join(in_range)
    if opts.kind == "model":
        key = day_key = mid_key = "''"
    elif opts.kind == "tool":
        key, day_key = "h.tool", "d.tool"
    else:
        span = db.execute(f"SELECT MIN(h.hour), MAX(h.hour) FROM sessions_hourly h "
                          f"WHERE {where}", params).fetchone()
        if span[0] is None:
            return Plan("hourly", empty=True)
        segments = offset_segments(opts.tz, span[0] * 3600, (span[1] + 1) * 3600)
        if any(off % 3600 or (until is not None and until % 3600) for until, off in segments):
            return None
        # integers throughout, so `/` is integer division (hours start after 1970)
        key = f"{local_seconds_sql(segments, 'h.hour * 3600')} / {DAY}"
        day_key = f"{local_seconds_sql(segments, f'd.day * {DAY} + {DAY // 2}')} / {DAY}"
        mid_key = f"{local_seconds_sql(segments, f'(h.hour / 24) * {DAY} + {DAY // 2}')} / {DAY}"

    whole_days = " AND ".join(whole) or "1"
    parts = [f"SELECT {day_key} AS k, d.model AS model, {_columns('d', present)} "
             f"FROM usage_daily d WHERE {whole_days.format(c='d.day')}"
             + (" AND d.tool = :tool" if opts.tool else "")]
    if whole:  # the hours of the partial UTC days at the range's ends
        parts.append(f"SELECT {key}, h.model, {_columns('h', present)} FROM usage_hourly h "
                     f"WHERE {where} AND NOT ({whole_days.format(c='h.hour / 24')})")
    if opts.kind not in ("model", "tool"):
        # hours that belong to another local day than their UTC day's midpoint; the cheap
        # test on the hour of day (and the days the offset changes) keeps the scan short
        hours: set[int] = set()
        for _, off in segments:
            cut = -off // 3600 % 24  # the UTC hour local days start at
            hours.update(range(cut) if cut <= 12 else range(cut, 24))
        changes = [int(until) // DAY for until, _ in segments[:-1]]
        maybe = " OR ".join(filter(None, (
            f"h.hour % 24 IN ({', '.join(map(str, sorted(hours)))})" if hours else "",
            f"h.hour / 24 IN ({', '.join(map(str, changes))})" if changes else "")))
        if maybe:
            moved = (f"FROM usage_hourly h WHERE {where} "
                     f"AND {whole_days.format(c='h.hour / 24')} "
                     f"AND ({maybe}) AND {key} != {mid_key}")
            parts += [f"SELECT {key}, h.model, {_columns('h', present)} {moved}",
                      f"SELECT {mid_key}, h.model, {_columns('h', present, '-')} {moved}"]
    sums = ", ".join(f"SUM({c})" if c.startswith("cost") else int_total(c) for c in _USAGE_SUMS)
    pairs_sql = (f"SELECT k, model, {sums} FROM ({' UNION ALL '.join(parts)}) "
                 "GROUP BY k, model HAVING SUM(pairs) > 0")  # not what was all moved away
    fmt = {"key": key, "where": where}
    return Plan("hourly", _HOURLY_SESSIONS_SQL.format(**fmt), _HOURLY_CONTRIB_SQL.format(**fmt),
                pairs_sql, params)
