"""One adapter per wrapped tool: how to point it at the receiver and read its usage.

An adapter module provides:
  NAME: str                   the tool's name in the ledger
  EXECUTABLE: str | None      the binary to look up on PATH (None: given on the command line)
  BIN_ENV: str | None         environment variable overriding the binary's path
  prepare(args, env, sink) -> (args, env)
                              the child's arguments and environment
  contributions(point, delta) -> Iterable[Contribution]
                              what a metric datapoint adds to the session's ledger
  tool_session_id(point) -> str | None
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from aitrack.profile import Telemetry


@dataclass(frozen=True)
class Sink:
    """Where and how the child sends telemetry: aitrack's loopback receiver."""

    base_url: str
    secret_header: str
    secret: str
    signals: tuple[str, ...]  # the signals the child should export
    attributes: dict[str, str]  # resource attributes to announce (the receiver enforces them)
    telemetry: Telemetry

    def signal_url(self, signal: str) -> str:
        return f"{self.base_url}/v1/{signal}"


def load(name: str) -> ModuleType:
    return importlib.import_module(f"aitrack.adapters.{name}")
