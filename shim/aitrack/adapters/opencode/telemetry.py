"""What opencode's telemetry adds to the ledger: nothing. Its OTLP logs are application log
lines and its spans carry tokens only with an experimental flag, unflushed at exit (see the
package docstring); its usage comes from its database (transcripts.py). Payloads it sends
are forwarded as they are."""

from __future__ import annotations

from aitrack.adapters.opencode import NAME
from aitrack.domain.records import Contribution, Point

__all__ = ["NAME", "contributions", "entrypoint", "log_contributions", "tool_session_id"]


def contributions(point: Point, delta: float) -> list[Contribution]:
    return []


def log_contributions(attrs: dict[str, str], prices) -> list[Contribution]:
    return []


def tool_session_id(attrs: dict[str, str]) -> str | None:
    return attrs.get("session.id") or None


def entrypoint(attrs: dict[str, str]) -> str | None:
    return None
