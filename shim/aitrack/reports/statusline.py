"""`aitrack statusline`: the line Claude Code shows under its prompt (its `statusLine`
command): this session's cost, today's, and the profile's budget when it sets one.

Claude Code runs it at every update and waits for it, so it must answer from the ledger in
well under 50 ms (`bench/statusline.py` measures it). It is reached before click (entry.py)
and imports only the standard library's json, os, sqlite3 and time, the ledger opener and
the cost formula (domain/costs.py). What needs the profiles and the price table (the budget,
each model's rates) comes from a private cache, `statusline.json` in the cache directory,
rebuilt (with the full profile and price table) when a profile file, the price table or
aitrack changed, when a model is new to it, or every REFRESH_S.

The figures are the ledger's cost of record (README: Pricing), as `aitrack report` counts
them: a tool's reported cost for a (session, model), else an estimate from list prices, a
model without a price counting nothing (the sum then marked with a *). "Today" and "this
month" are the sessions started since local midnight and since the month's first day.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from types import SimpleNamespace

from aitrack import __version__
from aitrack.config import paths
from aitrack.domain import costs
from aitrack.domain import tokens as token_types
from aitrack.reports.readonly import LedgerError, open_ledger

CACHE = "statusline.json"
HOUR = 3600
REFRESH_S = 300.0  # also catches what no file stamp shows (macOS or Windows managed sources)
SUMMED = (*token_types.BASE, *token_types.SUBSETS)

_PAIRS = f"""
SELECT u.model, {", ".join(f"SUM(CASE u.token_type WHEN '{t}' THEN u.tokens ELSE 0 END)"
                           for t in SUMMED)},
       (SELECT c.value FROM session_metrics c WHERE c.session_id = u.session_id
          AND c.model = u.model AND c.name = 'cost_usd')
FROM sessions s JOIN usage u ON u.session_id = s.id WHERE {{where}}
GROUP BY u.session_id, u.model
UNION ALL
SELECT c.model, {", ".join("0" * len(SUMMED))}, c.value
FROM sessions s JOIN session_metrics c ON c.session_id = s.id
WHERE {{where}} AND c.name = 'cost_usd'
  AND NOT EXISTS (SELECT 1 FROM usage u WHERE u.session_id = c.session_id
                  AND u.model = c.model)
"""


class Sum:
    """A cost of record over some (session, model) pairs; `partial` when a model had none."""

    def __init__(self) -> None:
        self.usd = 0.0
        self.partial = False

    def text(self) -> str:
        return f"${self.usd:,.2f}" + ("*" if self.partial else "")


def main(argv: list[str], stdin=None, stdout=None) -> int:
    """Print the status line; never fails Claude Code's prompt (exit 0, a short reason)."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    try:
        stdout.write(line(*_from_claude(stdin)) + "\n")
    except (LedgerError, sqlite3.Error, OSError) as exc:
        stdout.write(f"aitrack: no figures ({exc})\n")
    return 0


def _from_claude(stdin) -> tuple[str | None, float | None]:
    """Claude Code's session id and its own cost figure for the session, from the JSON it
    writes on the command's stdin (nothing from a terminal)."""
    if stdin is None or stdin.isatty():
        return None, None
    try:
        data = json.loads(stdin.read() or "{}")
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    sid, cost = data.get("session_id"), data.get("cost")
    usd = cost.get("total_cost_usd") if isinstance(cost, dict) else None
    return (sid if isinstance(sid, str) and sid else None,
            float(usd) if isinstance(usd, (int, float)) and not isinstance(usd, bool) else None)


def line(session_id: str | None, claude_usd: float | None = None,
         now: float | None = None) -> str:
    """`$0.42 this session · $3.10 today · 16% of the $20 daily budget`. A session the
    ledger has no usage of yet (its first telemetry export is on its way) shows Claude
    Code's own figure for it, said so."""
    now = time.time() if now is None else now
    where = paths.resolve()
    db = open_ledger(where.ledger)
    if db is None:
        return "aitrack: no usage yet"
    midnight, month = _starts(now)
    try:
        pairs = {
            # the tool's own session id (a UUID: no need to know which tool asks)
            "session": _pairs(db, "s.tool_session_id = ?", (session_id,)) if session_id else [],
            "today": _since(db, midnight),
        }
        cache = _cache(where, {m for found in pairs.values() for m, *_ in found}, now)
        if cache["budget"].get("monthly_usd"):
            pairs["month"] = _since(db, month)
            cache = _cache(where, {m for m, *_ in pairs["month"]}, now)
    finally:
        db.close()
    sums = {name: _sum(found, cache["rates"]) for name, found in pairs.items()}
    parts = []
    if session_id and not pairs["session"] and claude_usd is not None:
        parts.append(f"${claude_usd:,.2f} this session (the tool's own figure)")
    elif session_id:
        parts.append(f"{sums['session'].text()} this session")
    parts.append(f"{sums['today'].text()} today")
    daily, monthly = cache["budget"].get("daily_usd"), cache["budget"].get("monthly_usd")
    if daily:
        parts.append(f"{sums['today'].usd / daily:.0%} of the ${daily:,.2f} daily budget")
    if monthly:
        parts.append(f"{sums['month'].text()} this month, {sums['month'].usd / monthly:.0%} of "
                     f"${monthly:,.2f}")
    return " · ".join(parts)


