"""Claude Code: telemetry switched on and pointed at the receiver through the environment.

Token types map directly: Claude's `input` already excludes cache reads and writes.
"""

from __future__ import annotations

from aitrack.adapters import Sink, otel_env
from aitrack.records import Contribution, Point

NAME = "claude"
EXECUTABLE = "claude"
BIN_ENV = "AITRACK_CLAUDE_BIN"

_TOKEN_TYPES = {"input": "input", "output": "output", "cacheRead": "cache_read",
                "cacheCreation": "cache_creation"}
_COUNTERS = {
    "claude_code.commit.count": "commits",
    "claude_code.pull_request.count": "pull_requests",
    "claude_code.active_time.total": "active_time_s",
}


def prepare(args: list[str], env: dict[str, str], sink: Sink) -> tuple[list[str], dict[str, str]]:
    otel_env.standard(env, sink, protocol="http/json")
    env["CLAUDE_CODE_ENABLE_TELEMETRY"] = "1"
    env["OTEL_LOG_USER_PROMPTS"] = "1" if sink.telemetry["log_user_prompts"] else "0"
    env["OTEL_LOG_TOOL_DETAILS"] = "1" if sink.telemetry["log_tool_details"] else "0"
    env.pop("OTEL_LOG_ASSISTANT_RESPONSES", None)
    return args, env


def contributions(point: Point, delta: float) -> list[Contribution]:
    model = point.attrs.get("model", "")
    name = point.metric
    if name == "claude_code.token.usage":
        token_type = _TOKEN_TYPES.get(point.attrs.get("type", ""))
        return [Contribution("tokens", model, token_type, delta)] if token_type else []
    if name == "claude_code.cost.usage":
        return [Contribution("metric", model, "cost_usd", delta)]
    if name == "claude_code.lines_of_code.count":
        kind = point.attrs.get("type")
        return [Contribution("metric", "", f"lines_{kind}", delta)] if kind in (
            "added", "removed") else []
    if name in _COUNTERS:
        return [Contribution("metric", "", _COUNTERS[name], delta)]
    return []


def tool_session_id(attrs: dict[str, str]) -> str | None:
    """The tool's own session id, from datapoint or log record attributes."""
    return attrs.get("session.id") or None
