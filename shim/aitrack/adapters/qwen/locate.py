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

from aitrack.adapters import run_files

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
    return run_files.sessions_in(chats, _SESSION_FILE, started, ended)
