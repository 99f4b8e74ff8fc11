"""The figures behind `aitrack report`: usage and cost per day, week, month, session or model.

SQLite does the aggregation; Python only prices the (day, model) sums. report.py lays
them out.
Days are cut in the report's time zone exactly: the zone's UTC offsets over the reported
range become a CASE expression, so `started_at + offset` is local time inside the query.

Where the sums come from (a heavy user's year is 1,000,000 usage rows, and grouping them
takes about a second here):
- Period and model reports read the summaries that migration m002's triggers keep
  (usage per UTC hour and day, sessions and contributions per UTC hour) whenever that gives
  exactly the same rows: no --project or --model filter, and a zone whose offsets over the
  range are whole hours (then local days start on UTC hours). Anything else (a +05:30 zone,
  --project, --model, a ledger no writer has migrated yet) runs the exact queries over
  sessions and usage. `USE_SUMMARIES = False` forces those; the tests compare the two.
- The session report reads the sessions in range first and then only their rows; with
  a --limit the totals still cover every matching session, from the summaries when they
  apply.

Cost of record, per (session, model): the cost the tool reported (Claude's
`claude_code.cost.usage`, source "reported"), else an estimate from the price table
("estimated"), else nothing ("unpriced": cost null, never $0). A row adding up several
(session, model) pairs is "reported", "estimated" or "mixed" when every part is known,
"partial" when some parts are unpriced (cost_usd is then the sum of the known parts, a
lower bound) and "unpriced" when none is known. A row without any usage is "none" ($0).
Estimates price the token subsets too (1-hour cache writes, long-context parts: tokens.py),
which the summaries keep since migration m004.

Contribution figures (lines, commits, pull requests) are per session, not per model: a
model's row or sub-row has none (`Figures.has_contrib` false), only periods and totals do.
Tool decisions (accepted and rejected tool uses) are read per tool and tool name.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path

from aitrack.domain import tokens as token_types
from aitrack.domain.pricing import PriceTable, estimate

KINDS = ("daily", "weekly", "monthly", "session", "model")
# not `report` kinds: rows per tool or per project, for the dashboard
GROUPS = ("tool", "project")
TOKEN_FIELDS = ("input", "output", "cache_read", "cache_creation", "reasoning")
# what estimates are priced from: the base types and their subsets (never added to totals)
PRICED = (*token_types.BASE, *token_types.SUBSETS)
CONTRIB_FIELDS = ("lines_added", "lines_removed", "commits", "pull_requests")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EPOCH = date(1970, 1, 1)
DAY = 86400
# ---------------------------------------------------------------- options and time


@dataclass
class Options:
    kind: str = "daily"
    tz: tzinfo = UTC
    tz_name: str = "UTC"
    since: date | None = None
    until: date | None = None
    last: int | None = None
    tool: str | None = None
    model: str | None = None  # glob
    project: str | None = None  # a project name, or a directory
    breakdown: bool = False
    order: str | None = None  # asc | desc; None: the report's natural order
    week_start: int = 0  # 0 = Monday
    today: date | None = None  # for tests; default: today in tz
    limit: int | None = None  # at most this many rows (0: all); None: the format's default


def system_zone() -> tuple[tzinfo, str]:
    """The system's IANA zone: $TZ, else /etc/localtime, else a fixed offset."""
    from zoneinfo import ZoneInfo

    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name), name
        except (ValueError, OSError):
            pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            name = target.split("zoneinfo/", 1)[1]
            return ZoneInfo(name), name
    except (ValueError, OSError):
        pass
    local = datetime.now().astimezone().tzinfo or UTC
    return local, str(local)


def day_start(d: date, tz: tzinfo) -> float:
    """The UTC timestamp at which local day `d` begins."""
    return datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()


def time_range(opts: Options) -> tuple[float | None, float | None]:
    """[lo, hi) in UTC seconds from --since/--until (inclusive local dates) or --last N days."""
    since, until = opts.since, opts.until
    if opts.last is not None:
        today = opts.today or datetime.now(opts.tz).date()
        since, until = today - timedelta(days=opts.last - 1), today
    lo = day_start(since, opts.tz) if since else None
    hi = day_start(until + timedelta(days=1), opts.tz) if until else None
    return lo, hi


