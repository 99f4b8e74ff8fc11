"""One adapter per wrapped tool: how to point it at the receiver and read its usage.

An adapter package provides, in its `__init__` (the start-up path: standard minimum imports):
  NAME: str                   the tool's name in the ledger
  EXECUTABLE: str | None      the binary to look up on PATH (None: given on the command line)
  BIN_ENV: str | None         environment variable overriding the binary's path
  SERVICE_NAMES: tuple        OTLP `service.name`s its telemetry arrives with (at the agent)
  REPORTS_CONTRIBUTIONS: bool whether the tool reports its own lines and commits; when it
                              does not, a wrapped run's commits are read from git at its end
  WITHOUT_AGENT: str          how a run is captured when the tool's settings do not point at
                              the agent: "receiver" (a per-run receiver, `prepare` below) or
                              "transcript" (nothing is told to the tool: its transcripts are
                              read at exit)
  TELLS_RUN: bool             with the agent, whether the tool's telemetry names the wrapper's
                              run (then the agent hears of the run at its start)
  RESUME: str | None          the command that resumes a session, `{id}` its own id (None:
                              the tool has none)
  BILLING_WINDOW_H: float | None
                              the length of the tool's subscription usage windows, in hours
                              (None: it has none), for `aitrack report blocks`
  prepare(args, env, sink) -> (args, env)
                              the child's arguments and environment for a per-run receiver
  is_session(args) -> bool    False for invocations that run no session (--version, --help)
  contributions(point, delta) -> list[Contribution]
                              what a metric datapoint adds to the session's ledger
  log_contributions(attrs, prices) -> list[Contribution]
                              what a log record adds (prices: for long-context tiers, or None)
  tool_session_id(attrs) -> str | None
                              the tool's own session id in datapoint/log attributes
  entrypoint(attrs) -> str | None
                              where the session runs (terminal, IDE, app...), from resource,
                              datapoint or log attributes
and, off the start-up path, `locate` (where its transcripts are; the sessions a run ran),
`transcripts` (reading them) and `settings` (pointing its own settings at the agent).
"""

from __future__ import annotations

import importlib
from types import ModuleType


class Sink:
    """Where and how the child sends telemetry: aitrack's loopback receiver."""

    __slots__ = ("base_url", "secret_header", "secret", "signals", "attributes", "telemetry")

    def __init__(self, base_url: str, secret_header: str, secret: str, signals: tuple[str, ...],
                 attributes: dict[str, str], telemetry: dict[str, object]):
        self.base_url = base_url
        self.secret_header = secret_header
        self.secret = secret
        self.signals = signals  # the signals the child should export
        self.attributes = attributes  # resource attributes to announce (the receiver enforces)
        self.telemetry = telemetry  # the profile's [telemetry] table, defaults filled

    def signal_url(self, signal: str) -> str:
        return f"{self.base_url}/v1/{signal}"


TOOLS = ("claude", "codex")  # the tools with adapters of their own; others are generic


def load(name: str) -> ModuleType:
    return importlib.import_module(f"aitrack.adapters.{name}")


def part(name: str, part: str) -> ModuleType | None:
    """One of a tool's optional parts (`locate`, `transcripts`, `settings`), or None when the
    tool has none."""
    try:
        return importlib.import_module(f"aitrack.adapters.{name}.{part}")
    except ModuleNotFoundError as exc:
        if exc.name != f"aitrack.adapters.{name}.{part}":
            raise  # the part exists but something it imports does not: a real error
        return None


def for_service(service_name: str | None) -> ModuleType:
    """The adapter of a tool by the `service.name` its telemetry carries (generic if none)."""
    for name in TOOLS:
        adapter = load(name)
        if service_name in adapter.SERVICE_NAMES:
            return adapter
    return load("generic")
