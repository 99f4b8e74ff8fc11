"""Where Qwen Code keeps its files, and which sessions a wrapped run ran.

Settings are in `$QWEN_HOME` (else `~/.qwen`); runtime files in `$QWEN_RUNTIME_DIR`, else the
same directory (checked with 0.24.4; the `advanced.runtimeOutputDir` setting can move them
too, which aitrack does not read). Under it: `projects/<slug>/chats/<session id>.jsonl`, the
slug being the working directory with every character but letters and digits replaced by
`-` (lower-cased on Windows), and `usage/token-usage-YYYY-MM.jsonl`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

SLACK_S = 2.0  # after the run's end: the tool's last write may trail its exit
_SLUG = re.compile(r"[^A-Za-z0-9]")
_SESSION_FILE = re.compile(r"[0-9a-fA-F-]{36}\.jsonl")


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def settings_dir(env: Mapping[str, str] | None = None) -> Path:
    env = _env(env)
    if env.get("QWEN_HOME"):
        return Path(env["QWEN_HOME"]).expanduser()
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".qwen"


def runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    env = _env(env)
    if env.get("QWEN_RUNTIME_DIR"):
        return Path(env["QWEN_RUNTIME_DIR"]).expanduser()
    return settings_dir(env)


def transcript_roots(env: Mapping[str, str] | None = None) -> list[Path]:
    """`projects` (chat files) and `usage` (token-usage files), those that exist."""
    base = runtime_dir(env)
    return [base / d for d in ("projects", "usage") if (base / d).is_dir()]


def slug(cwd: str) -> str:
    return _SLUG.sub("-", cwd.lower() if sys.platform == "win32" else cwd)


def run_sessions(cwd: str, started: float, ended: float,
                 env: Mapping[str, str] | None = None) -> list[tuple[str, Path]]:
    """(session id, chat file) of the sessions written in `cwd` while the run lasted."""
    chats = runtime_dir(env) / "projects" / slug(cwd) / "chats"
    try:
        entries = list(os.scandir(chats))
    except OSError:
        return []
    found = []
    for entry in entries:
        if not _SESSION_FILE.fullmatch(entry.name):
            continue
        try:
            st = entry.stat()
        except OSError:
            continue
        # file times come from the clock `started` was read from (whole-second file systems
        # aside): a session the previous run left a moment earlier is not this one's
        slack = 1.0 if st.st_mtime_ns % 1_000_000_000 == 0 else 0.0
        if started - slack <= st.st_mtime <= ended + SLACK_S:
            found.append((entry.name[:-len(".jsonl")], Path(entry.path)))
    return found