def _offset(tz: tzinfo, t: float) -> int:
    return int(datetime.fromtimestamp(t, tz).utcoffset().total_seconds())


def offset_segments(tz: tzinfo, lo: float, hi: float) -> list[tuple[float | None, int]]:
    """The zone's UTC offsets over [lo, hi]: [(until_ts, offset), ..., (None, last offset)]."""
    step = 12 * 3600  # zones change offset at most a few times a year, never twice in 12 h
    t = float(int(lo) - DAY)
    end = hi + DAY
    prev = _offset(tz, t)
    segments: list[tuple[float | None, int]] = []
    while t < end:
        nxt = t + step
        off = _offset(tz, nxt)
        if off != prev:
            a, b = int(t), int(nxt)  # offset(a) == prev, offset(b) == off
            while b - a > 1:
                mid = (a + b) // 2
                if _offset(tz, mid) == prev:
                    a = mid
                else:
                    b = mid
            segments.append((float(b), prev))
            prev = off
        t = nxt
    segments.append((None, prev))
    return segments


def local_seconds_sql(segments: list[tuple[float | None, int]], utc: str = "s.started_at") -> str:
    """SQL for `utc` (UTC seconds; by default a session's start) shifted to local seconds."""
    if len(segments) == 1:
        return f"({utc} + {segments[0][1]})"
    arms = " ".join(f"WHEN {utc} < {until!r} THEN {off}" for until, off in segments[:-1])
    return f"({utc} + CASE {arms} ELSE {segments[-1][1]} END)"


def period_of(day: int, kind: str, week_start: int) -> str:
    """The label of the period that local day number `day` (days since 1970-01-01) falls in."""
    d = EPOCH + timedelta(days=day)
    if kind == "weekly":
        return (d - timedelta(days=(d.weekday() - week_start) % 7)).isoformat()
    if kind == "monthly":
        return d.strftime("%Y-%m")
    return d.isoformat()


# ---------------------------------------------------------------- aggregation


@dataclass
class Figures:
    """Sums over some (session, model) pairs, and what they cost."""

    sessions: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_FIELDS, 0))
    contrib: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CONTRIB_FIELDS, 0))
    reported: float = 0.0
    estimated: float = 0.0
    n_reported: int = 0
    n_estimated: int = 0
    unpriced: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    has_contrib: bool = True  # False for a model's figures: contributions are per session

    def add(self, other: Figures, sessions: bool = True) -> None:
        if sessions:
            self.sessions += other.sessions
        for k in TOKEN_FIELDS:
            self.tokens[k] += other.tokens[k]
        for k in CONTRIB_FIELDS:
            self.contrib[k] += other.contrib[k]
        self.reported += other.reported
        self.estimated += other.estimated
        self.n_reported += other.n_reported
        self.n_estimated += other.n_estimated
        self.unpriced |= other.unpriced
        self.models |= other.models

    @property
    def total(self) -> int:
        return sum(self.tokens[k] for k in ("input", "output", "cache_read", "cache_creation"))

    @property
    def cost_source(self) -> str:
        known = self.n_reported or self.n_estimated
        if self.unpriced:
            return "partial" if known else "unpriced"
        if self.n_reported and self.n_estimated:
            return "mixed"
        if self.n_reported:
            return "reported"
        return "estimated" if self.n_estimated else "none"

    @property
    def cost_usd(self) -> float | None:
        if self.cost_source == "unpriced":
            return None
        return round(self.reported + self.estimated, 6)

    @property
    def cost_per_commit(self) -> float | None:
        cost = self.cost_usd
        commits = self.contrib["commits"] if self.has_contrib else 0
        return round(cost / commits, 6) if cost is not None and commits else None


