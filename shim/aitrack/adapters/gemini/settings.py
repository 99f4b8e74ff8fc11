"""Gemini CLI's own settings, pointed at the per-user agent (`aitrack agent install`).

Gemini CLI 0.61.0 merges `system-defaults.json`, the user's `~/.gemini/settings.json`
(`$GEMINI_CLI_HOME/.gemini`), the workspace's `.gemini/settings.json` and the machine's
`settings.json` (`/etc/gemini-cli`, `/Library/Application Support/GeminiCli`,
`C:\\ProgramData\\gemini-cli`; `GEMINI_CLI_SYSTEM_SETTINGS_PATH`), later files winning, and
its `GEMINI_TELEMETRY_*` variables (and `OTEL_EXPORTER_OTLP_ENDPOINT`) win over all of them.
What aitrack sets in its `telemetry` object, and why no key, is adapters/telemetry_block.py's
(Qwen Code, its fork, has the same keys): `otlpProtocol` "http" is its only OTLP/HTTP (JSON).

No key in the file: Gemini CLI has no header setting and no headers helper (only
`OTEL_EXPORTER_OTLP_HEADERS` from the environment), so its requests reach the agent without
the agent's key, which must admit them by the sending process's user (peer uid).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aitrack.adapters import telemetry_block
from aitrack.adapters.gemini import locate
from aitrack.adapters.json_doc import MISSING  # noqa: F401 - the settings contract's name
from aitrack.adapters.telemetry_block import (  # noqa: F401 - the settings contract's names
    SettingsError,
    destinations,
    found,
    parse,
    raw,
    stored_headers,
)

NAME = "gemini"
TITLE = "Gemini CLI"
TAKES_KEY = False  # no header setting: the agent admits it by peer uid, never by a key here


def _user_file(env: Mapping[str, str] | None = None) -> Path:
    return locate.gemini_dirs(env)[0] / "settings.json"


_SETTINGS = telemetry_block.BlockSettings(telemetry_block.Names(
    user_file=_user_file,
    machine_dirs=("/Library/Application Support/GeminiCli", r"C:\ProgramData\gemini-cli",
                  "/etc/gemini-cli"),
    system_var="GEMINI_CLI_SYSTEM_SETTINGS_PATH",
    defaults_var="GEMINI_CLI_SYSTEM_DEFAULTS_PATH",
    env_enabled="GEMINI_TELEMETRY_ENABLED",
    # in the order Gemini CLI reads them
    env_endpoints=("GEMINI_TELEMETRY_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    env_protocol="GEMINI_TELEMETRY_OTLP_PROTOCOL",
    env_outfile="GEMINI_TELEMETRY_OUTFILE"))

user_file = _SETTINGS.user_file
settings_files = _SETTINGS.settings_files
wanted = _SETTINGS.wanted
machine_snippet = _SETTINGS.machine_snippet
diagnose = _SETTINGS.diagnose
points_at_agent = _SETTINGS.points_at_agent
