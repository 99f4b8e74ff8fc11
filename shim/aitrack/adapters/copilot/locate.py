"""Where Copilot CLI keeps its sessions, and which ones a wrapped run ran.

`$COPILOT_HOME` (else `~/.copilot`) holds `session-state/<session id>/events.jsonl` (the
session's event log, appended to when a session is resumed) and `workspace.yaml` (its
`cwd`), and `otel/*.jsonl` where the OTel file exporter writes by convention;
`COPILOT_OTEL_FILE_EXPORTER_PATH` names another such file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from aitrack.adapters import run_files

EVENTS = "events.jsonl"
_SESSION_DIR = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                          r"[0-9a-fA-F]{12}")


def home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if (env.get("COPILOT_HOME") or "").strip():
        return Path(env["COPILOT_HOME"]).expanduser()
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".copilot"


def transcript_roots(env: Mapping[str, str] | None = None) -> list[Path]:
    """`session-state`, `otel` and the exporter's file, those that exist."""
    env = os.environ if env is None else env
    base = home(env)
    roots = [base / "session-state", base / "otel"]
    exporter = (env.get("COPILOT_OTEL_FILE_EXPORTER_PATH") or "").strip()
    found = [r for r in roots if r.is_dir()]
    if exporter and Path(exporter).expanduser().is_file() and not any(
            Path(exporter).expanduser().is_relative_to(r) for r in found):
        found.append(Path(exporter).expanduser())
    return found


def session_of(path: Path) -> str | None:
    """The session id an events file's folder carries."""
    if path.name == EVENTS and _SESSION_DIR.fullmatch(path.parent.name):
        return path.parent.name
    return None


def run_sessions(cwd: str, started: float, ended: float,
                 env: Mapping[str, str] | None = None) -> list[tuple[str, Path]]:
    """(session id, events file) of the sessions in `cwd` written while the run lasted."""
    here = os.path.realpath(cwd) if cwd else ""
    found = []
    try:
        entries = list(os.scandir(home(env) / "session-state"))
    except OSError:
        return []
    for entry in entries:
        events = Path(entry.path) / EVENTS
        try:
            st = events.stat()
        except OSError:
            continue
        if not run_files.written_during(st, started, ended):
            continue
        sid = session_of(events)
        if sid and _cwd(events) == here:
            found.append((sid, events))
    return sorted(found)


def _cwd(events: Path) -> str | None:
    """The working directory of `session.start`, the file's first line."""
    try:
        with open(events, "rb") as fh:
            first = json.loads(fh.readline(1 << 20))
        cwd = first["data"]["context"]["cwd"] if first.get("type") == "session.start" else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return os.path.realpath(cwd) if isinstance(cwd, str) else None
