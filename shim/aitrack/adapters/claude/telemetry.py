"""What Claude Code's telemetry adds to the ledger (metrics and `api_request` log events).

Facts (checked with 2.1.328): every billed request is an `api_request` log event with its
`request_id` (the API's request-id header, also the transcript line's `requestId`), the
model that answered (`model`), its tokens by type and its cost (`cost_usd`), including
requests no transcript line shows (`query_source` `generate_session_title`: the TUI's
title request per prompt). The metrics `claude_code.token.usage` and `claude_code.cost.usage`
sum the same requests per session under the model Claude Code requested: session totals.
`--continue` sends its start-up events (`managed_settings_resolved`, `plugin_loaded`) and
`claude_code.session.count` (`start_type` "continue") under a fresh `session.id` that no
request ever uses, then the continued session's id: that id is no session.
"""

from __future__ import annotations

from aitrack.adapters.claude import NAME
from aitrack.domain import tokens
from aitrack.domain.moments import epoch
from aitrack.domain.records import Contribution, Point, Request

__all__ = ["NAME", "contributions", "entrypoint", "log_contributions", "log_request",
           "opens_session", "tool_session_id"]

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
# records a session's start sends before it is known which session it is (see above)
_START_UP = frozenset(("managed_settings_resolved", "plugin_loaded"))
SESSION_COUNT = "claude_code.session.count"


def contributions(point: Point, delta: float) -> list[Contribution]:
    """Metrics: the session totals (tokens and cost per requested model), and other
    figures."""
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


def log_request(attrs: dict[str, str], prices) -> Request | None:
    """The billed request an `api_request` event reports."""
    if attrs.get("event.name") != "api_request":
        return None
    model = attrs.get("model", "")
    figures = {t: tokens.count(attrs.get(k)) for k, t in _REQUEST.items()}
    long = 1 if prices is not None and prices.is_long_context(
        model, tokens.prompt(figures)) else 0
    cost = attrs.get("cost_usd")
    try:
        usd = float(cost) if cost not in (None, "") else None
    except ValueError:
        usd = None
    return Request(attrs.get("request_id"), epoch(attrs.get("event.timestamp")), model,
                   (*(figures.get(t, 0) for t in tokens.FIGURES[:5]), 0, long), cost=usd)


def log_contributions(attrs: dict[str, str], prices) -> list[Contribution]:
    return []  # api_request events are requests (log_request); nothing else counts


def opens_session(name: str, attrs: dict[str, str]) -> bool:
    """A record that counts nothing makes its session known, except the start-up records
    and a `--continue` run's session count, sent under an id no request uses."""
    if name in _START_UP:
        return False
    return not (name == SESSION_COUNT and attrs.get("start_type") == "continue")


def tool_session_id(attrs: dict[str, str]) -> str | None:
    """The tool's own session id, from datapoint or log record attributes."""
    return attrs.get("session.id") or None


def entrypoint(attrs: dict[str, str]) -> str | None:
    """cli, sdk-cli, claude-vscode, claude-desktop... (`app.entrypoint`)."""
    return attrs.get("app.entrypoint") or None

