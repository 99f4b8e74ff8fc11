"""Qwen Code's own settings, pointed at the per-user agent (`aitrack agent install`).

Qwen Code 0.24.4 merges `system-defaults.json`, the user's `~/.qwen/settings.json`
(`$QWEN_HOME/settings.json`), the workspace's `.qwen/settings.json` and the machine's
`settings.json` (`/etc/qwen-code`, `/Library/Application Support/QwenCode`,
`C:\\ProgramData\\qwen-code`; `QWEN_CODE_SYSTEM_SETTINGS_PATH`), later files winning, and
its `QWEN_TELEMETRY_*` variables (and `OTEL_EXPORTER_OTLP_ENDPOINT`) win over all of them.
What aitrack sets in its `telemetry` object, and why no key, is adapters/telemetry_block.py's
(Qwen Code keeps Gemini CLI's keys, of which it is a fork).

No key in the file: Qwen Code has no header setting and no headers helper (only
`OTEL_EXPORTER_OTLP_HEADERS` from the environment), so its requests reach the agent without
the agent's key, which must admit them by the sending process's user (peer uid).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aitrack.adapters import telemetry_block
from aitrack.adapters.json_doc import MISSING  # noqa: F401 - the settings contract's name
from aitrack.adapters.qwen import locate
from aitrack.adapters.telemetry_block import (  # noqa: F401 - the settings contract's names
    SettingsError,
    destinations,
    found,
    parse,
    raw,
    stored_headers,
)

NAME = "qwen"
TITLE = "Qwen Code"
TAKES_KEY = False  # no header setting: the agent admits it by peer uid, never by a key here


def _user_file(env: Mapping[str, str] | None = None) -> Path:
    return locate.settings_dir(env) / "settings.json"


_SETTINGS = telemetry_block.BlockSettings(telemetry_block.Names(
    user_file=_user_file,
    machine_dirs=("/Library/Application Support/QwenCode", r"C:\ProgramData\qwen-code",
                  "/etc/qwen-code"),
    system_var="QWEN_CODE_SYSTEM_SETTINGS_PATH",
    defaults_var="QWEN_CODE_SYSTEM_DEFAULTS_PATH",
    env_enabled="QWEN_TELEMETRY_ENABLED",
    # for logs, in the order Qwen Code reads them
    env_endpoints=("QWEN_TELEMETRY_OTLP_LOGS_ENDPOINT", "QWEN_TELEMETRY_OTLP_ENDPOINT",
                   "OTEL_EXPORTER_OTLP_ENDPOINT"),
    env_protocol="QWEN_TELEMETRY_OTLP_PROTOCOL",
    env_outfile="QWEN_TELEMETRY_OUTFILE"))

user_file = _SETTINGS.user_file
settings_files = _SETTINGS.settings_files
wanted = _SETTINGS.wanted
machine_snippet = _SETTINGS.machine_snippet
diagnose = _SETTINGS.diagnose
points_at_agent = _SETTINGS.points_at_agent
