"""Any OTLP-emitting command (`aitrack run`): standard OTEL_* variables, GenAI conventions.

Usage is read from the OpenTelemetry GenAI semantic convention metric
`gen_ai.client.token.usage` (histogram; `gen_ai.token.type` = input | output).
"""

from __future__ import annotations

from aitrack.adapters import Sink, otel_env
from aitrack.domain.records import Contribution, Point

NAME = "run"
EXECUTABLE = None
BIN_ENV = None
# without an agent: a per-run receiver, or only the transcripts read at exit
WITHOUT_AGENT = "receiver"
# with the agent: its telemetry is not known to name the wrapper's run
TELLS_RUN = False
SERVICE_NAMES: tuple[str, ...] = ()
REPORTS_CONTRIBUTIONS = False  # a wrapped run's commits are read from git
RESUME = None  # no known way to resume a session by its id
# no known billing window (`aitrack report blocks`)
BILLING_WINDOW_H = None


def prepare(args: list[str], env: dict[str, str], sink: Sink) -> tuple[list[str], dict[str, str]]:
    otel_env.standard(env, sink, protocol="http/protobuf")
    return args, env


def contributions(point: Point, delta: float) -> list[Contribution]:
    token_type = point.attrs.get("gen_ai.token.type")
    if point.metric != "gen_ai.client.token.usage" or token_type not in ("input", "output"):
        return []
    model = point.attrs.get("gen_ai.response.model") or point.attrs.get("gen_ai.request.model", "")
    return [Contribution("tokens", model, token_type, delta)]


def is_session(args: list[str]) -> bool:
    return True


def log_contributions(attrs: dict[str, str], prices) -> list[Contribution]:
    return []


def tool_session_id(attrs: dict[str, str]) -> str | None:
    """The tool's own session id, from datapoint or log record attributes."""
    return attrs.get("session.id") or None


def entrypoint(attrs: dict[str, str]) -> str | None:
    return attrs.get("service.name") or None
