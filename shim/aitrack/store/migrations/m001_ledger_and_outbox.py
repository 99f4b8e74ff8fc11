"""m001: the first schema: sessions, their usage and metrics, and the outbox (shipped:
never edit)."""

from __future__ import annotations

import sqlite3

from aitrack.store.migrations.script import run_script


def m001_ledger_and_outbox(db: sqlite3.Connection) -> None:
    run_script(
        db,
        """
        -- one row per aitrack run, times in unix seconds (UTC)
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            tool TEXT NOT NULL,
            tool_version TEXT,
            started_at REAL NOT NULL,
            ended_at REAL,
            exit_code INTEGER,
            cwd TEXT,
            project TEXT,
            attributes TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX sessions_started_at ON sessions (started_at);
        CREATE INDEX sessions_project ON sessions (project);

        -- the tool's own session ids (claude: session.id on datapoints)
        CREATE TABLE tool_sessions (
            session_id TEXT NOT NULL REFERENCES sessions (id),
            tool_session_id TEXT NOT NULL,
            PRIMARY KEY (session_id, tool_session_id)
        ) WITHOUT ROWID;

        -- tokens per session, model and type (input, output, cache_read,
        -- cache_creation, reasoning), reasoning being part of output
        CREATE TABLE usage (
            session_id TEXT NOT NULL REFERENCES sessions (id),
            model TEXT NOT NULL,
            token_type TEXT NOT NULL,
            tokens INTEGER NOT NULL,
            PRIMARY KEY (session_id, model, token_type)
        ) WITHOUT ROWID;

        -- other figures the tool reports: cost_usd (per model), lines_added,
        -- lines_removed, commits, pull_requests, active_time_s (model '')
        CREATE TABLE session_metrics (
            session_id TEXT NOT NULL REFERENCES sessions (id),
            model TEXT NOT NULL,
            name TEXT NOT NULL,
            value REAL NOT NULL,
            PRIMARY KEY (session_id, model, name)
        ) WITHOUT ROWID;

        -- last value of each cumulative series, to turn it into deltas
        CREATE TABLE cumulative_series (
            session_id TEXT NOT NULL,
            series TEXT NOT NULL,
            start_time INTEGER NOT NULL,
            value REAL NOT NULL,
            PRIMARY KEY (session_id, series)
        ) WITHOUT ROWID;

        -- digests of accepted payloads, so the same bytes are counted once
        CREATE TABLE payloads (
            digest BLOB PRIMARY KEY,
            session_id TEXT NOT NULL,
            received_at REAL NOT NULL
        ) WITHOUT ROWID;

        -- payloads waiting for the org endpoint (protobuf, resource attributes enforced)
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL,
            signal TEXT NOT NULL,
            body BLOB NOT NULL,
            size INTEGER NOT NULL,
            created_at REAL NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',   -- pending | dead
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL DEFAULT 0,
            claimed_by TEXT,
            claimed_until REAL NOT NULL DEFAULT 0,
            last_error TEXT
        );
        CREATE INDEX outbox_ready ON outbox (state, next_attempt_at);
        """
    )
