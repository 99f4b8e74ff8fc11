"""A run's end linked to what it did, in the ledger: its sessions and its commits.

A run's sessions are those something identifies as its own: the sessions its telemetry named
it in (Claude Code's headers helper passes the run's id to the agent; a per-run receiver is
the run's alone), and those whose files its own processes held open (capture/sampler.py).
Only when nothing identifies them are the sessions written in the run's folder while it ran
taken (each adapter's `locate`), and then only when that cannot be another run's: no other
run of the tool worked in that folder meanwhile, and no candidate is another run's or a
session whose telemetry named no run (started directly, with the agent). Otherwise the run
is linked to none (never a guess) and makes no session of its own. For a tool that reports
no contribution figures, the commits made meanwhile are counted from git. The wrapper does
this itself, or the agent does it for a wrapper that told it the run's end (runs.RunEnd).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from aitrack import adapters
from aitrack.capture import commits
from aitrack.capture.runs import RunEnd
from aitrack.domain.records import Contribution
from aitrack.store import ledger

STALE_RUN_S = 12 * 3600.0  # a run that never recorded its end (killed) stops counting as live


class Found:
    """What a run's end is linked to: its own sessions (`link`), the transcripts to read now
    (`read`: its own and the folder's candidates; reading is harmless), and whether the
    folder's candidates could have been another run's (`ambiguous`)."""

    __slots__ = ("link", "read", "ambiguous")

    def __init__(self, link: list[tuple[str, Path]], read: list[Path], ambiguous: bool):
        self.link = link
        self.read = read
        self.ambiguous = ambiguous


def find(db: sqlite3.Connection, run: RunEnd) -> Found:
    """The run's sessions and transcripts (see the module docstring)."""
    name = run.tool if run.tool in adapters.TOOLS else "generic"
    locate = adapters.part(name, "locate")
    candidates = dict(locate.run_sessions(run.cwd, run.started, run.ended, run.env or None)
                      if locate is not None else [])
    owned = {tsid: Path(path) for tsid, path in run.owned}
    named = {tsid for (tsid,) in db.execute(
        "SELECT tool_session_id FROM sessions WHERE run_id = ? AND tool_session_id IS NOT NULL",
        (run.id,))}
    read = list(dict.fromkeys([*owned.values(), *candidates.values()]))
    if owned or named:
        link = {**{t: p for t, p in candidates.items() if t in named}, **owned}
        link.update({t: None for t in named if t not in link})
        return Found(sorted(link.items()), read, False)
    if not candidates:
        return Found([], read, False)
    if _others_ran_there(db, run) or _taken(db, run, list(candidates)):
        return Found([], read, True)
    return Found(sorted(candidates.items()), read, False)


def end(db: sqlite3.Connection, run: RunEnd, found: Found | None = None) -> list[str]:
    """Record the run's end on its sessions (the ids); `found`: what `find` found, if known."""
    if found is None:
        found = find(db, run)
    return ledger.end_run(db, run.id, run.ended, run.exit_code, [tsid for tsid, _ in found.link],
                          is_session=run.is_session and not found.ambiguous)


def _others_ran_there(db: sqlite3.Connection, run: RunEnd) -> bool:
    """Whether another run of the tool worked in the same folder while this one ran."""
    return db.execute(
        "SELECT 1 FROM runs WHERE tool = ? AND cwd = ? AND id != ? AND started_at <= ? "
        "AND COALESCE(ended_at, CASE WHEN started_at > ? THEN ? END) >= ? LIMIT 1",
        (run.tool, run.cwd, run.id, run.ended, run.ended - STALE_RUN_S, run.ended,
         run.started)).fetchone() is not None


def _taken(db: sqlite3.Connection, run: RunEnd, tool_session_ids: list[str]) -> bool:
    """Whether a candidate is another live run's, or (for a tool whose telemetry names its
    run) a session whose telemetry named none: started directly."""
    tells = getattr(adapters.load(run.tool), "TELLS_RUN", False) \
        if run.tool in adapters.TOOLS else False
    marks = ",".join("?" * len(tool_session_ids))
    for run_id, sources, other_ended in db.execute(
            f"SELECT s.run_id, s.sources, r.ended_at FROM sessions s LEFT JOIN runs r "
            f"ON r.id = s.run_id WHERE s.tool = ? AND s.tool_session_id IN ({marks})",
            (run.tool, *tool_session_ids)):
        if run_id is not None and run_id != run.id and (
                other_ended is None or other_ended > run.started):
            return True  # another run's, live while this one ran (an earlier one resumed it)
        if tells and run_id is None and sources & ledger.TELEMETRY:
            return True
    return False


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
