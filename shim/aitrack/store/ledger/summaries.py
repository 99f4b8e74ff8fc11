"""The hourly and daily summaries computed at once from the rows, for a big import.

The summaries (usage_hourly, usage_daily, sessions_hourly, contrib_hourly; schema in
store/migrations: m002, m004, m007) follow every usage, cost and session row through
triggers, a few statements per row. A first import writes tens of thousands of rows:
there the triggers took 0.23 s of the 1.84 s a first import of bench/import.py's small
Claude tree cost in one process (12%). `deferred` drops them inside the caller's write
transaction, and computes the summaries from the rows at its end, triggers created again,
before the caller commits: what the triggers keep is a sum over the rows (m007: "the hourly
and daily sums equal to the rows"), so the two agree; the sums are computed over the whole
ledger, which is why a caller defers them only where the import writes most of it (an
empty ledger).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

TABLES = ("usage_hourly", "usage_daily", "sessions_hourly", "contrib_hourly")
CONTRIB = ("lines_added", "lines_removed", "commits", "pull_requests")
COST = "cost_usd"
_HOUR = "CAST(s.started_at AS INTEGER) / 3600"
_WRITES_A_SUMMARY = re.compile(rf"\b(INSERT\s+INTO|UPDATE)\s+({'|'.join(TABLES)})\b", re.I)


@contextmanager
def deferred(db: sqlite3.Connection) -> Iterator[None]:
    """Inside the caller's write transaction: the summaries' triggers dropped while the
    caller writes, then the summaries computed from the rows and the triggers created
    again. On an error nothing is put back: the caller rolls its transaction back (the
    triggers with it)."""
    triggers = [(name, sql) for name, sql in db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY rowid")
        if _WRITES_A_SUMMARY.search(sql)]
    for name, _ in triggers:
        db.execute(f'DROP TRIGGER "{name}"')
    yield
    compute(db)
    for _, sql in triggers:
        db.execute(sql)


def compute(db: sqlite3.Connection) -> None:
    """Every summary row again, from the ledger's rows."""
    for table in TABLES:
        db.execute(f"DELETE FROM {table}")
    db.execute(f"INSERT INTO sessions_hourly (hour, tool, sessions) "
               f"SELECT {_HOUR}, s.tool, COUNT(*) FROM sessions s GROUP BY 1, 2")
    names = ", ".join(f"'{n}'" for n in CONTRIB)
    db.execute(f"INSERT INTO contrib_hourly (hour, tool, {', '.join(CONTRIB)}) "
               f"SELECT {_HOUR}, s.tool, "
               f"{', '.join(f'TOTAL(CASE m.name WHEN {n!r} THEN m.value END)' for n in CONTRIB)} "
               f"FROM sessions s JOIN session_metrics m ON m.session_id = s.id "
               f"WHERE m.model = '' AND m.name IN ({names}) GROUP BY 1, 2")
    columns = [row[1] for row in db.execute("PRAGMA table_info(usage_hourly)")][3:]
    db.execute(f"INSERT INTO usage_hourly (hour, tool, model, {', '.join(columns)}) "
               f"SELECT {_HOUR}, s.tool, p.model, "
               f"{', '.join(_usage_sum(c) for c in columns)} "
               f"FROM ({_pairs(columns)}) AS p JOIN sessions s ON s.id = p.session_id "
               f"GROUP BY 1, 2, 3")
    db.execute(f"INSERT INTO usage_daily (day, tool, model, {', '.join(columns)}) "
               f"SELECT hour / 24, tool, model, {', '.join(f'SUM({c})' for c in columns)} "
               f"FROM usage_hourly GROUP BY 1, 2, 3")


def _types(columns: list[str]) -> list[str]:
    """The token types the summaries sum (a column each)."""
    return [c for c in columns if not c.startswith("u_") and c not in (
        "cost_reported", "cost_pairs", "pairs")]


def _pairs(columns: list[str]) -> str:
    """Each (session, model) with usage rows or a reported cost: its tokens by type and
    its cost (NULL: none reported)."""
    types = _types(columns)
    by_type = ", ".join(f"SUM(CASE u.token_type WHEN '{t}' THEN u.tokens ELSE 0 END) AS {t}"
                        for t in types)
    cost = (f"(SELECT c.value FROM session_metrics c WHERE c.session_id = u.session_id "
            f"AND c.model = u.model AND c.name = '{COST}')")
    return (f"SELECT u.session_id, u.model, {by_type}, {cost} AS cost FROM usage u "
            f"GROUP BY u.session_id, u.model "
            f"UNION ALL SELECT c.session_id, c.model, {', '.join('0' for _ in types)}, "
            f"c.value FROM session_metrics c WHERE c.name = '{COST}' AND NOT EXISTS ("
            f"SELECT 1 FROM usage u WHERE u.session_id = c.session_id AND u.model = c.model)")


def _usage_sum(column: str) -> str:
    """A usage_hourly column over an hour's pairs: tokens by type; the reported costs,
    how many pairs had one, how many pairs; the tokens of pairs without one (u_*)."""
    if column == "cost_reported":
        return "TOTAL(p.cost)"
    if column == "cost_pairs":
        return "COUNT(p.cost)"
    if column == "pairs":
        return "COUNT(*)"
    if column.startswith("u_"):
        return f"SUM(CASE WHEN p.cost IS NULL THEN p.{column[2:]} ELSE 0 END)"
    return f"SUM(p.{column})"
