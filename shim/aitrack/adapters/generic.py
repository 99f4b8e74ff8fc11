"""Any OTLP-emitting command (`aitrack run`): standard OTEL_* variables, GenAI conventions.

Usage is read from the OpenTelemetry GenAI semantic convention metric
`gen_ai.client.token.usage` (histogram; `gen_ai.token.type` = input | output).
"""

from __future__ import annotations

from collections.abc import Iterable

from aitrack.adapters import Sink, otel_env
from aitrack.ledger import Contribution, Point

NAME = "run"
EXECUTABLE = None
BIN_ENV = None


def prepare(args: list[str], env: dict[str, str], sink: Sink) -> tuple[list[str], dict[str, str]]:
    otel_env.standard(env, sink, protocol="http/protobuf")
    return args, env


def contributions(point: Point, delta: float) -> Iterable[Contribution]:
    if point.metric != "gen_ai.client.token.usage":
        return
    token_type = point.attrs.get("gen_ai.token.type")
    model = point.attrs.get("gen_ai.response.model") or point.attrs.get("gen_ai.request.model", "")
    if token_type in ("input", "output"):
        yield Contribution("tokens", model, token_type, delta)


def tool_session_id(point: Point) -> str | None:
    return point.attrs.get("session.id") or None
