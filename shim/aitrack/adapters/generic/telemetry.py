"""What a generic tool's telemetry adds: the GenAI semantic convention's token usage."""

from __future__ import annotations

from aitrack.adapters.generic import NAME
from aitrack.domain.records import Contribution, Point

__all__ = ["NAME", "contributions", "entrypoint", "log_contributions", "tool_session_id"]


def contributions(point: Point, delta: float) -> list[Contribution]:
    """`gen_ai.client.token.usage` (histogram; `gen_ai.token.type` = input | output)."""
    token_type = point.attrs.get("gen_ai.token.type")
    if point.metric != "gen_ai.client.token.usage" or token_type not in ("input", "output"):
        return []
    model = point.attrs.get("gen_ai.response.model") or point.attrs.get("gen_ai.request.model", "")
    return [Contribution("tokens", model, token_type, delta)]


def log_contributions(attrs: dict[str, str], prices) -> list[Contribution]:
    return []


def tool_session_id(attrs: dict[str, str]) -> str | None:
    """The tool's own session id, from datapoint or log record attributes."""
    return attrs.get("session.id") or None


def entrypoint(attrs: dict[str, str]) -> str | None:
    return attrs.get("service.name") or None
