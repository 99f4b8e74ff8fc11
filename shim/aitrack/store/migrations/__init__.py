"""The ledger's schema, as numbered migrations recorded in the database.

One module per migration, named as its function (the name recorded in `schema_migrations`).
Add a migration by adding a module and appending its function to MIGRATIONS; never edit one
that has shipped: ledgers out there record it as applied.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from aitrack.store.migrations.m001_ledger_and_outbox import m001_ledger_and_outbox
from aitrack.store.migrations.m002_hourly_summaries import m002_hourly_summaries
from aitrack.store.migrations.m003_outbox_delivery import m003_outbox_delivery
from aitrack.store.migrations.m004_tool_sessions_sources_and_inbox import (
    m004_tool_sessions_sources_and_inbox,
)
from aitrack.store.migrations.m005_transcript_import import m005_transcript_import
from aitrack.store.migrations.m006_normalized_emission import m006_normalized_emission
from aitrack.store.migrations.m007_requests import m007_requests

MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    m001_ledger_and_outbox,
    m002_hourly_summaries,
    m003_outbox_delivery,
    m004_tool_sessions_sources_and_inbox,
    m005_transcript_import,
    m006_normalized_emission,
    m007_requests,
]


def migrate(db: sqlite3.Connection) -> int:
    """Apply pending migrations; returns the schema version."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
               "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
    done = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
    if len(done) >= len(MIGRATIONS):
        return len(MIGRATIONS)
    db.execute("BEGIN IMMEDIATE")
    try:
        done = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
        for version, fn in enumerate(MIGRATIONS, 1):
            if version not in done:
                fn(db)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                           (version, fn.__name__, time.time()))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)