def _starts(now: float) -> tuple[float, float]:
    """Local midnight and the local month's first midnight, as UTC seconds."""
    t = time.localtime(now)
    midnight = time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))
    month = time.mktime((t.tm_year, t.tm_mon, 1, 0, 0, 0, 0, 0, -1))
    return midnight, month


def _pairs(db: sqlite3.Connection, where: str, params: tuple) -> list[tuple]:
    """(model, tokens of SUMMED..., reported cost or None) per (session, model) pair."""
    return db.execute(_PAIRS.format(where=where), params * 2).fetchall()


def _since(db: sqlite3.Connection, start: float) -> list[tuple]:
    """The same rows for the sessions started since `start`: from migration m002's hourly
    summaries when `start` is on an hour (a month of sessions is thousands of pairs, its
    hours a few thousand rows), else pair by pair."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(usage_hourly)")}
    if start % HOUR or not columns:
        return _pairs(db, "s.started_at >= ?", (start,))
    unreported = ", ".join(f"SUM(h.u_{t})" if f"u_{t}" in columns else "0" for t in SUMMED)
    rows = db.execute(f"SELECT h.model, SUM(h.cost_reported), SUM(h.cost_pairs), "
                      f"SUM(h.pairs), {unreported} FROM usage_hourly h WHERE h.hour >= ? "
                      "GROUP BY h.model", (int(start) // HOUR,))
    found: list[tuple] = []
    for model, reported, n_reported, pairs, *tokens in rows:
        if n_reported:
            found.append((model, *(0,) * len(SUMMED), reported))
        if pairs > n_reported:  # pairs without a reported cost: their tokens, to estimate
            found.append((model, *tokens, None))
    return found


def _sum(pairs: list[tuple], rates: dict[str, dict | None]) -> Sum:
    total = Sum()
    for model, *tokens, reported in pairs:
        if reported is not None:
            total.usd += reported
            continue
        rate = rates.get(model)
        if rate is None:
            total.partial = True
            continue
        long = rate.get("long")
        price = SimpleNamespace(**{**rate, "long": long and SimpleNamespace(**long)})
        total.usd += costs.estimate(dict(zip(SUMMED, tokens, strict=True)), price)
    return total


# ---------------------------------------------------------------- the cache


def _stamp(where) -> list:
    """What the cached budget and rates depend on, cheap to read."""
    stamp: list = [__version__, os.environ.get("AITRACK_MANAGED_PROFILE")]
    for path in (where.user_profile, where.managed_profile, where.managed_plist):
        try:
            st = os.stat(path) if path is not None else None
            stamp.append(None if st is None else [st.st_mtime_ns, st.st_size])
        except OSError:
            stamp.append(None)
    return stamp


def _cache(where, models: set[str], now: float) -> dict:
    """The budget and each model's rates; rebuilt when stale or a model is new to it."""
    path = where.cache_dir / CACHE
    stamp = _stamp(where)
    try:
        with open(path, encoding="utf-8") as fh:
            cache = json.load(fh)
        if (cache.get("stamp") == stamp and now - cache.get("made", 0) < REFRESH_S
                and models <= cache["rates"].keys()):
            return cache
        known = set(cache.get("rates", {}))
    except (OSError, ValueError, KeyError, AttributeError):
        known = set()
    return _rebuild(where, path, stamp, models | known, now)


def _rebuild(where, path, stamp: list, models: set[str], now: float) -> dict:
    """From the profiles and the price table: the slow path (~30 ms of imports)."""
    from aitrack.config import profile as profiles  # lazy: only when the cache is stale
    from aitrack.config.private_files import write_private  # lazy: as above
    from aitrack.domain import pricing  # lazy: as above

    loaded = profiles.load(where)
    table = pricing.load(loaded.prices)
    rates: dict[str, dict | None] = {}
    for model in sorted(models):
        price = table.price_for(model)
        rates[model] = None if price is None else {
            **_rates(price), "long": None if price.long is None else {
                **_rates(price.long), "above": price.long.above}}
    cache = {"made": now, "stamp": stamp,
             "budget": {k: v for k, v in loaded.budget.__dict__.items() if v},
             "rates": rates}
    try:
        write_private(path, json.dumps(cache).encode("utf-8"))
    except OSError:
        pass  # a read-only cache folder: figures still right, just slower
    return cache


def _rates(price) -> dict[str, float]:
    return {k: getattr(price, k) for k in ("input", "output", "cache_read", "cache_write_5m",
                                           "cache_write_1h")}
