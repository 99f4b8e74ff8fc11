"""Claude Code: telemetry switched on and pointed at a receiver through the environment.

Token types map directly: Claude's `input` already excludes cache reads and writes. Usage is
counted from `claude_code.token.usage`; the per-request `api_request` log events add what
aggregates cannot tell: the 1-hour share of cache writes and long-context requests.
"""

from __future__ import annotations

from aitrack.adapters import Sink, otel_env
from aitrack.domain import tokens
from aitrack.domain.records import Contribution, Point

NAME = "claude"
EXECUTABLE = "claude"
BIN_ENV = "AITRACK_CLAUDE_BIN"
# without an agent: a per-run receiver, or only the transcripts read at exit
WITHOUT_AGENT = "receiver"
# with the agent: its telemetry names the wrapper's run (the headers helper sends
# AITRACK_SESSION_ID as the run header)
TELLS_RUN = True
SERVICE_NAMES = ("claude-code",)
# claude_code.lines_of_code.count, commit.count, pull_request.count: git is not asked
REPORTS_CONTRIBUTIONS = True
# resumes a session by its own id (shown beside aitrack's in `aitrack report session`)
RESUME = "claude --resume {id}"
# a Claude subscription's usage limits reset 5 hours after a window's first message
# (`aitrack report blocks`)
BILLING_WINDOW_H = 5

_TOKEN_TYPES = {"input": "input", "output": "output", "cacheRead": "cache_read",
                "cacheCreation": "cache_creation"}
_COUNTERS = {
    "claude_code.commit.count": "commits",
    "claude_code.pull_request.count": "pull_requests",
    "claude_code.active_time.total": "active_time_s",
}
_DECISIONS = {"accept": "accept", "reject": "reject"}
# claude subcommands and flags that run no session
_NOT_SESSIONS = frozenset(("--version", "-v", "--help", "-h", "update", "doctor", "install",
                           "migrate-installer", "setup-token", "config", "mcp", "plugin"))
# api_request attributes -> the request's figures in ledger token types
_REQUEST = {"input_tokens": "input", "output_tokens": "output",
            "cache_read_tokens": "cache_read", "cache_creation_tokens": "cache_creation",
            "cache_creation_1h_tokens": "cache_creation_1h"}


def prepare(args: list[str], env: dict[str, str], sink: Sink) -> tuple[list[str], dict[str, str]]:
    otel_env.standard(env, sink, protocol="http/json")
    env["CLAUDE_CODE_ENABLE_TELEMETRY"] = "1"
    env["OTEL_METRICS_INCLUDE_ENTRYPOINT"] = "true"  # app.entrypoint: terminal, IDE, app...
    env["OTEL_LOG_USER_PROMPTS"] = "1" if sink.telemetry["log_user_prompts"] else "0"
    env["OTEL_LOG_TOOL_DETAILS"] = "1" if sink.telemetry["log_tool_details"] else "0"
    env.pop("OTEL_LOG_ASSISTANT_RESPONSES", None)
    return args, env


def is_session(args: list[str]) -> bool:
    return not (args and args[0] in _NOT_SESSIONS)


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
    if name == "claude_code.code_edit_tool.decision":
        decision = _DECISIONS.get(point.attrs.get("decision", ""))
        tool = point.attrs.get("tool_name") or point.attrs.get("tool") or "unknown"
        return [Contribution("decision", tool, decision, delta)] if decision else []
    return []


def log_contributions(attrs: dict[str, str], prices) -> list[Contribution]:
    """The subsets of one API request's usage (its base figures come from the metrics)."""
    if attrs.get("event.name") != "api_request":
        return []
    model = attrs.get("model", "")
    request = {t: tokens.count(attrs.get(k)) for k, t in _REQUEST.items()}
    return [Contribution("tokens", model, t, v)
            for t, v in tokens.request(request, model, prices).items() if t in tokens.SUBSETS]


def tool_session_id(attrs: dict[str, str]) -> str | None:
    """The tool's own session id, from datapoint or log record attributes."""
    return attrs.get("session.id") or None


def entrypoint(attrs: dict[str, str]) -> str | None:
    """cli, sdk-cli, claude-vscode, claude-desktop... (`app.entrypoint`)."""
    return attrs.get("app.entrypoint") or None
