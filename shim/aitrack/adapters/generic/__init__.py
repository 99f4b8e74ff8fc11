"""Any OTLP-emitting command (`aitrack run`): standard OTEL_* variables, GenAI conventions.

Usage is read from the OpenTelemetry GenAI semantic convention metric
`gen_ai.client.token.usage` (telemetry.py). Not a registered tool: the fallback for commands
and telemetry no adapter claims.
"""

from __future__ import annotations

from aitrack.adapters import Sink, otel_env

NAME = "run"
TITLE = "a command"
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


def is_session(args: list[str]) -> bool:
    return True
