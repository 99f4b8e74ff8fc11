"""The state file that lets uninstall undo the wiring, and what a wiring step reports.

`<agent dir>/wiring.json` (0600) holds, per settings file aitrack wrote: the tool, whether
the file existed, its original bytes (base64) and mode, the digest of what aitrack wrote,
the keys it set (each with its value before, as written, and the value it gave), the tables
it created and the directories it made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from aitrack import adapters
from aitrack.capture import agent
from aitrack.config.paths import Paths
from aitrack.config.private_files import write_private
from aitrack.install.shims import listed

# The tools whose own settings can point at the agent: those with a `settings` part.
TOOLS = tuple(t for t in adapters.TOOLS if adapters.part(t, "settings") is not None)
STATE_VERSION = 1


class WiringError(Exception):
    """Install or uninstall cannot go on: one line naming the fix."""


@dataclass
class Outcome:
    changed: bool = False
    lines: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)

    def add(self, other: Outcome) -> Outcome:
        self.changed |= other.changed
        self.lines += other.lines
        self.data.update(other.data)
        return self


def settings_module(tool: str) -> ModuleType:
    """The adapter part that knows the tool's settings files (adapters/<tool>/settings.py)."""
    mod = adapters.part(tool, "settings")
    if mod is None:
        raise ModuleNotFoundError(f"aitrack.adapters.{tool}.settings")
    return mod


def titles() -> str:
    """"Claude Code and Codex": the wired tools, for messages."""
    return listed([settings_module(t).TITLE for t in TOOLS])


def state_file(paths: Paths) -> Path:
    return agent.agent_dir(paths) / "wiring.json"


def lock_file(paths: Paths) -> Path:
    """Held while an install or uninstall runs (files.locked)."""
    return agent.agent_dir(paths) / "wiring.lock"


def helper_tools() -> tuple[str, ...]:
    """The wired tools that take the agent's key from a headers helper (a script that
    prints it) instead of holding it in their settings."""
    return tuple(t for t in TOOLS if hasattr(settings_module(t), "helper_script"))


def helper_file(paths: Paths, tool: str) -> Path:
    """A tool's headers helper (Claude Code's `otelHeadersHelper`), which prints the key."""
    return agent.agent_dir(paths) / settings_module(tool).helper_name()


def load_state(paths: Paths) -> dict:
    try:
        state = json.loads(state_file(paths).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"version": STATE_VERSION, "files": {}}
    if not isinstance(state, dict) or not isinstance(state.get("files"), dict):
        return {"version": STATE_VERSION, "files": {}}
    return state


def save_state(paths: Paths, state: dict) -> None:
    if state["files"]:
        write_private(state_file(paths), json.dumps(state, indent=1).encode())
    else:
        state_file(paths).unlink(missing_ok=True)


def installed(paths: Paths) -> list[str]:
    """The tools whose settings aitrack has wired (per the state file)."""
    files = load_state(paths)["files"].values()
    return [t for t in TOOLS if any(r.get("tool") == t for r in files)]



def opt_out_file(paths: Paths) -> Path:
    """There when the user chose to run without the agent (`aitrack setup --no-agent`)."""
    return agent.agent_dir(paths) / "opted-out"


def opted_out(paths: Paths) -> bool:
    return opt_out_file(paths).exists()


def choose_agent(paths: Paths, wanted: bool) -> None:
    """Remember whether the user wants the agent (doctor then stops suggesting it)."""
    if wanted:
        opt_out_file(paths).unlink(missing_ok=True)
    else:
        write_private(opt_out_file(paths), b"the agent was declined: `aitrack setup --no-agent`\n")
