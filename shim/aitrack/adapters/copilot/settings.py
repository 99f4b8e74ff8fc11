"""Copilot CLI's own settings, wired to the per-user agent (`aitrack agent install`).

Copilot CLI 1.0.102 takes no telemetry endpoint from its settings file: `~/.copilot/
settings.json` (`$COPILOT_HOME/settings.json`) rejects `telemetry.enabled`, `.endpoint` and
`.protocol` ("Unsupported local telemetry setting"); the endpoint comes from the environment
only. What the file does take is `telemetry.headersProvider`, a helper command whose JSON
output Copilot adds to its OTLP headers. So aitrack sets that helper (the agent's key never
in the file), and a run started directly reaches the agent when its environment names it
(OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:PORT and OTEL_EXPORTER_OTLP_PROTOCOL=
http/protobuf); without that, the agent reads its usage from Copilot's session files every
import interval. Wrapped runs get a per-run receiver either way (WITH_AGENT).

Copilot runs the helper with HOME, PATH, TMPDIR and LANG only (checked), so the helper reads
where its Copilot sends from that process's environment (the helper's parent): it prints the
key only when that is the agent, and `{}` otherwise, so the key never goes to another
endpoint, nor to a wrapped run's receiver (whose own key would be overridden). The helper
must answer valid JSON: a failing helper blocks Copilot's export until its next refresh.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aitrack.adapters.copilot import locate
from aitrack.adapters.endpoints import AgentLink, Destination, Found, SettingsError
from aitrack.adapters.header_helpers import port_guard_sh
from aitrack.adapters.json_doc import MISSING, JsonDoc, raw  # noqa: F401 - raw: the contract's

NAME = "copilot"
TITLE = "Copilot CLI"
HELPER_KEY = ("telemetry", "headersProvider")
# what `doctor` says of it once wired: it cannot send there by itself
WIRED = ("its headers helper gives the agent's key to a run whose environment names the agent; "
         "other runs are read from its session files")


def user_file(env: Mapping[str, str] | None = None) -> Path:
    return locate.home(env) / "settings.json"


def settings_files(env: Mapping[str, str] | None = None) -> list[str]:
    return [str(user_file(env))]


def wanted(link: AgentLink) -> dict[tuple[str, ...], Any]:
    """The headers helper, run by an interpreter named outright (Copilot runs no shell)."""
    if sys.platform == "win32":  # untested: Windows
        return {HELPER_KEY: {"path": "cmd.exe", "args": ["/d", "/c", link.helper]}}
    return {HELPER_KEY: {"path": "/bin/sh", "args": [link.helper]}}


def found(doc: JsonDoc, link: AgentLink) -> Found:
    """What the user's file did that the first install changes (for a note)."""
    before = doc.get(HELPER_KEY)
    return Found([], ["telemetry.headersProvider"] if before not in (
        MISSING, None, False) and before != wanted(link)[HELPER_KEY] else [])


def destinations(data: Mapping[str, Any], url: str) -> list[Destination]:
    """Its settings name no endpoint (only its environment does): nothing to cut off."""
    return []


def parse(text: str, path: Path) -> JsonDoc:
    try:
        doc = JsonDoc(text)
    except ValueError as exc:
        raise SettingsError(f"{path} is not valid JSON ({exc}): fix it, then try again") from None
    telemetry = doc.get(("telemetry",))
    if telemetry is not MISSING and not isinstance(telemetry, dict):
        raise SettingsError(f'{path}: "telemetry" must be an object: fix it, then try again')
    return doc


def helper_name() -> str:
    return "otel-headers-copilot.cmd" if sys.platform == "win32" else "otel-headers-copilot"


def helper_script(link: AgentLink, secret_path: Path, windows: bool | None = None) -> str:
    """`telemetry.headersProvider`: the agent's key, only to the agent (see the module)."""
    windows = sys.platform == "win32" if windows is None else windows
    if windows:  # untested: Windows; no cheap way to read the parent's environment there
        return "\r\n".join(["@echo off",
                            "rem aitrack: Copilot CLI's headersProvider: runs started outside "
                            "aitrack are read from Copilot's files on Windows",
                            "echo {}", ""])
    url = link.url
    return "\n".join([
        "#!/bin/sh",
        "# aitrack: Copilot CLI's telemetry.headersProvider (written by `aitrack agent install`).",
        "# Copilot gives it HOME, PATH, TMPDIR and LANG only: where it sends is read from the",
        "# environment of the copilot process that runs it. The key is printed only when that",
        "# is this user's agent; otherwise {} (Copilot then sends no header of ours).",
        f"url={shlex.quote(url)}",
        'if [ -r "/proc/$PPID/environ" ]; then',
        "    penv=$(tr '\\000' '\\n' < \"/proc/$PPID/environ\" 2>/dev/null)",
        "else  # macOS (untested): the environment after the command",
        "    penv=$(ps -E -ww -o command= -p \"$PPID\" 2>/dev/null | tr ' ' '\\n')",
        "fi",
        "setting() { printf '%s\\n' \"$penv\" | sed -n \"s/^$1=//p\" | head -n 1; }",
        "endpoint=$(setting OTEL_EXPORTER_OTLP_ENDPOINT)",
        'case ${endpoint%/} in "$url") ;; *) echo \'{}\'; exit 0 ;; esac',
        "for signal in TRACES METRICS LOGS; do",
        "    own=$(setting \"OTEL_EXPORTER_OTLP_${signal}_ENDPOINT\")",
        '    case $own in \'\'|"$url"/*) ;; *) echo \'{}\'; exit 0 ;; esac',
        "done",
        *port_guard_sh(link.port),
        "key=",
        f"IFS= read -r key 2>/dev/null < {shlex.quote(str(secret_path))}",
        "case $key in ''|*[!A-Za-z0-9_-]*) echo '{}'; exit 0 ;; esac",
        f"printf '{{\"{link.key_header}\":\"%s\"}}\\n' \"$key\"",
        "",
    ])


def _provider(env: Mapping[str, str] | None) -> Any:
    try:
        data = json.loads(user_file(env).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    telemetry = data.get("telemetry") if isinstance(data, dict) else None
    return telemetry.get("headersProvider") if isinstance(telemetry, dict) else None


def diagnose(port: int, env: Mapping[str, str] | None = None) -> str | None:
    """None when Copilot's settings hold aitrack's headers helper; otherwise why not."""
    provider = _provider(env)
    if not isinstance(provider, dict):
        return "no telemetry.headersProvider gives the agent's key"
    args = provider.get("args") if isinstance(provider.get("args"), list) else []
    if not any(isinstance(a, str) and Path(a).name == helper_name() for a in args):
        return "telemetry.headersProvider is not aitrack's"
    return None


def points_at_agent(port: int, env: Mapping[str, str] | None = None) -> bool:
    return diagnose(port, env) is None


def stored_headers(env: Mapping[str, str] | None = None, own_header: str | None = None
                   ) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Copilot's settings hold no static headers (they come from the environment)."""
    return [], []