@dataclass
class Decisions:
    """Accepted and rejected tool uses of one tool (claude, codex), in all and per tool name."""

    tool: str
    accepted: int = 0
    rejected: int = 0
    by_name: dict[str, tuple[int, int]] = field(default_factory=dict)  # name: (acc., rej.)

    @staticmethod
    def rate(accepted: int, rejected: int) -> float | None:
        decided = accepted + rejected
        return round(accepted / decided, 4) if decided else None

    @property
    def acceptance_rate(self) -> float | None:
        return self.rate(self.accepted, self.rejected)


# the token types a pairs query sums: the shown ones, then the subsets
_SUMMED = (*TOKEN_FIELDS, *token_types.SUBSETS)


def _type_sums(alias: str) -> str:
    """Per token type of _SUMMED, the sum of the tokens of that type, named c0, c1, ..."""
    return ", ".join(f"SUM(CASE {alias}.token_type WHEN '{t}' THEN {alias}.tokens ELSE 0 END)"
                     f" AS c{i}" for i, t in enumerate(_SUMMED))


_PAIRS_SQL = f"""
SELECT k, model, COUNT(*), {", ".join(f"SUM(c{i})" for i in range(len(TOKEN_FIELDS)))},
       SUM(cost), COUNT(cost),
       {", ".join(f"SUM(CASE WHEN cost IS NULL THEN c{_SUMMED.index(t)} END)" for t in PRICED)}
FROM (
    SELECT {{key}} AS k, u.model AS model, {_type_sums("u")},
           (SELECT c.value FROM session_metrics c WHERE c.session_id = u.session_id
              AND c.model = u.model AND c.name = 'cost_usd') AS cost
    FROM sessions s JOIN usage u ON u.session_id = s.id
    WHERE {{where}} {{usage_model}}
    GROUP BY u.session_id, u.model
    UNION ALL
    -- a reported cost for a model the session has no token counts for
    SELECT {{key}}, c.model, {", ".join("0" * len(_SUMMED))}, c.value
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


@dataclass
class Report:
    kind: str
    opts: Options
    rows: list[tuple[str, Figures, list[tuple[str, Figures]]]]  # period, figures, by model
    totals: Figures
    prices_as_of: str | None
    sessions: dict[str, dict] = field(default_factory=dict)  # session report: id -> facts
    hidden: int = 0  # rows left out by --limit (the totals include them)
    source: str = "exact"  # "hourly" when read from the hourly summaries
    decisions: list[Decisions] | None = None  # the model report's tool acceptance


# Tests set this to False to check the hourly summaries against the exact queries.
USE_SUMMARIES = True

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


@dataclass
class _Plan:
    """The three queries a period or model report runs, and their parameters."""

    source: str  # "hourly" (the summaries of migration m002) | "exact" (sessions and usage)
    sessions_sql: str = ""
    contrib_sql: str = ""
    pairs_sql: str = ""
    params: dict = field(default_factory=dict)
    empty: bool = False  # no session in range: nothing to query


def _hourly_plan(db: sqlite3.Connection, opts: Options, lo: float | None,
                 hi: float | None) -> _Plan | None:
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
    if not USE_SUMMARIES or opts.project or opts.model or opts.kind == "project":
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
            return _Plan("hourly", empty=True)
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
    sums = ", ".join(f"SUM({c})" for c in _USAGE_SUMS)
    pairs_sql = (f"SELECT k, model, {sums} FROM ({' UNION ALL '.join(parts)}) "
                 "GROUP BY k, model HAVING SUM(pairs) > 0")  # not what was all moved away
    fmt = {"key": key, "where": where}
    return _Plan("hourly", _HOURLY_SESSIONS_SQL.format(**fmt), _HOURLY_CONTRIB_SQL.format(**fmt),
                 pairs_sql, params)


def _exact_plan(db: sqlite3.Connection, opts: Options, lo: float | None,
                hi: float | None) -> _Plan:
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
            return _Plan("exact", empty=True)
        segments = offset_segments(opts.tz, span[0], span[1])
        key = f"CAST({local_seconds_sql(segments)} / {DAY} AS INTEGER)"
    fmt = {"key": key, "where": where, **_model_sql(opts)}
    return _Plan("exact", _SESSIONS_SQL.format(**fmt), _CONTRIB_SQL.format(**fmt),
                 _PAIRS_SQL.format(**fmt), params)


def _model_sql(opts: Options) -> dict[str, str]:
    if not opts.model:
        return {"usage_model": "", "cost_model": "", "session_model": ""}
    return {"usage_model": "AND u.model GLOB :model", "cost_model": "AND c.model GLOB :model",
            "session_model": _SESSION_MODEL_SQL}


def build(db: sqlite3.Connection, opts: Options, prices: PriceTable,
          with_decisions: bool = True) -> Report:
    """The report `opts` ask for; a model report with its tool decisions unless told not
    to (the dashboard reads those on a connection of their own, meanwhile)."""
    lo, hi = time_range(opts)
    if opts.kind == "session":
        report = _build_sessions(db, opts, prices, lo, hi)
    else:
        plan = _hourly_plan(db, opts, lo, hi) or _exact_plan(db, opts, lo, hi)
        report = _build_periods(db, opts, prices, plan)
        if opts.kind == "model" and with_decisions:
            report.decisions = decisions(db, opts)
    _sort(report)
    if opts.limit and len(report.rows) > opts.limit:
        report.hidden = len(report.rows) - opts.limit
        del report.rows[opts.limit:]
    return report


def _build_periods(db: sqlite3.Connection, opts: Options, prices: PriceTable,
                   plan: _Plan) -> Report:
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
            _figures(rows, label_of(k)).sessions += n
    for k, *values in db.execute(plan.contrib_sql, plan.params):
        contrib = (whole if kind == "model" else _figures(rows, label_of(k))).contrib
        for name, v in zip(CONTRIB_FIELDS, values, strict=True):
            contrib[name] += v or 0
    for k, model, pairs, *sums in db.execute(plan.pairs_sql, plan.params):
        if kind == "model":
            _add_pairs(_figures(rows, model), model, pairs, sums, prices, sessions=True)
        else:
            _add_pairs(_figures(rows, label_of(k)), model, pairs, sums, prices)
            if opts.breakdown:
                _add_pairs(_figures(models.setdefault(label_of(k), {}), model), model, pairs,
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


def _figures(by: dict[str, Figures], key: str) -> Figures:
    f = by.get(key)
    if f is None:
        f = by[key] = Figures()
    return f


def _add_pairs(f: Figures, model: str, pairs: int, sums: list, prices: PriceTable,
               sessions: bool = False) -> None:
    """Add one query row: the sums over `pairs` (session, model) pairs of one model.

    `sums`: input, output, cache_read, cache_creation, reasoning, the reported cost and the
    number of pairs it covers, then the sums of PRICED of the pairs without one.
    """
    inp, out, cr, cc, rs, reported, n_reported, *unreported = sums
    if sessions:
        f.sessions += pairs  # a model's row counts the sessions that used it
    t = f.tokens
    t["input"] += inp or 0
    t["output"] += out or 0
    t["cache_read"] += cr or 0
    t["cache_creation"] += cc or 0
    t["reasoning"] += rs or 0
    f.models.add(model)
    f.reported += reported or 0.0
    f.n_reported += n_reported
    n_estimated = pairs - n_reported
    if n_estimated:
        price = prices.price_for(model)
        if price is None:
            f.unpriced.add(model)
        else:
            tokens = dict(zip(PRICED, (v or 0 for v in unreported), strict=True))
            f.estimated += estimate(tokens, price)
            f.n_estimated += n_estimated


# The sessions in range come first (the started_at index), then their own rows by primary
# key: a month of sessions never groups the whole usage table.
_SESSION_PAIRS_SQL = f"""
SELECT u.session_id, u.model, {_type_sums("u")},
       (SELECT c.value FROM session_metrics c WHERE c.session_id = u.session_id
          AND c.model = u.model AND c.name = 'cost_usd')
