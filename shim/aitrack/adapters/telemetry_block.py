"""Settings whose `telemetry` object names an OTLP endpoint: Gemini CLI's, and Qwen Code's
(a fork of it, with the same keys and rules under other names).

Such a tool merges `system-defaults.json`, the user's `settings.json`, the workspace's and the
machine's `settings.json`, later files winning, and its `*_TELEMETRY_*` variables (and
`OTEL_EXPORTER_OTLP_ENDPOINT`) win over all of them. aitrack sets `telemetry.enabled`,
`target` "local", `otlpEndpoint` (the agent), `otlpProtocol` "http" (OTLP/HTTP: JSON) and
`logPrompts` in the user's file, and removes `outfile` (a file export replaces OTLP). The
files take comments; aitrack edits only a file without them, so it can give it back byte
for byte. There is no header setting: nothing aitrack writes holds a key, and the agent
admits these tools by the sending process's user (peer uid).

`BlockSettings` is one tool's settings contract (install/wiring/__init__.py), built from the
names its package gives (`Names`); the tool's settings.py binds its methods as module names.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aitrack.adapters import json_layers
from aitrack.adapters.endpoints import (
    AgentLink,
    Destination,
    Found,
    SettingsError,
    agent_url,
    shown,
)
from aitrack.adapters.json_doc import MISSING, JsonDoc, raw  # noqa: F401 - raw: the contract's

BLOCK = "telemetry"


@dataclass(frozen=True)
class Names:
    """What one tool calls its files and variables."""
    user_file: Callable[[Mapping[str, str] | None], Path]
    machine_dirs: tuple[str, str, str]  # macOS, Windows, elsewhere: where settings.json is
    system_var: str  # a machine settings file of another path
    defaults_var: str  # a system-defaults file of another path
    env_enabled: str
    env_endpoints: tuple[str, ...]  # variables that win over the settings' endpoint, in order
    env_protocol: str
    env_outfile: str


class BlockSettings:
    """The settings contract of a tool whose `telemetry` object is its OTLP set-up."""

    def __init__(self, names: Names):
        self.names = names

    # ------------------------------------------------------------ where the files are

    def user_file(self, env: Mapping[str, str] | None = None) -> Path:
        return self.names.user_file(env)

    def system_file(self, env: Mapping[str, str] | None = None) -> Path:
        env = os.environ if env is None else env
        if env.get(self.names.system_var):
            return Path(env[self.names.system_var])
        darwin, windows, other = self.names.machine_dirs
        folder = darwin if sys.platform == "darwin" else \
            windows if sys.platform == "win32" else other
        return Path(folder) / "settings.json"

    def defaults_file(self, env: Mapping[str, str] | None = None) -> Path:
        env = os.environ if env is None else env
        if env.get(self.names.defaults_var):
            return Path(env[self.names.defaults_var])
        return self.system_file(env).with_name("system-defaults.json")

    def settings_files(self, env: Mapping[str, str] | None = None) -> list[str]:
        """Every file whose change may change `points_at_agent`, lowest precedence first."""
        return [str(self.defaults_file(env)), str(self.user_file(env)),
                str(self.system_file(env))]

    # ------------------------------------------------------------ what aitrack sets

    def wanted(self, link: AgentLink) -> dict[tuple[str, ...], Any]:
        """Key path -> value in the user's settings.json (MISSING: removed). Never the key."""
        out: dict[tuple[str, ...], Any] = {(BLOCK, k): v for k, v in
                                           telemetry_block(link.url, link.telemetry).items()}
        out[(BLOCK, "outfile")] = MISSING
        return out

    def machine_snippet(self, link: AgentLink, os_name: str) -> str:
        """The machine's settings.json IT deploys (it wins over each user's file): no key."""
        return json.dumps({BLOCK: telemetry_block(link.url, link.telemetry)}, indent=2) + "\n"

    # ------------------------------------------------------------ reading the settings

    def diagnose(self, port: int, env: Mapping[str, str] | None = None) -> str | None:
        """None when the tool, started in this environment, sends its telemetry to the agent
        on `port`; otherwise why not, in a few words. (A workspace's settings may still
        differ, per project.)"""
        env = os.environ if env is None else env
        doc, origin = json_layers.merged(Path(p) for p in self.settings_files(env))
        block = json_layers.get(doc, (BLOCK,))
        block = block if isinstance(block, dict) else {}
        enabled = env.get(self.names.env_enabled)
        on = enabled in ("true", "1") if enabled is not None else block.get("enabled") is True
        if not on:
            return "telemetry is not switched on (" + (
                f"{self.names.env_enabled}={enabled})" if enabled is not None
                else "telemetry.enabled)")
        var = next((v for v in self.names.env_endpoints if env.get(v)), None)
        endpoint = (env[var] if var else str(block.get("otlpEndpoint") or "")).rstrip("/")
        if endpoint != agent_url(port):
            where = var or origin.get((BLOCK, "otlpEndpoint"))
            return (f"the OTLP endpoint is {shown(endpoint)}" + (f" ({where})" if where else "")
                    if endpoint else "telemetry.otlpEndpoint is not set")
        protocol = env.get(self.names.env_protocol) or block.get("otlpProtocol")
        if protocol != "http":
            return f"the OTLP protocol is {protocol or 'grpc (the default)'}, not http"
        if env.get(self.names.env_outfile) or block.get("outfile"):
            return "telemetry goes to a file (telemetry.outfile)"
        return None

    def points_at_agent(self, port: int, env: Mapping[str, str] | None = None) -> bool:
        return self.diagnose(port, env) is None


def telemetry_block(url: str, telemetry) -> dict[str, Any]:
    return {"enabled": True, "target": "local", "otlpEndpoint": url, "otlpProtocol": "http",
            "logPrompts": bool(telemetry.log_user_prompts)}


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


def stored_headers(env: Mapping[str, str] | None = None, own_header: str | None = None
                   ) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """The settings hold no OTLP headers: nothing to report."""
    return [], []
