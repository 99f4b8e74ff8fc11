"""m006: what aitrack has sent of its own metrics (shipped: never edit)."""

from __future__ import annotations

import sqlite3

from aitrack.store.migrations.script import run_script

# m006: the figures aitrack's own metric family sends (egress/normalized.py)
_EMITTED_TOKENS = ("input", "output", "cache_read", "cache_creation", "reasoning")


def m006_normalized_emission(db: sqlite3.Connection) -> None:
    """What aitrack has sent of its own metrics, so that each session's figures go once.

    - `emitted`: per (session, model, name) the figure of record as last sent: a token type,
      `cost_usd`, or (model '') `session.count` = 1 once the session was counted. Only the
      increase of the ledger's figure over it is ever sent, in the transaction that raises it.
    - `emission_due`: sessions to look at: new, or whose usage or reported cost changed since
      (triggers on sessions, usage and session_metrics keep it). A session leaves it once its
      figures are sent and it has been counted.
    - `emission_state`: `instance_id` (the ledger's service.instance.id) and `last_ns` (the end
      of the last interval sent: delta intervals follow one another).
    Everything the ledger held before this migration counts as sent: history is never sent
    again stamped with today's date. A missing `cost_usd` row for a pair whose tokens were
    sent means the cost of those tokens was sent (see egress/normalized.py).
    """
    types = ", ".join(f"'{t}'" for t in _EMITTED_TOKENS)
    run_script(
        db,
        f"""
        CREATE TABLE emitted (
            session_id TEXT NOT NULL,
            model TEXT NOT NULL,
            name TEXT NOT NULL,             -- a token type, cost_usd, or session.count
            value REAL NOT NULL,
            PRIMARY KEY (session_id, model, name)
        ) WITHOUT ROWID;
        CREATE TABLE emission_due (session_id TEXT PRIMARY KEY) WITHOUT ROWID;
        CREATE TABLE emission_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

        INSERT INTO emitted SELECT session_id, model, token_type, tokens FROM usage
            WHERE token_type IN ({types});
        INSERT INTO emitted SELECT session_id, model, name, value FROM session_metrics
            WHERE name = 'cost_usd';
        INSERT INTO emitted SELECT id, '', 'session.count', 1 FROM sessions
        """
    )
    # One statement each: _run() splits on semicolons, which trigger bodies contain. Not
    # INSERT OR IGNORE: inside a trigger the outer statement's conflict policy wins, and the
    # ledger's upserts would then fail on a session already due.
    due = ("INSERT INTO emission_due SELECT NEW.{0} WHERE NOT EXISTS "
           "(SELECT 1 FROM emission_due WHERE session_id = NEW.{0})")
    for name, event, when, column in (
            ("session", "INSERT ON sessions", "", "id"),
            ("usage_insert", "INSERT ON usage", "", "session_id"),
            ("usage_update", "UPDATE OF tokens ON usage", "", "session_id"),
            ("cost_insert", "INSERT ON session_metrics", "WHEN NEW.name = 'cost_usd'",
             "session_id"),
            ("cost_update", "UPDATE OF value ON session_metrics", "WHEN NEW.name = 'cost_usd'",
             "session_id")):
        db.execute(f"CREATE TRIGGER emission_due_{name} AFTER {event} {when} BEGIN "
                   f"{due.format(column)}; END")
    import uuid  # here: it imports `platform`, ~2 ms on every ledger open for a one-time id

    db.execute("INSERT INTO emission_state VALUES ('instance_id', ?)", (str(uuid.uuid4()),))
