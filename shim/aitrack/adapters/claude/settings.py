"""Claude Code's own settings, pointed at the per-user agent (`aitrack agent install`).

Every front end (terminal, VS Code, JetBrains, the desktop app) reads the user settings file
(`$CLAUDE_CONFIG_DIR/settings.json`, else `~/.claude/settings.json`) and the managed ones
(`managed-settings.json` and its `managed-settings.d/` drop-ins), whose `env` keys and
`otelHeadersHelper` win. aitrack sets telemetry keys in the `env` block and
`otelHeadersHelper`, a script that prints the agent's key from its 0600 file at once (Claude
Code runs it at each start; it inherits the claude process's environment, so a run started
by `aitrack claude` adds its run id). Claude Code 2.1.328 runs the helper directly when the
setting names an existing file, and through `/bin/sh` otherwise, so `~` and `$HOME` work in
a machine-wide setting (checked). It refuses settings files with comments or trailing
commas, so they are plain JSON; edits here change only the keys they name and keep the rest
of the file, byte for byte.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aitrack.adapters.claude import locate
from aitrack.adapters.endpoints import (
    AgentLink,
    Destination,
    Found,
    SettingsError,
    agent_url,
    header_names,
    otlp_headers,
    shown,
)
from aitrack.adapters.header_helpers import port_guard_cmd, port_guard_sh
from aitrack.adapters.json_doc import MISSING, JsonDoc, raw  # noqa: F401 - raw: the contract's

NAME = "claude"
TITLE = "Claude Code"
MANAGED_SETTINGS_VAR = "AITRACK_CLAUDE_MANAGED_SETTINGS"  # tests: where managed settings are
HELPER_KEY = "otelHeadersHelper"
STATUS_LINE_KEY = "statusLine"  # a command whose output Claude Code shows under its prompt
ENDPOINT_KEY = "OTEL_EXPORTER_OTLP_ENDPOINT"
SIGNALS = ("METRICS", "LOGS", "TRACES")
# Keys that would send telemetry around the agent, or carry a token in plaintext: removed
# while the agent is wired (their values are kept to put them back at uninstall).
REDIRECTING = (ENDPOINT_KEY, "OTEL_EXPORTER_OTLP_HEADERS",
               *(f"OTEL_EXPORTER_OTLP_{s}_ENDPOINT" for s in SIGNALS),
               *(f"OTEL_EXPORTER_OTLP_{s}_HEADERS" for s in SIGNALS),
               *(f"OTEL_EXPORTER_OTLP_{s}_PROTOCOL" for s in SIGNALS))
HEADER_KEYS = tuple(k for k in REDIRECTING if k.endswith("HEADERS"))
REMOVED = tuple(k for k in REDIRECTING if k != ENDPOINT_KEY) + ("OTEL_LOG_ASSISTANT_RESPONSES",)


# ---------------------------------------------------------------- where the files are


def user_file(env: Mapping[str, str] | None = None) -> Path:
    return locate.config_dirs(env)[0] / "settings.json"


def managed_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(MANAGED_SETTINGS_VAR):
        return Path(env[MANAGED_SETTINGS_VAR])
    if sys.platform == "darwin":
        return Path("/Library/Application Support/ClaudeCode/managed-settings.json")
    if sys.platform == "win32":
        return Path(r"C:\Program Files\ClaudeCode\managed-settings.json")
    return Path("/etc/claude-code/managed-settings.json")


def managed_dropins(env: Mapping[str, str] | None = None) -> Path:
    """The `managed-settings.d/` folder next to managed-settings.json (Claude Code 2.1.83+)."""
    return managed_file(env).with_name("managed-settings.d")


def settings_files(env: Mapping[str, str] | None = None) -> list[str]:
    """Every file (and the drop-in folder) whose change could change `points_at_agent`."""
    return [str(user_file(env)), str(managed_file(env)), str(managed_dropins(env))]


# ---------------------------------------------------------------- what aitrack sets


def wanted_env(url: str, telemetry) -> dict[str, str]:
    """The `env` keys that send Claude Code's telemetry to the agent at `url`."""
    return {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        ENDPOINT_KEY: url,
        "OTEL_METRICS_INCLUDE_ENTRYPOINT": "true",
        "OTEL_METRIC_EXPORT_INTERVAL": str(telemetry.metric_export_interval_ms),
        "OTEL_LOGS_EXPORT_INTERVAL": str(telemetry.logs_export_interval_ms),
        "OTEL_LOG_USER_PROMPTS": "1" if telemetry.log_user_prompts else "0",
        "OTEL_LOG_TOOL_DETAILS": "1" if telemetry.log_tool_details else "0",
    }


