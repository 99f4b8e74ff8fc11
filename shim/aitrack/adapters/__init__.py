"""One adapter per wrapped tool: how to point it at the receiver and read its usage.

An adapter module provides:
  NAME: str                   the tool's name in the ledger
  EXECUTABLE: str | None      the binary to look up on PATH (None: given on the command line)
  BIN_ENV: str | None         environment variable overriding the binary's path
  prepare(args, env, sink) -> (args, env)
                              the child's arguments and environment
  contributions(point, delta) -> list[Contribution]
                              what a metric datapoint adds to the session's ledger
  tool_session_id(attrs) -> str | None
                              the tool's own session id in datapoint/log attributes

Adapters are imported on the start-up path: keep their imports to the standard minimum.
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


def load(name: str) -> ModuleType:
    return importlib.import_module(f"aitrack.adapters.{name}")
