"""Where Claude Code keeps its transcripts, and which sessions a wrapper run ran.

`$CLAUDE_CONFIG_DIR/projects` when set, else `~/.claude/projects`, plus the older
`~/.config/claude/projects`. A session is `projects/<cwd slug>/<session id>.jsonl` (the slug
is the working directory with every character but letters and digits replaced by `-`);
subagent logs sit in `projects/<slug>/<session id>/subagents/*.jsonl`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from aitrack.adapters import run_files

_SLUG = re.compile(r"[^A-Za-z0-9]")
_SESSION_FILE = re.compile(r"[0-9a-fA-F-]{36}\.jsonl")


def config_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """Claude Code's configuration directories, the one it writes to first."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    dirs = [Path(p).expanduser() for p in (env.get("CLAUDE_CONFIG_DIR") or "").split(",")
            if p.strip()]
    if not dirs:
        dirs = [home / ".claude"]
    dirs.append(home / ".config" / "claude")
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def transcript_roots(env: Mapping[str, str] | None = None) -> list[Path]:
    """Every `projects` directory that exists."""
    return [d / "projects" for d in config_dirs(env) if (d / "projects").is_dir()]


def slug(cwd: str) -> str:
    return _SLUG.sub("-", cwd)


def run_sessions(cwd: str, started: float, ended: float,
                 env: Mapping[str, str] | None = None) -> list[tuple[str, Path]]:
    """(session id, transcript) of the sessions written in `cwd` while the run lasted."""
    found = []
    for root in transcript_roots(env):
        found += run_files.sessions_in(root / slug(cwd), _SESSION_FILE, started, ended)
    return found
