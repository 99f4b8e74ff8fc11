"""Which of a tool's session files a wrapped run wrote: those modified while it ran.

File times come from the clock the run's start was read from, so a file the previous run
left a moment earlier is not this run's; only a file system that keeps whole seconds needs a
second's slack before the start. After the end, SLACK_S: the tool's last write may trail its
exit. Each tool's `locate.run_sessions` says where its session files are.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

SLACK_S = 2.0  # after the run's end: the tool's last write may trail its exit


def written_during(st: os.stat_result, started: float, ended: float) -> bool:
    slack = 1.0 if st.st_mtime_ns % 1_000_000_000 == 0 else 0.0
    return started - slack <= st.st_mtime <= ended + SLACK_S


def sessions_in(folder: Path, name: re.Pattern, started: float,
                ended: float) -> list[tuple[str, Path]]:
    """(session id, file) of the files in `folder` whose name is a session's (`<id>.jsonl`)
    written while the run lasted."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    found = []
    for entry in entries:
        if not name.fullmatch(entry.name):
            continue
        try:
            st = entry.stat()
        except OSError:
            continue
        if written_during(st, started, ended):
            found.append((entry.name[:-len(".jsonl")], Path(entry.path)))
    return found
