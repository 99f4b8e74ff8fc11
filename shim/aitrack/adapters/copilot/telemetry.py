"""What Copilot CLI's telemetry adds to the ledger: its `chat` spans, one per request.

Its metrics carry no session and are cumulative per process (forwarded, never counted); no
logs signal. Each `chat` span names its session (gen_ai.conversation.id) and the request's
identity (gen_ai.response.id, `request_id`), which the file readers key by too. A span is
one request (`span_request`); its premium-request charge is a figure of its own.
"""

from __future__ import annotations

from aitrack.adapters.copilot import NAME
from aitrack.domain import tokens
from aitrack.domain.records import Contribution, Point, Request

__all__ = ["NAME", "USAGE_SIGNALS", "contributions", "entrypoint", "log_contributions",
           "request_id", "request_usage", "span_contributions", "span_request",
           "tool_session_id"]

# the signals whose records carry usage: the receivers keep and decode these for Copilot
USAGE_SIGNALS = ("traces",)
PREMIUM = "premium_requests"
_USAGE = {"input": "gen_ai.usage.input_tokens", "output": "gen_ai.usage.output_tokens",
          "cache_read": "gen_ai.usage.cache_read.input_tokens",
          "cache_write": "gen_ai.usage.cache_write.input_tokens",
          "reasoning": "gen_ai.usage.reasoning.output_tokens"}


def contributions(point: Point, delta: float) -> list[Contribution]:
    return []  # cumulative per process and sessionless: the spans count every request


def log_contributions(attrs: dict[str, str], prices) -> list[Contribution]:
    return []


def is_request(attrs: dict) -> bool:
    """A model request's span (`chat <model>`), not a turn's (`invoke_agent`) or a tool's."""
    return attrs.get("gen_ai.operation.name") == "chat" and _USAGE["input"] in attrs


def span_request(attrs: dict[str, str], prices) -> Request | None:
    """The billed request a `chat` span reports, under the model it was requested as (the
    name its session's events give the same request). It meets the events' record of it on
    session, model and figures, not on the response id: the events tell their requests
    apart by their own record number (a local provider may answer every request under one
    id), which a span does not carry."""
    if not is_request(attrs):
        return None
    model = _model(attrs)
    usage = {k: tokens.count(str(attrs.get(a, "") or "")) for k, a in _USAGE.items()}
    figures = {c.name: int(c.value) for c in request_usage(model, usage, prices)}
    long = 1 if any(n.startswith("long_") for n in figures) else 0
    return Request(None, None, model, (*(figures.get(t, 0) for t in tokens.FIGURES), long))


def span_contributions(attrs: dict[str, str], prices) -> list[Contribution]:
    """A request's premium-request charge (its tokens: span_request)."""
    if not is_request(attrs):
        return []
    premium = _float(attrs.get("github.copilot.cost"))
    return [Contribution("metric", _model(attrs), PREMIUM, premium)] if premium else []


def _model(attrs: dict) -> str:
    return str(attrs.get("gen_ai.request.model") or attrs.get("gen_ai.response.model") or "")


def request_usage(model: str, usage: dict[str, int], prices) -> list[Contribution]:
    """One request's figures in ledger types (the file readers use this too): Copilot's input
    includes cache reads and writes, its output includes reasoning."""
    read, write = usage.get("cache_read", 0), usage.get("cache_write", 0)
    ledger = {"input": max(0, usage.get("input", 0) - read - write), "cache_read": read,
              "cache_creation": write, "output": usage.get("output", 0),
              "reasoning": usage.get("reasoning", 0)}
    return [Contribution("tokens", model, t, v)
            for t, v in tokens.request(ledger, model, prices).items()]


def request_id(attrs: dict) -> str | None:
    """The request's identity: the provider's response id."""
    return str(attrs.get("gen_ai.response.id") or "") or None


def tool_session_id(attrs: dict[str, str]) -> str | None:
    return attrs.get("gen_ai.conversation.id") or None


def entrypoint(attrs: dict[str, str]) -> str | None:
    return None  # the CLI only: service.name is github-copilot wherever it runs


def _float(value) -> float:
    try:
        return max(0.0, float(value)) if value not in (None, "") else 0.0
    except (TypeError, ValueError):
        return 0.0
