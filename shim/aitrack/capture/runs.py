"""What a wrapped run's end records, wherever it is recorded.

A run knows its exit status, its working directory and when it ran; it finds the tool
sessions it ran from their transcripts (each adapter's `locate`), ends them with its status,
and for a tool that reports no contribution figures, counts the commits made meanwhile from
git. A wrapped run records this itself, or, when the tool sends its telemetry to the per-user
agent, has the agent do it (`RunEnd` travels as JSON): the agent has the ledger open already.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # `typing` costs ~9 ms: the wrapper imports this module at its exit
if TYPE_CHECKING:  # annotations only
    import sqlite3
    from pathlib import Path

# the environment that says where the tools keep their transcripts and settings
TOOL_ENV = ("HOME", "CLAUDE_CONFIG_DIR", "CODEX_HOME")


class RunEnd:
    """A run's end, as its wrapper saw it."""

    __slots__ = ("id", "tool", "cwd", "started", "ended", "exit_code", "is_session",
                 "git_start", "env")

    def __init__(self, id: str, tool: str, cwd: str, started: float, ended: float,
                 exit_code: int, is_session: bool, git_start=None,
                 env: dict[str, str] | None = None):
        self.id = id
        self.tool = tool
        self.cwd = cwd
        self.started = started
        self.ended = ended
        self.exit_code = exit_code
        self.is_session = is_session  # False: `--version` and the like
        self.git_start = git_start  # commits.Start, or None
        self.env = dict(env or {})  # TOOL_ENV of the wrapper's environment

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__slots__}
        s = self.git_start
        out["git_start"] = None if s is None else {
            "cwd": s.cwd, "at": s.at, "head": s.head, "by_files": s.by_files}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> RunEnd:
        from aitrack.capture import commits

        git = data.get("git_start")
        start = None if not git else commits.Start(str(git["cwd"]), float(git["at"]),
                                                     git["head"], bool(git["by_files"]))
        env = {k: str(v) for k, v in (data.get("env") or {}).items() if k in TOOL_ENV}
        return cls(str(data["id"]), str(data["tool"]), str(data["cwd"]),
                   float(data["started"]), float(data["ended"]), int(data["exit_code"]),
                   bool(data["is_session"]), start, env)


def adapter_of(tool: str):
    from aitrack import adapters

    return adapters.load(tool if tool in adapters.TOOLS else "generic")


def transcripts(run: RunEnd) -> list[tuple[str, Path]]:
    """(tool session id, transcript) of the sessions the run ran, as its files tell."""
    try:
        locate = importlib.import_module(f"{adapter_of(run.tool).__name__}.locate")
    except ModuleNotFoundError:  # a tool without transcripts of its own
        return []
    return locate.run_sessions(run.cwd, run.started, run.ended, run.env or None)


def end(db: sqlite3.Connection, run: RunEnd,
        found: list[tuple[str, Path]] | None = None) -> list[str]:
    """Record the run's end on its sessions (the ids); `found`: its transcripts, if known."""
    from aitrack.store import ledger

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
    from aitrack.capture import commits
    from aitrack.domain.records import Contribution
    from aitrack.store import ledger

    made = commits.made_since(run.git_start, timeout_s)
    if made is None or not made.figures():
        return
    main = max(session_ids, key=lambda sid: (db.execute(
        "SELECT TOTAL(tokens) FROM usage WHERE session_id = ? AND token_type IN "
        "('input', 'output', 'cache_read', 'cache_creation')", (sid,)).fetchone()[0], sid))
    with ledger.write(db):
        for name, value in made.figures().items():
            ledger.add(db, main, Contribution("metric", "", name, value), "git")
