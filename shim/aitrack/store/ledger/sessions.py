"""Ledger sessions: one per tool session, however aitrack learnt of it."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable

from aitrack.store.ledger.connection import in_chunks, write
from aitrack.store.ledger.runs import TELEMETRY, WRAPPER, Run, apply_run_end, load_run


class SessionStart:
    __slots__ = ("id", "tool", "started_at", "cwd", "project", "attributes")

    def __init__(self, id: str, tool: str, started_at: float, cwd: str | None,
                 project: str | None, attributes: dict[str, str]):
        self.id = id
        self.tool = tool
        self.started_at = started_at
        self.cwd = cwd
        self.project = project
        self.attributes = attributes


def start_session(db: sqlite3.Connection, s: SessionStart, sources: int = TELEMETRY) -> None:
    """A session row of its own, with no tool session id nor run (tests seed ledgers so)."""
    with write(db):
        db.execute(
            "INSERT INTO sessions (id, tool, started_at, cwd, project, attributes, sources) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (s.id, s.tool, s.started_at, s.cwd, s.project,
             json.dumps(s.attributes, sort_keys=True), sources),
        )


def session_for(db: sqlite3.Connection, tool: str, tool_session_id: str, *,
                run: Run | None = None, started_at: float | None = None,
                attributes: dict[str, str] | None = None, entrypoint: str | None = None,
                cwd: str | None = None, project: str | None = None,
                sources: int = 0) -> str:
    """The session of a tool's own session id, created if new; inside a write transaction.

    One tool session is one ledger session, however aitrack learns of it: a wrapper run, the
    agent, a transcript. A run's own row (a run that had not reported a tool session yet)
    becomes that session when the tool's id turns up.
    """
    known = known_sessions(db, tool, [tool_session_id]).get(tool_session_id)
    row = (known,) if known is not None else None
    if row is None and run is not None:
        row = db.execute("SELECT id FROM sessions WHERE id = ? AND tool_session_id IS NULL",
                         (run.id,)).fetchone()
        if row is not None:
            db.execute("UPDATE sessions SET tool_session_id = ? WHERE id = ?",
                       (tool_session_id, run.id))
    if row is None:
        sid = f"{tool}:{tool_session_id}"
        at = run.started_at if run is not None else started_at or time.time()
        db.execute(
            "INSERT INTO sessions (id, tool, started_at, cwd, project, attributes, "
            "tool_session_id, run_id, entrypoint, sources) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sid, tool, at, cwd or (run.cwd if run else None),
             project or (run.project if run else None),
             json.dumps(attributes if attributes is not None else run.attributes if run else {},
                        sort_keys=True),
             tool_session_id, run.id if run else None, entrypoint, sources))
    else:
        sid = row[0]
        db.execute(
            "UPDATE sessions SET sources = sources | ?, run_id = COALESCE(?, run_id), "
            "entrypoint = COALESCE(entrypoint, ?), cwd = COALESCE(cwd, ?), "
            "project = COALESCE(project, ?) WHERE id = ?",
            (sources, run.id if run else None, entrypoint, cwd or (run.cwd if run else None),
             project or (run.project if run else None), sid))
    db.execute("INSERT OR IGNORE INTO tool_sessions VALUES (?, ?)", (sid, tool_session_id))
    if run is not None:
        apply_run_end(db, run.id)
    return sid


def end_run(db: sqlite3.Connection, run_id: str, ended_at: float, exit_code: int,
            tool_session_ids: Iterable[str] = (), is_session: bool = True) -> list[str]:
    """Record the run's end on every session it ran; the ids of those sessions.

    `tool_session_ids`: the tool's sessions the run is known to have run (from its
    transcripts); sessions the telemetry linked to it are found by run_id. A run that ran
    no tool session at all is a session of its own (a failed start shows), unless
    `is_session` is false (`--version`).
    """
    with write(db):
        db.execute("UPDATE runs SET ended_at = ?, exit_code = ?, pending_end = NULL "
                   "WHERE id = ?", (ended_at, exit_code, run_id))
        run = load_run(db, run_id)
        if run is None:
            return []
        for tool_session_id in tool_session_ids:
            session_for(db, run.tool, tool_session_id, run=run)
        apply_run_end(db, run_id)
        ids = [r[0] for r in db.execute("SELECT id FROM sessions WHERE run_id = ?", (run_id,))]
        if not ids and is_session:
            db.execute(
                "INSERT INTO sessions (id, tool, started_at, ended_at, exit_code, cwd, project, "
                "attributes, run_id, sources) SELECT id, tool, started_at, ended_at, exit_code, "
                "cwd, project, attributes, id, ? FROM runs WHERE id = ?", (WRAPPER, run_id))
            ids = [run_id]
    return ids


def known_sessions(db: sqlite3.Connection, tool: str, tool_session_ids: list[str]
                    ) -> dict[str, str]:
    """The ledger sessions of these tool session ids that exist (tool session id -> id)."""
    found: dict[str, str] = {}
    for chunk, marks in in_chunks(tool_session_ids):
        found.update(db.execute(f"SELECT tool_session_id, id FROM sessions WHERE tool = ? "
                                f"AND tool_session_id IN ({marks})", (tool, *chunk)))
        missing = [tsid for tsid in chunk if tsid not in found]
        if missing:  # ledgers from before m004: a run linked through tool_sessions
            marks = ",".join("?" * len(missing))
            for tsid, sid in db.execute(
                    "SELECT t.tool_session_id, s.id FROM tool_sessions t JOIN sessions s "
                    f"ON s.id = t.session_id WHERE t.tool_session_id IN ({marks}) "
                    "AND s.tool = ? ORDER BY s.started_at DESC", (*missing, tool)):
                found[tsid] = sid  # the earliest session wins: it comes last
    return found
