"""What a report says beside its figures: the names models were requested under, and what a
session's sources could not show.

- The ledger counts usage under the model that answered. Where a tool asked for another
  name (an alias answered with a dated id, a gateway renaming models), the names learnt
  from requests that carried both (model_aliases, migration m007) are shown beside it.
- A session known only from files that miss some requests (the Codex TUI's title requests
  are in no file Codex keeps) says so (session_notes), unless a source that has them saw it.
Ledgers from before m007 have neither table: nothing to say.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from aitrack.store.ledger import in_chunks


def _has(db: sqlite3.Connection, table: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                      (table,)).fetchone() is not None


def requested_names(db: sqlite3.Connection, models: Iterable[str]) -> dict[str, list[str]]:
    """Per answered model among `models`, the names it was requested under (where any)."""
    wanted = sorted(set(models))
    if not wanted or not _has(db, "model_aliases"):
        return {}
    out: dict[str, list[str]] = {}
    for chunk, marks in in_chunks(wanted):
        for answered, requested in db.execute(
                f"SELECT DISTINCT answered, requested FROM model_aliases WHERE answered IN "
                f"({marks}) ORDER BY answered, requested", chunk):
            out.setdefault(answered, []).append(requested)
    return out


def session_notes(db: sqlite3.Connection, session_ids: Iterable[str]) -> dict[str, list[str]]:
    """Per session, the gaps its sources leave: those no source that fills them saw."""
    ids = list(session_ids)
    if not ids or not _has(db, "session_notes"):
        return {}
    out: dict[str, list[str]] = {}
    for chunk, marks in in_chunks(ids):
        for sid, note in db.execute(
                f"SELECT n.session_id, n.note FROM session_notes n JOIN sessions s "
                f"ON s.id = n.session_id WHERE n.session_id IN ({marks}) "
                f"AND NOT s.sources & n.unless_sources ORDER BY n.session_id, n.kind", chunk):
            out.setdefault(sid, []).append(note)
    return out