FROM usage u WHERE u.session_id IN ({{ids}}) {{usage_model}}
GROUP BY u.session_id, u.model
UNION ALL
-- a reported cost for a model the session has no token counts for
SELECT c.session_id, c.model, {", ".join("0" * len(_SUMMED))}, c.value
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

_SESSION_FACTS = ("id", "tool", "tool_version", "started_at", "ended_at", "exit_code",
                  "project", "cwd", "entrypoint", "sources")  # the last two since m004


def _build_sessions(db: sqlite3.Connection, opts: Options, prices: PriceTable,
                    lo: float | None, hi: float | None) -> Report:
    """One row per session; thousands of them, so per-row work stays on plain lists.

    With --limit N only the first N sessions (newest, unless --order asc) are read one by
    one, when the totals over all of them can come from the hourly summaries instead.
    """
    where, params = where_clause(opts, lo, hi)
    fmt = _model_sql(opts)
    matching = f"FROM sessions s WHERE {where} {fmt['session_model']}"
    summed = hidden = None  # the totals over all sessions, when only some are read
    if opts.limit:
        plan = _hourly_plan(db, replace(opts, kind="model"), lo, hi)
        count = db.execute(f"SELECT COUNT(*) {matching}", params).fetchone()[0]
        if plan is not None and count > opts.limit:
            summed = _build_periods(db, replace(opts, kind="model"), prices, plan).totals
            hidden = count - opts.limit
            order = "ASC" if opts.order == "asc" else "DESC"
            matching += f" ORDER BY s.started_at {order}, s.id {order} LIMIT {int(opts.limit)}"
    fmt["ids"] = f"SELECT s.id {matching}"
    present = {row[1] for row in db.execute("PRAGMA table_info(sessions)")}
    facts_sql = (f"SELECT {', '.join(f's.{n}' if n in present else 'NULL' for n in _SESSION_FACTS)}"
                 f" {matching}")
    facts = {row[0]: dict(zip(_SESSION_FACTS, row, strict=True))
             for row in db.execute(facts_sql, params)}
    # per session: 5 token sums, reported, estimated, n_reported, n_estimated, models, unpriced
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
                estimated = estimate(dict(zip(_SUMMED, sums, strict=True)), price)
                a[6] += estimated
                a[8] += 1
        if opts.breakdown:
            by_model.setdefault(sid, []).append(
                (model, _pair_figures(model, tokens, cost, estimated)))
    contrib = {sid: values for sid, *values in
               db.execute(_SESSION_CONTRIB_SQL.format(**fmt), params)}

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
    sql = _DECISIONS_SQL.format(where=where, session_model=_model_sql(opts)["session_model"])
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
    plan = _exact_plan(db, replace(opts, kind=kind), lo, hi)
    return {k: n for k, n in db.execute(plan.sessions_sql, plan.params)}


