"""A run's end linked to what it did, in the ledger: its sessions and its commits.

The run finds the tool sessions it ran from their transcripts (each adapter's `locate`),
ends them with its status, and for a tool that reports no contribution figures, counts the
commits made meanwhile from git. The wrapper does this itself, or the agent does it for a
wrapper that told it the run's end (runs.RunEnd).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from aitrack import adapters
from aitrack.capture import commits
from aitrack.capture.runs import RunEnd
from aitrack.domain.records import Contribution
from aitrack.store import ledger


def transcripts(run: RunEnd) -> list[tuple[str, Path]]:
    """(tool session id, transcript) of the sessions the run ran, as its files tell."""
    locate = adapters.part(run.tool if run.tool in adapters.TOOLS else "generic", "locate")
    if locate is None:  # a tool without transcripts of its own
        return []
    return locate.run_sessions(run.cwd, run.started, run.ended, run.env or None)


def end(db: sqlite3.Connection, run: RunEnd,
        found: list[tuple[str, Path]] | None = None) -> list[str]:
    """Record the run's end on its sessions (the ids); `found`: its transcripts, if known."""
    if found is None:
        found = transcripts(run)
    return ledger.end_run(db, run.id, run.ended, run.exit_code, [tsid for tsid, _ in found],
                          is_session=run.is_session)


def count_commits(db: sqlite3.Connection, run: RunEnd, session_ids: list[str],
                  timeout_s: float) -> None:
    """The commits made during the run, from git, for a tool that reports none: counted for
    the run's session with the most tokens (its main one), source "git"."""
    if run.git_start is None or not session_ids:
        return
    made = commits.made_since(run.git_start, timeout_s)
    if made is None or not made.figures():
        return
    main = max(session_ids, key=lambda sid: (db.execute(
        "SELECT TOTAL(tokens) FROM usage WHERE session_id = ? AND token_type IN "
        "('input', 'output', 'cache_read', 'cache_creation')", (sid,)).fetchone()[0], sid))
    with ledger.write(db):
        for name, value in made.figures().items():
            ledger.add(db, main, Contribution("metric", "", name, value), "git")
