"""Sessions' figures from the tools' transcripts, merged with what telemetry said."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from aitrack.domain.records import TranscriptSession
from aitrack.store.ledger.figures import set_figures, set_many, set_totals
from aitrack.store.ledger.record import COST, TOTALLED, split
from aitrack.store.ledger.requests import Response, copy_responses, per_request
from aitrack.store.ledger.runs import TELEMETRY, TRANSCRIPT
from aitrack.store.ledger.sessions import known_sessions
from aitrack.store.ledger.settle import Known, learn, settle_sessions

# a session's transcript responses new or grown in this batch (for a session counted by
# request): (tool, tool session id) -> its responses
Responses = Callable[[str, str], list[Response]]


def record_transcript(db: sqlite3.Connection, t: TranscriptSession,
                      attributes: dict[str, str]) -> tuple[str, bool]:
    """Merge one session's transcript figures; its ledger id, and whether it is new."""
    return record_transcripts(db, [t], attributes)[0]


def record_transcripts(db: sqlite3.Connection, batch: list[TranscriptSession],
                       attributes: dict[str, str], responses: Responses | None = None
                       ) -> list[tuple[str, bool]]:
    """Merge sessions' transcript figures (each session once); each one's ledger id, and
    whether it is new.

    Inside the caller's write transaction. An import merges thousands of sessions at once,
    so this takes them in a few statements, not several per session. A session's requests
    count once whichever sources saw them: for a session telemetry reported request by
    request, the transcript's responses of this batch (`responses`) meet its rows in
    `requests`; for the others the transcript's sums are its requests. Its cost-state's
    totals are a floor under them (store/ledger/record.py).
    """
    stated = {id(t): split(t.totals) for t in batch}  # totals, and the tool's other figures
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
                                 for m, types in t.usage.items() for k, v in types.items()])
    set_figures(db, "transcript", [(sid, m, k, v) for t, sid, _ in placed
                                   for m, names in stated[id(t)][1].items()
                                   for k, v in names.items()])
    learn(db, {(t.tool, r, a) for t in batch for a, r in t.requested.items()}, "request")
    notes = [(sid, kind, note, TELEMETRY) for t, sid, _ in placed for kind, note in
             t.notes.items()]
    if notes:
        db.executemany("INSERT INTO session_notes VALUES (?, ?, ?, ?) ON CONFLICT (session_id, "
                       "kind) DO UPDATE SET note = excluded.note", notes)
    by_request = per_request(db, [sid for _, sid, new in placed if not new])
    for t, sid, _ in placed:
        if sid not in by_request:
            continue
        if responses is not None:
            copy_responses(db, sid, responses(t.tool, t.tool_session_id))
        else:  # sums without their requests: they can only be a floor
            set_totals(db, "transcript", [(sid, m, k, v) for m, types in [
                *t.usage.items(), *stated[id(t)][0].items()] for k, v in types.items()
                if k in TOTALLED or k == COST])
    settle_sessions(db, [sid for _, sid, _ in placed],
                    known={sid: Known(t.usage, t.requested, stated[id(t)][0])
                           for t, sid, _ in placed
                           if sid not in by_request},
                    new={sid for _, sid, new in placed if new})
    return [(sid, new) for _, sid, new in placed]