def why_empty(db: sqlite3.Connection, opts: Options) -> str | None:
    """When no session matches: whether --project or --tool names anything in the ledger."""
    problems = []
    if opts.project:
        extra, params = project_filter(opts.project)
        if db.execute(f"SELECT 1 FROM sessions s WHERE 1 {extra} LIMIT 1", params
                      ).fetchone() is None:
            known = [r[0] for r in db.execute(
                "SELECT project FROM sessions WHERE project IS NOT NULL GROUP BY project "
                "ORDER BY MAX(started_at) DESC LIMIT 6")]
            if "dir" in params:
                what = (f"no session ran in {params['dir']}" if Path(params["dir"]).is_dir()
                        else f"{params['dir']} is not a directory and no session ran there")
            else:
                what = f"no session has the project name {opts.project!r}"
            problems.append(f"--project {opts.project}: {what}"
                            + (f" (projects: {', '.join(known)})" if known else ""))
    if opts.tool and db.execute("SELECT 1 FROM sessions WHERE tool = ? LIMIT 1",
                                (opts.tool,)).fetchone() is None:
        known = [r[0] for r in db.execute("SELECT DISTINCT tool FROM sessions ORDER BY 1")]
        problems.append(f"--tool {opts.tool}: no session of that tool (tools: "
                        f"{', '.join(known)})")
    return "; ".join(problems) or None


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