def wanted(link: AgentLink) -> dict[tuple[str, ...], Any]:
    """Key path -> value aitrack sets in the user settings file (MISSING: removes it). The
    agent's key comes from the headers helper, never from the file."""
    out: dict[tuple[str, ...], Any] = {("env", k): v
                                       for k, v in wanted_env(link.url, link.telemetry).items()}
    out.update({("env", k): MISSING for k in REMOVED})
    out[(HELPER_KEY,)] = link.helper
    return out


def found(doc: JsonDoc, link: AgentLink) -> Found:
    """What the user's file did that the first install changes (for a note)."""
    data = doc.value()
    block = data.get("env") if isinstance(data.get("env"), dict) else {}
    return Found(plaintext_headers(block), [HELPER_KEY] if data.get(HELPER_KEY) else [])


def status_line(command: str) -> dict[str, Any]:
    """The `statusLine` setting that shows `command`'s output (it gets the session's JSON on
    stdin)."""
    return {"type": "command", "command": command, "padding": 0}


def helper_name() -> str:
    return "otel-headers.cmd" if sys.platform == "win32" else "otel-headers"


_RUN_ID = "[0-9a-fA-F]" * 32
_SECRET_OK = "[!A-Za-z0-9_-]"  # a key made of other characters is never printed (no JSON injection)


def helper_script(link: AgentLink, secret_path: Path, windows: bool | None = None) -> str:
    """`otelHeadersHelper`: the agent's key from its file (`secret_path`: the key made at
    each agent start), and the wrapper's run id when the environment holds one (32 hex
    digits, nothing else: it must not be able to inject JSON). Only when the agent's port
    is held by this user (header_helpers.py). POSIX sh, no Python start-up; a missing or odd
    key, or a port not this user's, prints `{}` (Claude Code then exports without it, and
    nothing is shown to the user)."""
    key_header, run_header = link.key_header, link.run_header
    windows = sys.platform == "win32" if windows is None else windows
    if windows:  # untested: Windows
        return "\r\n".join([
            "@echo off",
            "rem aitrack: Claude Code's otelHeadersHelper (written by `aitrack agent install`)",
            "setlocal EnableExtensions DisableDelayedExpansion",
            *port_guard_cmd(link.port),
            'set "key="',
            f'set /p key=<"{secret_path}" 2>nul',
            "if not defined key (echo {}& exit /b 0)",
            'echo(%key%| findstr /r /x "[0-9a-zA-Z_-]*" >nul || (echo {}& exit /b 0)',
            'set "run=%AITRACK_SESSION_ID%"',
            'if not defined run goto :key',
            'if not "%run:~32,1%"=="" goto :key',
            'if "%run:~31,1%"=="" goto :key',
            'echo(%run%| findstr /r /x "[0-9a-fA-F]*" >nul || goto :key',
            f'echo {{"{key_header}":"%key%","{run_header}":"%run%"}}',
            "exit /b 0",
            ":key",
            f'echo {{"{key_header}":"%key%"}}',
            "",
        ])
    return "\n".join([
        "#!/bin/sh",
        "# aitrack: Claude Code's otelHeadersHelper (written by `aitrack agent install`).",
        "# Prints the agent's key from its private file and, in a run started by `aitrack",
        "# claude`, that run's id. No Python, no network: Claude Code waits for it.",
        *port_guard_sh(link.port),
        "key=",
        f"IFS= read -r key 2>/dev/null < {shlex.quote(str(secret_path))}",
        f"case $key in ''|*{_SECRET_OK}*) echo '{{}}'; exit 0 ;; esac",
        "case ${AITRACK_SESSION_ID:-} in",
        f"    {_RUN_ID})",
        f"        printf '{{\"{key_header}\":\"%s\",\"{run_header}\":\"%s\"}}\\n' "
        '"$key" "$AITRACK_SESSION_ID" ;;',
        f"    *) printf '{{\"{key_header}\":\"%s\"}}\\n' \"$key\" ;;",
        "esac",
        "",
    ])


