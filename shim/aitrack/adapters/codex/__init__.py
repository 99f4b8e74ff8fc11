"""OpenAI Codex CLI: telemetry configured with `-c otel.*` overrides pointing at the receiver.

OpenAI token semantics: `input` INCLUDES `cached_input` and `output` INCLUDES
`reasoning_output`; the ledger stores uncached input, so cached input moves from input
to cache_read. Codex's `total` is derived, not stored.
"""

from __future__ import annotations

from aitrack.adapters import Sink, otel_env
from aitrack.records import Contribution, Point

NAME = "codex"
EXECUTABLE = "codex"
BIN_ENV = "AITRACK_CODEX_BIN"

# token_type -> [(ledger token type, sign)]
_TOKENS: dict[str, list[tuple[str, int]]] = {
    "input": [("input", 1)],
    "cached_input": [("cache_read", 1), ("input", -1)],
    "output": [("output", 1)],
    "reasoning_output": [("reasoning", 1)],
    "cache_write_input": [("cache_creation", 1)],
}
_EXPORTERS = {"metrics": "otel.metrics_exporter", "logs": "otel.exporter",
              "traces": "otel.trace_exporter"}


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def prepare(args: list[str], env: dict[str, str], sink: Sink) -> tuple[list[str], dict[str, str]]:
    headers = "{" + f"{_toml_str(sink.secret_header)}={_toml_str(sink.secret)}" + "}"
    overrides: list[str] = []
    for signal, key in _EXPORTERS.items():
        if signal in sink.signals:
            exporter = (f"{{otlp-http={{endpoint={_toml_str(sink.signal_url(signal))},"
                        f"protocol=\"json\",headers={headers}}}}}")
        else:
            exporter = '"none"'
        overrides += ["-c", f"{key}={exporter}"]
    environment = sink.attributes.get("environment")
    if environment:
        overrides += ["-c", f"otel.environment={_toml_str(environment)}"]
    prompts = "true" if sink.telemetry["log_user_prompts"] else "false"
    overrides += ["-c", f"otel.log_user_prompt={prompts}"]
    env["OTEL_RESOURCE_ATTRIBUTES"] = otel_env.resource_attributes(
        env.get("OTEL_RESOURCE_ATTRIBUTES"), sink.attributes)
    return overrides + args, env


def contributions(point: Point, delta: float) -> list[Contribution]:
    if point.metric != "codex.turn.token_usage":
        return []
    model = point.attrs.get("model", "")
    return [Contribution("tokens", model, token_type, sign * delta)
            for token_type, sign in _TOKENS.get(point.attrs.get("token_type", ""), [])]


def tool_session_id(attrs: dict[str, str]) -> str | None:
    """The tool's own session id, from datapoint or log record attributes."""
    return attrs.get("conversation.id") or attrs.get("thread.id") or None
