"""Wrapper runs: what only the wrapper knows about the tool sessions it ran."""

from __future__ import annotations

import json
import sqlite3

from aitrack.store.ledger.connection import write

# sessions.sources: how aitrack learnt of a session (bit flags)
TELEMETRY, TRANSCRIPT, WRAPPER = 1, 2, 4
SOURCE_NAMES = {TELEMETRY: "telemetry", TRANSCRIPT: "transcript", WRAPPER: "wrapper"}


class Run:
    """One wrapper invocation: what only the wrapper knows about the tool's sessions."""

    __slots__ = ("id", "tool", "started_at", "cwd", "project", "attributes", "mode")

    def __init__(self, id: str, tool: str, started_at: float, cwd: str | None,
                 project: str | None, attributes: dict[str, str], mode: str):
        self.id = id
        self.tool = tool
        self.started_at = started_at
        self.cwd = cwd
        self.project = project
        self.attributes = attributes
        self.mode = mode  # agent | receiver | transcript: how its telemetry is captured


def start_run(db: sqlite3.Connection, run: Run) -> None:
    """Record a run's start (once: told again, nothing changes)."""
    with write(db):
        _insert_run(db, run)


def _insert_run(db: sqlite3.Connection, run: Run) -> None:
    db.execute("INSERT OR IGNORE INTO runs (id, tool, started_at, cwd, project, attributes, "
               "mode) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (run.id, run.tool, run.started_at, run.cwd, run.project,
                json.dumps(run.attributes, sort_keys=True), run.mode))


def note_run_end(db: sqlite3.Connection, run: Run, ended_at: float, exit_code: int,
                 account: str) -> None:
    """A run's end, durably, before it is linked to its sessions (the agent answers the
    wrapper at once, then links): `account` keeps what linking needs, as JSON. The run's
    start is recorded too if it was not (one transaction: one write to disk)."""
    with write(db):
        _insert_run(db, run)
        db.execute("UPDATE runs SET ended_at = ?, exit_code = ?, pending_end = ? WHERE id = ?",
                   (ended_at, exit_code, account, run.id))
        apply_run_end(db, run.id)


def pending_run_ends(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """(run id, account) of the ends noted and not linked yet."""
    return db.execute("SELECT id, pending_end FROM runs WHERE pending_end IS NOT NULL "
                      "ORDER BY ended_at").fetchall()


def forget_run_end(db: sqlite3.Connection, run_id: str) -> None:
    """Stop trying to link a run's end (its account cannot be read)."""
    with write(db):
        db.execute("UPDATE runs SET pending_end = NULL WHERE id = ?", (run_id,))


def load_run(db: sqlite3.Connection, run_id: str | None) -> Run | None:
    if not run_id:
        return None
    row = db.execute("SELECT id, tool, started_at, cwd, project, attributes, mode FROM runs "
                     "WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return None
    return Run(*row[:5], json.loads(row[5] or "{}"), row[6])


def apply_run_end(db: sqlite3.Connection, run_id: str) -> None:
    """Copy an ended run's exit status and end onto the sessions it ran."""
    db.execute(
        "UPDATE sessions SET exit_code = r.exit_code, "
        "ended_at = MAX(COALESCE(sessions.ended_at, 0), r.ended_at), "
        "sources = sources | ?, cwd = COALESCE(sessions.cwd, r.cwd), "
        "project = COALESCE(sessions.project, r.project) "
        "FROM runs r WHERE r.id = ? AND r.ended_at IS NOT NULL AND sessions.run_id = r.id",
        (WRAPPER, run_id))