def machine_helper(os_name: str, state_rel: str | None = None) -> str:
    """The `otelHeadersHelper` of a machine-wide (managed) settings file: one file for every
    user, so it names each user's own helper relative to their home (or LOCALAPPDATA), and
    prints `{}` for a user who has no agent yet instead of an error at each start.

    `state_rel` (tests): aitrack's state directory relative to the home directory."""
    if os_name == "windows":  # Claude Code runs it with cmd.exe (untested: Windows)
        helper = r"%LOCALAPPDATA%\aitrack\agent\otel-headers.cmd"
        return f'if exist "{helper}" ("{helper}") else (echo {{}})'
    if state_rel is not None:
        base = f"$HOME/{state_rel}"
    elif os_name == "macos":
        base = "$HOME/Library/Application Support/aitrack"
    else:  # platformdirs' user_state_dir on Linux
        base = "${XDG_STATE_HOME:-$HOME/.local/state}/aitrack"
    return (f'f="{base}/agent/otel-headers"; if [ -x "$f" ]; then exec "$f"; fi; '
            "echo '{}'")


def machine_snippet(link: AgentLink, os_name: str, state_rel: str | None = None) -> str:
    """managed-settings.json content (or a managed-settings.d/ drop-in) IT deploys. With
    per-user ports (`link.port` None) it names no endpoint: each user's own settings file
    does (written by `aitrack agent install` in their session), and env merges key by key."""
    env = wanted_env(agent_url(link.port or 0), link.telemetry)
    if link.port is None:
        del env[ENDPOINT_KEY]
    return json.dumps({"env": env, HELPER_KEY: machine_helper(os_name, state_rel)},
                      indent=2) + "\n"


# ---------------------------------------------------------------- reading the settings


def parse(text: str, path: Path) -> JsonDoc:
    """The document, or SettingsError when Claude Code could not read it either."""
    try:
        doc = JsonDoc(text)
    except ValueError as exc:
        raise SettingsError(f"{path} is not valid JSON ({exc}); Claude Code ignores it too "
                            "(it takes no comments or trailing commas): fix it, then try "
                            "again") from None
    env = doc.get(("env",))
    if env is not MISSING and not isinstance(env, dict):
        raise SettingsError(f"{path}: \"env\" must be an object: fix it, then try again")
    return doc


