"""m003: the forwarder's indexes and the eviction record (shipped: never edit)."""

from __future__ import annotations

import sqlite3

from aitrack.store.migrations.script import run_script


def m003_outbox_delivery(db: sqlite3.Connection) -> None:
    """Indexes that let the forwarder work without reading payloads, and an eviction record.

    In an outbox row the payload blob comes before the claim columns, so a query that
    filters on claimed_until or sums size from the table itself walks every payload's
    overflow pages. outbox_due covers the claim scan (and supersedes outbox_ready, its
    prefix), outbox_bytes covers the counts and the size bound's oldest-first order, and
    outbox_session finds one run's own rows. outbox_evicted keeps what the size bound
    removed, so `aitrack flush` and `aitrack doctor` can say so.
    """
    run_script(
        db,
        """
        DROP INDEX outbox_ready;
        CREATE INDEX outbox_due ON outbox
            (state, next_attempt_at, claimed_until, signal, created_at, size);
        CREATE INDEX outbox_bytes ON outbox (state, signal, created_at, size);
        CREATE INDEX outbox_session ON outbox (session_id, state);
        CREATE TABLE outbox_evicted (
            evicted_at REAL NOT NULL,
            state TEXT NOT NULL,
            signal TEXT NOT NULL,
            rows INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            oldest_created_at REAL NOT NULL,
            newest_created_at REAL NOT NULL
        );
        """
    )
