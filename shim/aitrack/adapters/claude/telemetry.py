"""What Claude Code's telemetry adds to the ledger (metrics and `api_request` log events)."""

from __future__ import annotations

from aitrack.adapters.claude import NAME
from aitrack.domain import tokens
from aitrack.domain.records import Contribution, Point

__all__ = ["NAME", "contributions", "entrypoint", "log_contributions", "tool_session_id"]

_TOKEN_TYPES = {"input": "input", "output": "output", "cacheRead": "cache_read",
                "cacheCreation": "cache_creation"}
_COUNTERS = {
    "claude_code.commit.count": "commits",
    "claude_code.pull_request.count": "pull_requests",
    "claude_code.active_time.total": "active_time_s",
}
_DECISIONS = {"accept": "accept", "reject": "reject"}
# api_request attributes -> the request's figures in ledger token types
_REQUEST = {"input_tokens": "input", "output_tokens": "output",
            "cache_read_tokens": "cache_read", "cache_creation_tokens": "cache_creation",
            "cache_creation_1h_tokens": "cache_creation_1h"}


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
