"""Sessions' figures from the tools' transcripts, merged with what telemetry said."""

from __future__ import annotations

import json
import sqlite3

from aitrack.domain.records import TranscriptSession
from aitrack.store.ledger.figures import set_many
from aitrack.store.ledger.runs import TRANSCRIPT
from aitrack.store.ledger.sessions import known_sessions


def record_transcript(db: sqlite3.Connection, t: TranscriptSession,
                      attributes: dict[str, str]) -> tuple[str, bool]:
    """Merge one session's transcript figures; its ledger id, and whether it is new."""
    return record_transcripts(db, [t], attributes)[0]


def record_transcripts(db: sqlite3.Connection, batch: list[TranscriptSession],
                       attributes: dict[str, str]) -> list[tuple[str, bool]]:
    """Merge sessions' transcript figures (each session once); each one's ledger id, and
    whether it is new.

    Inside the caller's write transaction. An import merges thousands of sessions at once,
    so this takes them in a few statements, not several per session. Per model and token
    type the larger of the transcript's and the telemetry's figure stands: each source can
    miss requests the other saw.
    """
    known: dict[tuple[str, str], str] = {}
    for tool in {t.tool for t in batch}:
        found = known_sessions(db, tool, [t.tool_session_id for t in batch if t.tool == tool])
        known.update(((tool, tsid), sid) for tsid, sid in found.items())
    placed = [(t, known.get(who) or f"{t.tool}:{t.tool_session_id}", who not in known)
              for t in batch for who in ((t.tool, t.tool_session_id),)]
    attrs = json.dumps(attributes, sort_keys=True)
    db.executemany(
        "INSERT INTO sessions (id, tool, started_at, ended_at, cwd, project, attributes, "
        "tool_session_id, entrypoint, tool_version, sources) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(sid, t.tool, t.started_at, t.ended_at, t.cwd, t.project, attrs, t.tool_session_id,
          t.entrypoint, t.tool_version, TRANSCRIPT) for t, sid, new in placed if new])
    db.executemany(
        "UPDATE sessions SET sources = sources | ?, entrypoint = COALESCE(entrypoint, ?), "
        "cwd = COALESCE(cwd, ?), project = COALESCE(project, ?), "
        "ended_at = MAX(COALESCE(ended_at, 0), ?), tool_version = COALESCE(tool_version, ?) "
        "WHERE id = ?",
        [(TRANSCRIPT, t.entrypoint, t.cwd, t.project, t.ended_at, t.tool_version, sid)
         for t, sid, new in placed if not new])
    db.executemany("INSERT OR IGNORE INTO tool_sessions VALUES (?, ?)",
                   [(sid, t.tool_session_id) for t, sid, _ in placed])
    set_many(db, "transcript", [(sid, m, k, v) for t, sid, _ in placed
                                 for m, types in t.usage.items() for k, v in types.items()],
              tokens=True)
    set_many(db, "transcript", [(sid, m, k, v) for t, sid, _ in placed
                                 for m, names in t.metrics.items() for k, v in names.items()],
              tokens=False)
    return [(sid, new) for _, sid, new in placed]
