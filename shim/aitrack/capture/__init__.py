"""Telemetry coming in: the wrapper (launcher, tracked run, start-up cache), the
loopback receiver and its HTTP server, the durable intake, the per-user agent."""
