"""Where opencode keeps its usage, and which sessions a wrapped run ran.

Its data folder is `$XDG_DATA_HOME/opencode`, else `~/.local/share/opencode` (xdg-basedir,
on every OS). The database is `opencode.db` there, `OPENCODE_DB` when set (a path, or a
name in the data folder), or `opencode-<channel>.db` for a development channel; versions
before the database kept `storage/message/<session>/<message>.json`. A session row names
its working directory, so a run's sessions are those of its directory that were written
while it ran. opencode takes that directory from `$PWD` (checked: a stale PWD wins over the
process's real working directory), so either one matches.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path

SLACK_S = 2.0  # after the run's end: the tool's last write may trail its exit
OPEN_TIMEOUT_S = 2.0  # a reader waits this long at most while opencode recovers its WAL


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    xdg = (env.get("XDG_DATA_HOME") or "").strip()
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "opencode"
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".local" / "share" / "opencode"


def databases(env: Mapping[str, str] | None = None) -> list[Path]:
    """The databases that exist: OPENCODE_DB's, `opencode.db`, the channels' `opencode-*.db`."""
    env = os.environ if env is None else env
    base = data_dir(env)
    found = []
    named = (env.get("OPENCODE_DB") or "").strip()
    if named and named != ":memory:":
        found.append(Path(named) if os.path.isabs(named) else base / named)
    found.append(base / "opencode.db")
    try:
        found += sorted(base / e.name for e in os.scandir(base) if e.name.startswith(
            "opencode-") and e.name.endswith(".db") and e.is_file())
    except OSError:
        pass
    return [p for p in dict.fromkeys(found) if p.is_file()]


def transcript_roots(env: Mapping[str, str] | None = None) -> list[Path]:
    """The databases, and the older versions' message folder when it exists."""
    legacy = data_dir(env) / "storage" / "message"
    return databases(env) + ([legacy] if legacy.is_dir() else [])


def connect(path: Path) -> sqlite3.Connection:
    """The database, read-only: never a write, never a checkpoint of opencode's WAL (a
    read-only connection cannot make one), and reads see the committed rows while opencode
    writes."""
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                           timeout=OPEN_TIMEOUT_S)


def run_sessions(cwd: str, started: float, ended: float,
                 env: Mapping[str, str] | None = None) -> list[tuple[str, Path]]:
    """(session id, database) of the sessions in `cwd` written while the run lasted."""
    env = os.environ if env is None else env
    here = {os.path.realpath(d) for d in (cwd, env.get("PWD")) if d}
    found = []
    for path in databases(env):
        try:
            db = connect(path)
            try:
                rows = db.execute("SELECT id, directory FROM session WHERE time_updated >= ? "
                                  "AND time_created <= ?",
                                  (int(started * 1000), int((ended + SLACK_S) * 1000))).fetchall()
            finally:
                db.close()
        except sqlite3.Error:
            continue
        found += [(sid, path) for sid, where in rows
                  if where and os.path.realpath(where) in here]
    return found
