"""What a report covers: its options, the time zone its days are cut in, its periods.

Days are cut in the report's time zone exactly: the zone's UTC offsets over the reported
range become a CASE expression, so `started_at + offset` is local time inside a query.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

# not `report` kinds: rows per tool or per project, for the dashboard
GROUPS = ("tool", "project")
EPOCH = date(1970, 1, 1)
DAY = 86400
# Reports cover sessions started in 2020 (before any of these tools) up to two days from now:
# a ledger may hold dates an older aitrack took from hostile transcripts (0001-01-01,
# 9999-12-31), which no day arithmetic can place.
PLAUSIBLE_FROM = 1577836800  # 2020-01-01T00:00:00Z, a whole UTC hour
AHEAD_S = 2 * DAY


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
    by_tool: bool = False  # a sub-row per tool (daily, weekly, monthly)
    order: str | None = None  # asc | desc; None: the report's natural order
    week_start: int = 0  # 0 = Monday
    today: date | None = None  # for tests; default: today in tz
    limit: int | None = None  # at most this many rows (0: all); None: the format's default


def system_zone() -> tuple[tzinfo, str]:
    """The system's IANA zone: $TZ, else /etc/localtime, else a fixed offset."""
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
    floor, ceiling = plausible_span()
    return max(lo, floor) if lo is not None else floor, \
        min(hi, ceiling) if hi is not None else ceiling


def plausible_span(now: float | None = None) -> tuple[float, float]:
    """[from, to) of the sessions a report may show, in whole UTC hours."""
    now = time.time() if now is None else now
    return float(PLAUSIBLE_FROM), float((int(now + AHEAD_S) // 3600 + 1) * 3600)


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
