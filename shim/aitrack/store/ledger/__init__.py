"""The local SQLite ledger: sessions, their usage, the runs that ran them, and (next to it)
the outbox.

Its parts, by concern: `connection` (opening it, write transactions), `runs` (wrapper runs),
`sessions` (one ledger session per tool session), `requests` (each billed request once,
whichever sources saw it), `figures` (session totals and other figures a source states),
`record` and `settle` (the figure of record: requests plus what totals add, and writing it),
`payloads` (received telemetry: counted and queued at once) and `transcripts` (the import's
merge). The schema is `store.migrations`. What other layers use is named here.
"""

from __future__ import annotations

from aitrack.store.ledger.connection import (
    BUSY_TIMEOUT_MS,
    Connection,
    connect,
    in_chunks,
    open_readonly,
    write,
)
from aitrack.store.ledger.figures import add
from aitrack.store.ledger.payloads import Accepted, Adapter, LogRecord, accept
from aitrack.store.ledger.runs import (
    SOURCE_NAMES,
    TELEMETRY,
    TRANSCRIPT,
    WRAPPER,
    Run,
    forget_run_end,
    note_run_end,
    pending_run_ends,
    start_run,
)
from aitrack.store.ledger.sessions import SessionStart, end_run, session_for, start_session
from aitrack.store.ledger.settle import settle_sessions
from aitrack.store.ledger.transcripts import record_transcript, record_transcripts

__all__ = [
    "BUSY_TIMEOUT_MS", "SOURCE_NAMES", "TELEMETRY", "TRANSCRIPT", "WRAPPER", "Accepted",
    "Adapter", "Connection", "LogRecord", "Run", "SessionStart", "accept", "add", "connect",
    "end_run", "forget_run_end", "in_chunks", "note_run_end", "open_readonly", "pending_run_ends",
    "record_transcript", "record_transcripts", "session_for", "settle_sessions", "start_run",
    "start_session", "write",
]