def read_env(path: Path) -> tuple[dict[str, str], str | None]:
    """The `env` block and `otelHeadersHelper` of one settings file ({} when unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, None
    if not isinstance(data, dict):
        return {}, None
    env = data.get("env") if isinstance(data.get("env"), dict) else {}
    helper = data.get(HELPER_KEY)
    return ({str(k): str(v) for k, v in env.items()},
            helper if isinstance(helper, str) and helper.strip() else None)


def managed_sources(env: Mapping[str, str] | None = None) -> list[Path]:
    """managed-settings.json, then its drop-ins in name order (later ones win)."""
    found = [managed_file(env)]
    try:
        found += sorted(p for p in managed_dropins(env).iterdir()
                        if p.suffix == ".json" and not p.name.startswith("."))
    except OSError:
        pass
    return found


def effective(env: Mapping[str, str] | None = None) -> tuple[dict[str, str], str | None,
                                                             dict[str, str]]:
    """(env block, otelHeadersHelper, key -> file that set it): managed over user, key by
    key for `env`; the helper from the highest source that sets one."""
    merged: dict[str, str] = {}
    origin: dict[str, str] = {}
    helper = None
    for path in [user_file(env), *managed_sources(env)]:
        block, own_helper = read_env(path)
        merged.update(block)
        origin.update({k: str(path) for k in block})
        if own_helper:
            helper = own_helper
            origin[HELPER_KEY] = str(path)
    return merged, helper, origin


def diagnose(port: int, env: Mapping[str, str] | None = None) -> str | None:
    """None when Claude Code's effective settings send its telemetry to the agent on `port`;
    otherwise why not, in a few words."""
    block, helper, origin = effective(env)
    url = agent_url(port)
    if block.get("CLAUDE_CODE_ENABLE_TELEMETRY", "").strip().lower() not in ("1", "true"):
        return "telemetry is not switched on (CLAUDE_CODE_ENABLE_TELEMETRY)"
    endpoint = block.get(ENDPOINT_KEY, "").strip().rstrip("/")
    if endpoint != url:
        where = f" ({origin[ENDPOINT_KEY]})" if ENDPOINT_KEY in origin else ""
        return (f"{ENDPOINT_KEY} is {shown(endpoint)}{where}" if endpoint else
                f"{ENDPOINT_KEY} is not set")
    for signal in ("METRICS", "LOGS"):
        own = block.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", "").strip()
        if own and not own.startswith(url + "/"):
            return f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT is {shown(own)}"
        if "otlp" not in block.get(f"OTEL_{signal}_EXPORTER", ""):
            return f"OTEL_{signal}_EXPORTER is not otlp"
    if helper is None:
        return f"no {HELPER_KEY} gives the agent's key"
    return None


def points_at_agent(port: int, env: Mapping[str, str] | None = None) -> bool:
    """Claude Code's effective settings (user, then managed, which win) send OTLP to the
    agent on `port`."""
    return diagnose(port, env) is None


def destinations(data: Mapping[str, Any], url: str) -> list[Destination]:
    """Where a settings file's `env` block sends OTLP, other than the agent at `url`: the
    base endpoint and each signal's own (with the headers that go there)."""
    block = data.get("env") if isinstance(data.get("env"), dict) else {}
    env = {str(k): str(v) for k, v in block.items()}
    protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or None
    headers = otlp_headers(env.get("OTEL_EXPORTER_OTLP_HEADERS"))
    found = []
    base = env.get(ENDPOINT_KEY, "").strip()
    if base and base.rstrip("/") != url:
        found.append(Destination(None, base, protocol, headers))
    for signal in SIGNALS:
        own = env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", "").strip()
        if own and not own.startswith(url + "/"):
            found.append(Destination(
                signal.lower(), own, env.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or protocol,
                {**headers, **otlp_headers(env.get(f"OTEL_EXPORTER_OTLP_{signal}_HEADERS"))}))
    return found


def plaintext_headers(block: Mapping[str, Any]) -> list[str]:
    """The OTLP header keys of an `env` block that hold a value (a token, often)."""
    return [k for k in HEADER_KEYS if str(block.get(k) or "").strip()]


def stored_headers(env: Mapping[str, str] | None = None, own_header: str | None = None
                   ) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """(where, the OTLP header settings of the user file that hold a value: their names,
    never the values) and the files that cannot be read (doctor's plaintext-token check)."""
    path = user_file(env)
    block, _ = read_env(path)
    return [(f"{path} env {key}", header_names(block[key]))
            for key in plaintext_headers(block)], []


# ---------------------------------------------------------------- machine-wide settings


def managed_env(path: Path) -> dict:
    """The `env` block of a machine-wide settings file (FileNotFoundError, OSError or
    ValueError as reading it raises)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    env = data.get("env") if isinstance(data, dict) else None
    return env if isinstance(env, dict) else {}


def telemetry_off(env: Mapping[str, object]) -> list[str]:
    """The `KEY=value` settings of an `env` block that stop Claude Code reporting usage."""
    off = [f"{k}={env[k]}" for k in ("CLAUDE_CODE_ENABLE_TELEMETRY",) if
           str(env.get(k, "1")).strip().lower() in ("0", "false")]
    off += [f"{k}={env[k]}" for k in ("OTEL_METRICS_EXPORTER",)
            if k in env and "otlp" not in str(env[k])]
    return off
