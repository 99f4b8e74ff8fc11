"""Qwen Code's own settings, pointed at the per-user agent (`aitrack agent install`).

Qwen Code 0.24.4 merges `system-defaults.json`, the user's `~/.qwen/settings.json`
(`$QWEN_HOME/settings.json`), the workspace's `.qwen/settings.json` and the machine's
`settings.json` (`/etc/qwen-code`, `/Library/Application Support/QwenCode`,
`C:\\ProgramData\\qwen-code`; `QWEN_CODE_SYSTEM_SETTINGS_PATH`), later files winning, and
its `QWEN_TELEMETRY_*` variables (and `OTEL_EXPORTER_OTLP_ENDPOINT`) win over all of them.
aitrack sets `telemetry.enabled`, `target` "local", `otlpEndpoint` (the agent), `otlpProtocol`
"http" (OTLP/HTTP, JSON) and `logPrompts` in the user's file, and removes `outfile`. The file
takes comments; aitrack edits only a file without them, so it can give it back byte for byte.

No key in the file: Qwen Code has no header setting and no headers helper (only
`OTEL_EXPORTER_OTLP_HEADERS` from the environment), so its requests reach the agent without
the agent's key, which must admit them by the sending process's user (peer uid). Nothing
aitrack writes for it holds a secret.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aitrack.adapters import json_layers
from aitrack.adapters.endpoints import AgentLink, Destination, Found, agent_url, shown
from aitrack.adapters.json_doc import MISSING, JsonDoc
from aitrack.adapters.qwen import locate

NAME = "qwen"
TITLE = "Qwen Code"
TAKES_KEY = False  # no header setting: the agent admits it by peer uid, never by a key here
SYSTEM_VAR = "QWEN_CODE_SYSTEM_SETTINGS_PATH"
DEFAULTS_VAR = "QWEN_CODE_SYSTEM_DEFAULTS_PATH"
ENV_ENABLED = "QWEN_TELEMETRY_ENABLED"
# variables that win over the settings' endpoint (for logs), in the order Qwen Code reads them
ENV_ENDPOINTS = ("QWEN_TELEMETRY_OTLP_LOGS_ENDPOINT", "QWEN_TELEMETRY_OTLP_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_ENDPOINT")
ENV_PROTOCOL = "QWEN_TELEMETRY_OTLP_PROTOCOL"
ENV_OUTFILE = "QWEN_TELEMETRY_OUTFILE"
BLOCK = "telemetry"


class SettingsError(Exception):
    """A settings file aitrack cannot edit safely: one line naming the fix."""


# ---------------------------------------------------------------- where the files are


def user_file(env: Mapping[str, str] | None = None) -> Path:
    return locate.settings_dir(env) / "settings.json"


def system_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(SYSTEM_VAR):
        return Path(env[SYSTEM_VAR])
    if sys.platform == "darwin":
        return Path("/Library/Application Support/QwenCode/settings.json")
    if sys.platform == "win32":
        return Path(r"C:\ProgramData\qwen-code\settings.json")
    return Path("/etc/qwen-code/settings.json")


def defaults_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(DEFAULTS_VAR):
        return Path(env[DEFAULTS_VAR])
    return system_file(env).with_name("system-defaults.json")


def settings_files(env: Mapping[str, str] | None = None) -> list[str]:
    """Every file whose change may change `points_at_agent`, lowest precedence first."""
    return [str(defaults_file(env)), str(user_file(env)), str(system_file(env))]


# ---------------------------------------------------------------- what aitrack sets


def telemetry_block(url: str, telemetry) -> dict[str, Any]:
    return {"enabled": True, "target": "local", "otlpEndpoint": url, "otlpProtocol": "http",
            "logPrompts": bool(telemetry.log_user_prompts)}


def wanted(link: AgentLink) -> dict[tuple[str, ...], Any]:
    """Key path -> value in the user's settings.json (MISSING: removed). Never the key."""
    out: dict[tuple[str, ...], Any] = {(BLOCK, k): v for k, v in
                                       telemetry_block(link.url, link.telemetry).items()}
    out[(BLOCK, "outfile")] = MISSING
    return out


def found(doc: JsonDoc, link: AgentLink) -> Found:
    block = doc.value().get(BLOCK)
    block = block if isinstance(block, dict) else {}
    return Found([], [f"{BLOCK}.outfile"] if block.get("outfile") else [])


def destinations(data: Mapping[str, Any], url: str) -> list[Destination]:
    """Where the user's settings send OTLP, other than the agent at `url` (no header setting:
    headers come from the environment only)."""
    block = data.get(BLOCK) if isinstance(data.get(BLOCK), dict) else {}
    endpoint = str(block.get("otlpEndpoint") or "").strip()
    if not endpoint or endpoint.rstrip("/") == url:
        return []
    protocol = "http/json" if block.get("otlpProtocol") == "http" else "grpc"
    return [Destination(None, endpoint, protocol, {})]


def raw(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def machine_snippet(link: AgentLink, os_name: str) -> str:
    """The machine's settings.json IT deploys (it wins over each user's file): no key."""
    return json.dumps({BLOCK: telemetry_block(link.url, link.telemetry)}, indent=2) + "\n"


# ---------------------------------------------------------------- reading the settings


def parse(text: str, path: Path) -> JsonDoc:
    try:
        doc = JsonDoc(text)
    except ValueError as exc:
        raise SettingsError(f"{path} is not plain JSON ({exc}); aitrack edits only a file it "
                            "can give back byte for byte: remove its comments and trailing "
                            "commas, then try again") from None
    block = doc.get((BLOCK,))
    if block is not MISSING and not isinstance(block, dict):
        raise SettingsError(f"{path}: \"{BLOCK}\" must be an object: fix it, then try again")
    return doc


def diagnose(port: int, env: Mapping[str, str] | None = None) -> str | None:
    """None when Qwen Code, started in this environment, sends its telemetry to the agent on
    `port`; otherwise why not, in a few words. (A workspace's `.qwen/settings.json` may
    still differ, per project.)"""
    env = os.environ if env is None else env
    doc, origin = json_layers.merged(Path(p) for p in settings_files(env))
    block = json_layers.get(doc, (BLOCK,))
    block = block if isinstance(block, dict) else {}
    url = agent_url(port)
    enabled = env.get(ENV_ENABLED)
    on = enabled in ("true", "1") if enabled is not None else block.get("enabled") is True
    if not on:
        return "telemetry is not switched on (" + (
            f"{ENV_ENABLED}={enabled})" if enabled is not None else "telemetry.enabled)")
    var = next((v for v in ENV_ENDPOINTS if env.get(v)), None)
    endpoint = (env[var] if var else str(block.get("otlpEndpoint") or "")).rstrip("/")
    if endpoint != url:
        where = var or origin.get((BLOCK, "otlpEndpoint"))
        return (f"the OTLP endpoint is {shown(endpoint)}" + (f" ({where})" if where else "")
                if endpoint else "telemetry.otlpEndpoint is not set")
    protocol = env.get(ENV_PROTOCOL) or block.get("otlpProtocol")
    if protocol != "http":
        return f"the OTLP protocol is {protocol or 'grpc (the default)'}, not http"
    if env.get(ENV_OUTFILE) or block.get("outfile"):
        return "telemetry goes to a file (telemetry.outfile)"
    return None


def points_at_agent(port: int, env: Mapping[str, str] | None = None) -> bool:
    return diagnose(port, env) is None


def stored_headers(env: Mapping[str, str] | None = None, own_header: str | None = None
                   ) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Qwen Code's settings hold no OTLP headers: nothing to report."""
    return [], []
