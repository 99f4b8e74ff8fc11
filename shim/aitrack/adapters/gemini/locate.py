"""Where Gemini CLI keeps its chat files, and which sessions a wrapped run ran.

`$GEMINI_CLI_HOME` replaces the home directory when set (checked with 0.61.0:
`~/.gemini` is `$GEMINI_CLI_HOME/.gemini`); under macOS's seatbelt sandbox
(`SANDBOX=sandbox-exec`) the runtime files move to `~/.cache/.gemini`. A project's files are
`tmp/<project>/chats/session-<YYYY-MM-DDTHH-MM>-<first 8 of the session id>.jsonl`, the
project's short name taken from `projects.json` (working directory -> name; older versions
used the directory's SHA-256); a subagent's are `chats/<parent session id>/<its id>.jsonl`.
A chat file's first line names its session (`sessionId`, `kind`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from aitrack.adapters import run_files

SESSION_PREFIX = "session-"


def home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("GEMINI_CLI_HOME") or env.get("HOME") or os.path.expanduser("~")
    return Path(base).expanduser()


def gemini_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """`~/.gemini`, then the sandbox's runtime copy."""
    base = home(env)
    return [base / ".gemini", base / ".cache" / ".gemini"]


def transcript_roots(env: Mapping[str, str] | None = None) -> list[Path]:
    """Every `tmp` directory that exists (projects' chats are under it)."""
    return [d / "tmp" for d in gemini_dirs(env) if (d / "tmp").is_dir()]


def project_dirs(cwd: str, env: Mapping[str, str] | None = None) -> list[Path]:
    """The `tmp/<project>` directories a working directory's sessions are written to."""
    here = os.path.realpath(cwd)
    names = {hashlib.sha256(here.encode()).hexdigest()}
    for d in gemini_dirs(env):
        try:
            projects = json.loads((d / "projects.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        known = projects.get("projects") if isinstance(projects, dict) else None
        if isinstance(known, dict):
            names.update(name for path, name in known.items()
                         if isinstance(name, str) and os.path.realpath(path) == here)
    return [root / name for root in transcript_roots(env) for name in sorted(names)
            if "/" not in name and name not in ("", ".", "..")]


def project_root(chat: Path) -> str | None:
    """The working directory a chat file's project stands for (`tmp/<project>/.project_root`,
    which Gemini CLI writes), or None."""
    project = chat.parent.parent if chat.parent.name == "chats" else chat.parent.parent.parent
    try:
        root = (project / ".project_root").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return root or None


def session_of(path: Path) -> str | None:
    """The session a chat file counts for: its parent's for a subagent's file (the folder is
    named after it), else the session its first line names."""
    if path.parent.name != "chats":
        return path.parent.name
    try:
        with open(path, "rb") as fh:
            first = json.loads(fh.readline(1 << 20))
    except (OSError, ValueError):
        return None
    sid = first.get("sessionId") if isinstance(first, dict) else None
    return sid if isinstance(sid, str) and sid else None


def run_sessions(cwd: str, started: float, ended: float,
                 env: Mapping[str, str] | None = None) -> list[tuple[str, Path]]:
    """(session id, chat file) of the sessions written in `cwd` while the run lasted."""
    found = []
    for project in project_dirs(cwd, env):
        chats = project / "chats"
        try:
            entries = list(os.scandir(chats))
        except OSError:
            continue
        for entry in entries:
            files = [entry] if entry.is_file() else _scan(entry.path)
            for f in files:
                if not f.name.endswith(".jsonl") or not _written_during(f, started, ended):
                    continue
                sid = session_of(Path(f.path))
                if sid:
                    found.append((sid, Path(f.path)))
    return found


def _scan(folder: str) -> list[os.DirEntry]:
    try:
        return [e for e in os.scandir(folder) if e.is_file()]
    except OSError:
        return []


def _written_during(entry: os.DirEntry, started: float, ended: float) -> bool:
    """Modified while the run lasted (adapters/run_files.py)."""
    try:
        return run_files.written_during(entry.stat(), started, ended)
    except OSError:
        return False
