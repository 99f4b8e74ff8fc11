"""Each source's figures of a session, and the figure of record: the largest source's."""

from __future__ import annotations

import sqlite3

from aitrack.domain.records import Contribution
from aitrack.store.ledger.connection import IN_LIMIT


def add(db: sqlite3.Connection, session_id: str, c: Contribution, source: str) -> None:
    """Add to one source's figure; the figure of record is the largest source's."""
    if c.kind == "decision":
        db.execute("INSERT INTO tool_decisions VALUES (?, ?, ?, ?) ON CONFLICT "
                   "(session_id, tool_name, decision) DO UPDATE SET count = count + excluded.count",
                   (session_id, c.model, c.name, round(c.value)))
        return
    db.execute("INSERT INTO source_figures VALUES (?, ?, ?, ?, ?) ON CONFLICT "
               "(session_id, model, name, source) DO UPDATE SET value = value + excluded.value",
               (session_id, c.model, c.name, source, c.value))
    _settle(db, session_id, c.model, c.name, c.kind == "tokens")


def set_many(db: sqlite3.Connection, source: str,
             figures: list[tuple[str, str, str, float]], tokens: bool) -> None:
    """Replace one source's figures (session id, model, name, value) where they grew; never
    lower them: what was counted stays counted (a transcript compacted shorter). Three
    statements per few hundred sessions, not three per figure."""
    if not figures:
        return
    db.executemany("INSERT INTO source_figures VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                   "(session_id, model, name, source) DO UPDATE SET "
                   "value = MAX(value, excluded.value)",
                   [(sid, model, name, source, value) for sid, model, name, value in figures])
    names = sorted({name for _, _, name, _ in figures})
    sessions = list(dict.fromkeys(sid for sid, _, _, _ in figures))
    for i in range(0, len(sessions), IN_LIMIT):
        chunk = sessions[i:i + IN_LIMIT]
        where = (f"session_id IN ({','.join('?' * len(chunk))}) "
                 f"AND name IN ({','.join('?' * len(names))})")
        if tokens:
            db.execute("INSERT INTO usage SELECT session_id, model, name, "
                       f"CAST(ROUND(MAX(value)) AS INTEGER) FROM source_figures WHERE {where} "
                       "GROUP BY session_id, model, name "
                       "ON CONFLICT (session_id, model, token_type) DO UPDATE SET "
                       "tokens = excluded.tokens WHERE tokens != excluded.tokens",
                       (*chunk, *names))
        else:
            db.execute("INSERT INTO session_metrics SELECT session_id, model, name, MAX(value) "
                       f"FROM source_figures WHERE {where} GROUP BY session_id, model, name "
                       "ON CONFLICT (session_id, model, name) DO UPDATE SET "
                       "value = excluded.value WHERE value != excluded.value",
                       (*chunk, *names))


def _settle(db: sqlite3.Connection, session_id: str, model: str, name: str,
            tokens: bool) -> None:
    best = db.execute("SELECT MAX(value) FROM source_figures WHERE session_id = ? AND model = ? "
                      "AND name = ?", (session_id, model, name)).fetchone()[0]
    if tokens:
        db.execute("INSERT INTO usage VALUES (?, ?, ?, ?) ON CONFLICT "
                   "(session_id, model, token_type) DO UPDATE SET tokens = excluded.tokens "
                   "WHERE tokens != excluded.tokens",
                   (session_id, model, name, round(best)))
    else:
        db.execute("INSERT INTO session_metrics VALUES (?, ?, ?, ?) ON CONFLICT "
                   "(session_id, model, name) DO UPDATE SET value = excluded.value "
                   "WHERE value != excluded.value",
                   (session_id, model, name, best))
