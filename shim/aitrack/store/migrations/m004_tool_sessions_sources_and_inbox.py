"""m004: sessions by the tool's own id from several sources, runs, the inbox, tool decisions
(shipped: never edit)."""

from __future__ import annotations

import sqlite3

from aitrack.store.migrations.script import run_script
from aitrack.store.migrations.summaries import PRICED, TOKENS, hourly_schema

# m004's token types for the summaries: m002's plus the subsets of tokens.py, for pricing.
_SUBSETS = ("cache_creation_1h", "long_input", "long_output", "long_cache_read",
            "long_cache_creation", "long_cache_creation_1h")
_USAGE_TRIGGERS = ("usage_daily_insert", "usage_daily_update", "usage_hourly_insert",
                   "usage_hourly_update", "usage_hourly_cost_insert")


def m004_tool_sessions_sources_and_inbox(db: sqlite3.Connection) -> None:
    """Sessions by the tool's own id, from several sources; runs; the inbox; tool decisions.

    - A session is now the tool's session (Claude `session.id`, Codex thread id), whichever way
      aitrack saw it: a wrapper run, the per-user agent, or the tool's transcripts. `sources`
      holds bit flags (1 telemetry, 2 transcript, 4 wrapper); `run_id` the wrapper run that ran
      it last; `entrypoint` where it ran (cli, sdk-cli, claude-vscode, codex_exec...). Earlier
      sessions were wrapper runs with telemetry; their single tool id moves into the row.
    - `runs`: one row per wrapper invocation, with what only the wrapper knows.
    - `source_figures`: each source's own figure per (session, model, token type or metric);
      `usage` and `session_metrics` keep the figure of record, the largest of them.
    - `inbox`: payloads acknowledged to the tool and not yet ledgered (receivers only spool).
    - `tool_decisions`: accepted and rejected tool uses.
    - The summaries gain the token subsets (1-hour cache writes, long-context parts) so that
      reports can price them.
    """
    run_script(
        db,
        """
        ALTER TABLE sessions ADD COLUMN tool_session_id TEXT;
        ALTER TABLE sessions ADD COLUMN run_id TEXT;
        ALTER TABLE sessions ADD COLUMN entrypoint TEXT;
        ALTER TABLE sessions ADD COLUMN sources INTEGER NOT NULL DEFAULT 0;
        UPDATE sessions SET sources = 5, run_id = id;
        UPDATE sessions SET tool_session_id = (
            SELECT MIN(t.tool_session_id) FROM tool_sessions t WHERE t.session_id = sessions.id)
        WHERE (SELECT COUNT(*) FROM tool_sessions t WHERE t.session_id = sessions.id) = 1
          AND NOT EXISTS (
            SELECT 1 FROM tool_sessions t JOIN tool_sessions o
                ON o.tool_session_id = t.tool_session_id AND o.session_id != t.session_id
            JOIN sessions e ON e.id = o.session_id AND e.tool = sessions.tool
                AND (e.started_at, e.id) < (sessions.started_at, sessions.id)
            WHERE t.session_id = sessions.id);
        CREATE UNIQUE INDEX sessions_tool_session ON sessions (tool, tool_session_id)
            WHERE tool_session_id IS NOT NULL;
        CREATE INDEX sessions_run ON sessions (run_id) WHERE run_id IS NOT NULL;

        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            tool TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            exit_code INTEGER,
            cwd TEXT,
            project TEXT,
            attributes TEXT NOT NULL DEFAULT '{}',
            mode TEXT NOT NULL,             -- agent | receiver | transcript
            pending_end TEXT                -- the wrapper's account of the end (JSON), until
                                            -- the agent has linked the run to its sessions
        );
        INSERT INTO runs SELECT id, tool, started_at, ended_at, exit_code, cwd, project,
                                attributes, 'receiver', NULL FROM sessions;

        CREATE TABLE source_figures (
            session_id TEXT NOT NULL REFERENCES sessions (id),
            model TEXT NOT NULL,
            name TEXT NOT NULL,             -- a token type, or a metric such as cost_usd
            source TEXT NOT NULL,           -- telemetry | transcript | git
            value REAL NOT NULL,
            PRIMARY KEY (session_id, model, name, source)
        ) WITHOUT ROWID;
        INSERT INTO source_figures SELECT session_id, model, token_type, 'telemetry', tokens
                                   FROM usage;
        INSERT INTO source_figures SELECT session_id, model, name, 'telemetry', value
                                   FROM session_metrics;

        CREATE TABLE inbox (
            id INTEGER PRIMARY KEY,
            received_at REAL NOT NULL,
            receiver TEXT NOT NULL,         -- 'agent', or the run id of a per-run receiver
            run_id TEXT,                    -- the wrapper run the sender belongs to, if known
            signal TEXT NOT NULL,
            content_type TEXT NOT NULL,
            body BLOB NOT NULL,             -- decompressed, as the sender's content type
            attempts INTEGER NOT NULL DEFAULT 0,
            claimed_by TEXT,
            claimed_until REAL NOT NULL DEFAULT 0,
            failed TEXT                     -- why it could not be ledgered (kept, not retried)
        );

        CREATE TABLE tool_decisions (
            session_id TEXT NOT NULL REFERENCES sessions (id),
            tool_name TEXT NOT NULL,
            decision TEXT NOT NULL,         -- accept | reject
            count INTEGER NOT NULL,
            PRIMARY KEY (session_id, tool_name, decision)
        ) WITHOUT ROWID
        """
    )
    for table in ("usage_hourly", "usage_daily"):
        for name in (*_SUBSETS, *(f"u_{t}" for t in ("cache_creation_1h", *_SUBSETS[1:]))):
            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0")
    for trigger in _USAGE_TRIGGERS:
        db.execute(f"DROP TRIGGER {trigger}")
    wanted = tuple(f"CREATE TRIGGER {t} " for t in _USAGE_TRIGGERS)
    for statement in hourly_schema((*TOKENS, *_SUBSETS), (*PRICED, *_SUBSETS)):
        if statement.strip().startswith(wanted):
            db.execute(statement)
