"""What Codex's telemetry adds to the ledger: its per-response log events."""

from __future__ import annotations

from aitrack.adapters.codex import NAME
from aitrack.domain import tokens
from aitrack.domain.records import Contribution, Point

__all__ = ["NAME", "contributions", "entrypoint", "log_contributions", "response_usage",
           "tool_session_id"]

_DECISIONS = {"approved": "accept", "approved_for_session": "accept",
              "approved_execpolicy_amendment": "accept", "denied": "reject", "abort": "reject"}


def contributions(point: Point, delta: float) -> list[Contribution]:
    return []  # usage comes from the log events, which name their session


def log_contributions(attrs: dict[str, str], prices) -> list[Contribution]:
    event = attrs.get("event.name")
    if event == "codex.sse_event":
        if attrs.get("event.kind") != "response.completed" or "input_token_count" not in attrs:
            return []
        return response_usage(attrs.get("model") or attrs.get("slug") or "", {
            "input": tokens.count(attrs.get("input_token_count")),
            "cached": tokens.count(attrs.get("cached_token_count")),
            "cache_write": tokens.count(attrs.get("cache_write_token_count")),
            "output": tokens.count(attrs.get("output_token_count")),
            "reasoning": tokens.count(attrs.get("reasoning_token_count")),
        }, prices)
    if event == "codex.tool_decision":
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


def tool_session_id(attrs: dict[str, str]) -> str | None:
    """The conversation (thread) id on log records; Codex's metrics carry none."""
    return attrs.get("conversation.id") or attrs.get("thread.id") or None


def entrypoint(attrs: dict[str, str]) -> str | None:
    """codex_exec, codex_cli_rs, codex-app-server... (`originator`, else `service.name`)."""
    return attrs.get("originator") or attrs.get("service.name") or None
