"""What Codex's telemetry adds to the ledger: its per-response log events.

Facts (checked with 0.169.0): each billed response is a `codex.sse_event` log record of kind
`response.completed` with its token counts, the conversation (thread, = session) id and the
model as requested; it names no response id (the rollout's `token_usage_record` does), so it
meets the rollout's record of the same response on session and figures. Metrics carry no
session id: they are forwarded untouched and count nothing here.

The TUI's title request: for each prompt the TUI starts a conversation of its own (its
`codex.conversation_starts` comes within tens of milliseconds of the prompt's
`codex.user_prompt`, from the same front end, read-only and with no MCP servers, where the
TUI's own conversations have the TUI's MCP server), sends one request in it and never writes
it to a rollout. That conversation is its prompting session's side conversation: its request
counts there (`side_start`, tied by the core to the one session of the same front end with a
prompt in the last SIDE_WINDOW_S; with two prompts that close, it stays a session of its own
rather than a guess).
"""

from __future__ import annotations

from aitrack.adapters.codex import NAME
from aitrack.domain import tokens
from aitrack.domain.moments import epoch
from aitrack.domain.records import Contribution, Point, Request

__all__ = ["NAME", "SIDE_WINDOW_S", "contributions", "entrypoint", "log_contributions",
           "log_request", "prompt", "response_usage", "side_start", "tool_session_id"]

SIDE_WINDOW_S = 2.0  # a title conversation starts this soon after its prompt (seen: 21-49 ms)
_DECISIONS = {"approved": "accept", "approved_for_session": "accept",
              "approved_execpolicy_amendment": "accept", "denied": "reject", "abort": "reject"}
_TUI = ("codex-tui", "codex_cli_rs")  # the TUI's originators


def contributions(point: Point, delta: float) -> list[Contribution]:
    return []  # usage comes from the log events, which name their session


def log_request(attrs: dict[str, str], prices) -> Request | None:
    """The billed response a `codex.sse_event` of kind `response.completed` reports."""
    if attrs.get("event.name") != "codex.sse_event" or \
            attrs.get("event.kind") != "response.completed" or "input_token_count" not in attrs:
        return None
    model = attrs.get("model") or attrs.get("slug") or ""
    figures = {c.name: int(c.value) for c in response_usage(model, {
        "input": tokens.count(attrs.get("input_token_count")),
        "cached": tokens.count(attrs.get("cached_token_count")),
        "cache_write": tokens.count(attrs.get("cache_write_token_count")),
        "output": tokens.count(attrs.get("output_token_count")),
        "reasoning": tokens.count(attrs.get("reasoning_token_count")),
    }, prices)}
    long = 1 if any(n.startswith("long_") for n in figures) else 0
    return Request(None, epoch(attrs.get("event.timestamp")), model,
                   (*(figures.get(t, 0) for t in tokens.FIGURES), long))


def log_contributions(attrs: dict[str, str], prices) -> list[Contribution]:
    if attrs.get("event.name") == "codex.tool_decision":
        decision = _DECISIONS.get(attrs.get("decision", ""))
        tool = attrs.get("tool_name") or "unknown"
        return [Contribution("decision", tool, decision, 1)] if decision else []
    return []


def response_usage(model: str, usage: dict[str, int], prices) -> list[Contribution]:
    """One response's usage in ledger types (the rollout reader uses this too)."""
    cached, write = usage.get("cached", 0), usage.get("cache_write", 0)
    ledger = {"input": max(0, usage.get("input", 0) - cached - write), "cache_read": cached,
              "cache_creation": write, "output": usage.get("output", 0),
              "reasoning": usage.get("reasoning", 0)}
    return [Contribution("tokens", model, t, v)
            for t, v in tokens.request(ledger, model, prices).items()]


def prompt(attrs: dict[str, str]) -> bool:
    return attrs.get("event.name") == "codex.user_prompt"


def side_start(attrs: dict[str, str]) -> bool:
    """A conversation the TUI may have started for a title request (see the docstring)."""
    return (attrs.get("event.name") == "codex.conversation_starts"
            and attrs.get("originator") in _TUI and not attrs.get("mcp_servers")
            and attrs.get("sandbox_policy") == "read-only")


def tool_session_id(attrs: dict[str, str]) -> str | None:
    """The conversation (thread) id on log records; Codex's metrics carry none."""
    return attrs.get("conversation.id") or attrs.get("thread.id") or None


def entrypoint(attrs: dict[str, str]) -> str | None:
    """codex_exec, codex_cli_rs, codex-app-server... (`originator`, else `service.name`)."""
    return attrs.get("originator") or attrs.get("service.name") or None

