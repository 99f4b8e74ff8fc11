"""aitrack: wrap AI coding agents, ledger their usage, forward their telemetry."""

__version__ = "0.1.0"
