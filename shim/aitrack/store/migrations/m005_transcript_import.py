"""m005: what `aitrack import` has read of the tools' transcripts (shipped: never edit)."""

from __future__ import annotations

import sqlite3

from aitrack.store.migrations.script import run_script


def m005_transcript_import(db: sqlite3.Connection) -> None:
    """What `aitrack import` has read of the tools' transcripts, so the next import reads on.

    - `transcript_files`: per file, the byte offset after the last complete line read and the
      file's identity then (device, inode, size, mtime, a hash of its first bytes): an
      unchanged file is not opened, an appended one is read from the offset, a rewritten one
      (compaction) from the start.
    - `transcript_sessions`: per tool session, what its transcripts said so far (start, end,
      cwd, entrypoint, version) and the adapter's reading state (Codex: the cumulative total
      and model; Claude: its cost-state), and its transcript figures: the sums of its rows
      below, kept as they change.
    - `transcript_responses`: every API response counted, once, under a hash of its identity
      (Claude: message id; Codex: response id or cumulative total), with the figures of its
      largest line in ledger token types. Rows are never deleted and a row's figures only
      grow, so what was imported stays imported.
    - An index on `tool_sessions (tool_session_id)`, which `ledger.session_for` searches.
    """
    run_script(
        db,
        """
        CREATE TABLE transcript_files (
            path TEXT PRIMARY KEY,
            tool TEXT NOT NULL,
            device INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            offset INTEGER NOT NULL,        -- bytes read: the end of the last complete line
            head INTEGER NOT NULL,          -- hash of the first min(offset, 4096) bytes
            context TEXT NOT NULL DEFAULT '{}'
        ) WITHOUT ROWID;

        CREATE TABLE transcript_sessions (
            id INTEGER PRIMARY KEY,
            tool TEXT NOT NULL,
            tool_session_id TEXT NOT NULL,
            started_at REAL,
            ended_at REAL,
            cwd TEXT,
            entrypoint TEXT,
            tool_version TEXT,
            state TEXT NOT NULL DEFAULT '{}',
            usage TEXT NOT NULL DEFAULT '{}',   -- model -> token type -> sum of its responses
            UNIQUE (tool, tool_session_id)
        );

        CREATE TABLE transcript_responses (
            key INTEGER PRIMARY KEY,        -- 64-bit hash of the response's identity
            rid INTEGER NOT NULL,           -- CRC-32 of Claude's request id + 1, 0 if none
            session INTEGER NOT NULL,       -- transcript_sessions.id
            model TEXT NOT NULL,
            input INTEGER NOT NULL,
            output INTEGER NOT NULL,
            cache_read INTEGER NOT NULL,
            cache_creation INTEGER NOT NULL,
            cache_creation_1h INTEGER NOT NULL,
            reasoning INTEGER NOT NULL,
            long INTEGER NOT NULL,          -- 1: a long-context request (priced at its tier)
            side INTEGER NOT NULL           -- 1: seen only on a sidechain (a subagent's line)
        ) WITHOUT ROWID;

        -- ledger.session_for looks sessions up by the tool's id here too (ledgers from
        -- before m004): unindexed, a first import of thousands of sessions went quadratic
        CREATE INDEX tool_sessions_tool_session_id ON tool_sessions (tool_session_id)
        """
    )
