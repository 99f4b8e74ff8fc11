"""Where Codex keeps its rollouts, and which sessions (threads) a wrapper run ran.

`${CODEX_HOME:-~/.codex}/sessions/YYYY/MM/DD/rollout-<timestamp>-<thread id>.jsonl`, and
`archived_sessions/` for archived ones. A rollout's first line, `session_meta`, names the
thread and its working directory. A resumed thread appends to its old rollout (in an older
day's folder), so Codex's own index (`state_5.sqlite`, table `threads`) is asked first.

Which threads a wrapped run ran (checked with 0.169.0): the process that runs a thread holds
its rollout open from the thread's start to its own exit, and `thread-writer-locks/<thread
id>.lock` with it (`open_sessions`). `codex exec` runs its thread in its own process; the
TUI hands its threads to the shared background server (`codex app-server ...
--managed-daemon`, started by the first TUI and serving every front end), whose open files
are not one run's (`run_process`): such a run is found by folder and time, only when no
other run of the tool worked in that folder meanwhile (capture/linking.py).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path

from aitrack.adapters import run_files
from aitrack.adapters.reading import open_regular

_ROLLOUT = re.compile(r"rollout-.*-([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                      r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\.jsonl")
DAY = 86400


def home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("CODEX_HOME"):
        return Path(env["CODEX_HOME"]).expanduser()
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".codex"


def transcript_roots(env: Mapping[str, str] | None = None) -> list[Path]:
    """`sessions` and `archived_sessions`, those that exist."""
    base = home(env)
    return [base / d for d in ("sessions", "archived_sessions") if (base / d).is_dir()]


def open_sessions(paths: list[str]) -> list[tuple[str, str]]:
    """(thread id, rollout) of the rollouts among a process's open files."""
    found = []
    for path in paths:
        tid = thread_id(Path(path))
        if tid:
            found.append((tid, path))
    return found


def run_process(cmdline: list[str]) -> bool:
    """Whether a process's open files are its run's alone: not the shared background
    server's (its argv names `app-server`)."""
    return "app-server" not in cmdline


def thread_id(path: Path) -> str | None:
    """The thread id a rollout's file name carries."""
    m = _ROLLOUT.fullmatch(path.name)
    return m.group(1) if m else None


def run_sessions(cwd: str, started: float, ended: float,
                 env: Mapping[str, str] | None = None) -> list[tuple[str, Path]]:
    """(thread id, rollout) of the threads that worked in `cwd` while the run lasted."""
    here = os.path.realpath(cwd)
    found = {tid: path for tid, path in _indexed(env, here, started, ended)}
    for path in _recent_rollouts(env, started, ended):
        tid = thread_id(path)
        if tid and tid not in found and _meta_cwd(path) == here:
            found[tid] = path
    return sorted(found.items())


def _indexed(env, cwd: str, started: float, ended: float):
    """From Codex's index; best effort (an internal database whose schema may change)."""
    index = home(env) / "state_5.sqlite"
    if not index.is_file():
        return []
    try:
        db = sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=0.5)
        try:
            # milliseconds: a thread the previous run left a second earlier is not this one's
            rows = db.execute("SELECT id, rollout_path, cwd FROM threads WHERE "
                              "COALESCE(updated_at_ms, updated_at * 1000) >= ? "
                              "AND created_at <= ?",
                              (int(started * 1000), int(ended + run_files.SLACK_S) + 1)).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return []
    return [(tid, Path(path)) for tid, path, where in rows
            if where and os.path.realpath(where) == cwd and Path(path).is_file()]


def _recent_rollouts(env, started: float, ended: float) -> list[Path]:
    """Rollouts modified during the run, in the day folders it spans (local and UTC)."""
    days = set()
    t = started - DAY
    while t <= ended + DAY:
        days.add(time.strftime("%Y/%m/%d", time.localtime(t)))
        days.add(time.strftime("%Y/%m/%d", time.gmtime(t)))
        t += DAY / 2
    out = []
    for root in transcript_roots(env):
        for day in days:
            try:
                entries = list(os.scandir(root / day))
            except OSError:
                continue
            for entry in entries:
                try:
                    written = _written_during(entry.stat(), started)
                except OSError:
                    continue
                if written and entry.name.endswith(".jsonl"):
                    out.append(Path(entry.path))
    return out


def _written_during(st, started: float) -> bool:
    """Modified since the run started. File times come from the clock `started` was read
    from; only a file system that keeps whole seconds needs the second's slack."""
    whole_seconds = st.st_mtime_ns % 1_000_000_000 == 0
    return st.st_mtime >= started - (1.0 if whole_seconds else 0.0)


def _meta_cwd(path: Path) -> str | None:
    try:
        with open_regular(path) as fh:  # a FIFO named like a rollout must not block
            first = json.loads(fh.readline(1 << 20))
        cwd = first.get("payload", {}).get("cwd") if first.get("type") == "session_meta" else None
    except (OSError, ValueError, AttributeError):
        return None
    return os.path.realpath(cwd) if isinstance(cwd, str) else None
