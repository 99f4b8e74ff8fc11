"""What a source adds to a session besides its requests: session totals, other figures.

- Token figures and cost that a source states for a whole session (Claude Code's metrics, a
  generic tool's GenAI metrics) are that source's session totals: a floor under the
  session's requests (record.py), never added to them.
- Other figures (lines, commits, pull requests, active time) are kept per source; the
  figure of record is the largest source's (telemetry and git count the same commits).
- Tool decisions add up.
"""

from __future__ import annotations

import sqlite3

from aitrack.domain.records import Contribution
from aitrack.store.ledger.record import COST
from aitrack.store.ledger.settle import settle_sessions


def add(db: sqlite3.Connection, session_id: str, c: Contribution, source: str,
        settle: bool = True) -> None:
    """Add to one source's figure of a session; `settle`: write the session's figures of
    record now (a caller adding many at once settles once, at the end)."""
    if c.kind == "decision":
        db.execute("INSERT INTO tool_decisions VALUES (?, ?, ?, ?) ON CONFLICT "
                   "(session_id, tool_name, decision) DO UPDATE SET count = count + excluded.count",
                   (session_id, c.model, c.name, round(c.value)))
        return
    if is_total(c):
        db.execute("INSERT INTO session_totals VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id, "
                   "source, model, name) DO UPDATE SET value = value + excluded.value",
                   (session_id, source, c.model, c.name, c.value))
        if settle:
            settle_sessions(db, [session_id])
        return
    db.execute("INSERT INTO source_figures VALUES (?, ?, ?, ?, ?) ON CONFLICT "
               "(session_id, model, name, source) DO UPDATE SET value = value + excluded.value",
               (session_id, c.model, c.name, source, c.value))
    best = db.execute("SELECT MAX(value) FROM source_figures WHERE session_id = ? AND model = ? "
                      "AND name = ?", (session_id, c.model, c.name)).fetchone()[0]
    db.execute("INSERT INTO session_metrics VALUES (?, ?, ?, ?) ON CONFLICT "
               "(session_id, model, name) DO UPDATE SET value = excluded.value "
               "WHERE value != excluded.value", (session_id, c.model, c.name, best))


def is_total(c: Contribution) -> bool:
    """Whether a contribution adds to a session total (tokens, cost) rather than to a figure
    of its own."""
    return c.kind == "tokens" or (c.kind == "metric" and c.name == COST)


def set_totals(db: sqlite3.Connection, source: str,
               totals: list[tuple[str, str, str, float]]) -> None:
    """Replace one source's session totals (session id, model, name, value) where they grew;
    never lower them (a transcript compacted shorter)."""
    db.executemany("INSERT INTO session_totals VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id, "
                   "source, model, name) DO UPDATE SET value = MAX(value, excluded.value)",
                   [(sid, source, model, name, value) for sid, model, name, value in totals])


def set_figures(db: sqlite3.Connection, source: str,
                figures: list[tuple[str, str, str, float]]) -> None:
    """Replace one source's other figures (session id, model, name, value) where they grew,
    and write the largest source's of each as the figure of record."""
    if not figures:
        return
    db.executemany("INSERT INTO source_figures VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                   "(session_id, model, name, source) DO UPDATE SET "
                   "value = MAX(value, excluded.value)",
                   [(sid, model, name, source, value) for sid, model, name, value in figures])
    db.executemany("INSERT INTO session_metrics SELECT session_id, model, name, MAX(value) "
                   "FROM source_figures WHERE session_id = ? AND model = ? AND name = ? "
                   "GROUP BY session_id, model, name ON CONFLICT (session_id, model, name) "
                   "DO UPDATE SET value = excluded.value WHERE value != excluded.value",
                   [(sid, model, name) for sid, model, name, _ in figures])


def set_many(db: sqlite3.Connection, source: str,
             figures: list[tuple[str, str, str, float]]) -> None:
    """Replace one source's own figures (session id, model, name, value) where they grew;
    never lower them: what was counted stays counted (a transcript compacted shorter). They
    are kept beside the figures of record, which settle.py writes."""
    if figures:
        db.executemany("INSERT INTO source_figures VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                       "(session_id, model, name, source) DO UPDATE SET "
                       "value = MAX(value, excluded.value)",
                       [(sid, model, name, source, value) for sid, model, name, value in figures])
