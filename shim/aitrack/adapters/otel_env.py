"""The standard OpenTelemetry SDK environment variables, shared by env-configured tools, and
the `<TOOL>_TELEMETRY_*` ones of Gemini CLI and its fork Qwen Code (`telemetry_vars`)."""

from __future__ import annotations

from aitrack.adapters import Sink

# Inherited variables that would send telemetry (and often a token) around aitrack.
REDIRECTING = (
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_COMPRESSION",
)


def scrub(env: dict[str, str]) -> list[str]:
    """Remove inherited OTLP endpoint/header variables; names of the non-empty header ones.

    Other OTEL_* settings (temporality preference, service name...) stay the user's.
    """
    headers = [k for k in REDIRECTING if k.endswith("HEADERS") and env.get(k, "").strip()]
    for key in REDIRECTING:
        env.pop(key, None)
    return headers


def resource_attributes(existing: str | None, attributes: dict[str, str]) -> str:
    """OTEL_RESOURCE_ATTRIBUTES: the child's own keys kept, ours set, values percent-encoded."""
    merged: dict[str, str] = {}
    if existing:
        from urllib.parse import unquote  # rare, and ~3 ms: off the common start-up path

        for item in existing.split(","):
            key, sep, value = item.partition("=")
            if sep and key.strip():
                merged[key.strip()] = unquote(value.strip())
    merged.update(attributes)
    return ",".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in merged.items())


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def percent_encode(text: str) -> str:
    """RFC 3986 percent-encoding of everything but unreserved characters."""
    return "".join(c if c in _UNRESERVED else "".join(f"%{b:02X}" for b in c.encode())
                   for c in text)


def standard(env: dict[str, str], sink: Sink, protocol: str = "http/json") -> dict[str, str]:
    """Point an OpenTelemetry SDK at the receiver (endpoint, header, protocol, exporters)."""
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.base_url
    env["OTEL_EXPORTER_OTLP_PROTOCOL"] = protocol
    env["OTEL_EXPORTER_OTLP_HEADERS"] = f"{sink.secret_header}={sink.secret}"
    env["OTEL_METRICS_EXPORTER"] = "otlp" if "metrics" in sink.signals else "none"
    env["OTEL_LOGS_EXPORTER"] = "otlp" if "logs" in sink.signals else "none"
    env["OTEL_TRACES_EXPORTER"] = "otlp" if "traces" in sink.signals else "none"
    env["OTEL_METRIC_EXPORT_INTERVAL"] = str(sink.telemetry["metric_export_interval_ms"])
    env["OTEL_LOGS_EXPORT_INTERVAL"] = str(sink.telemetry["logs_export_interval_ms"])
    env["OTEL_RESOURCE_ATTRIBUTES"] = resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES"),
                                                          sink.attributes)
    return env


# OTEL_EXPORTER_OTLP_TIMEOUT for a tool that waits on its exports at exit: the receiver answers
# in milliseconds
EXPORT_TIMEOUT_MS = "2000"


def telemetry_vars(env: dict[str, str], sink: Sink, prefix: str,
                   redirecting: tuple[str, ...]) -> None:
    """Point a tool whose `PREFIX_TELEMETRY_*` variables win over its settings' `telemetry`
    object (Gemini CLI, Qwen Code) at the receiver: on, OTLP/HTTP (JSON), the prompts as the
    profile says, the header and resource attributes through the standard variables (it has
    no header variable of its own). `redirecting`: its own variables that would send the
    telemetry elsewhere, removed."""
    for key in redirecting:
        env.pop(key, None)
    env[f"{prefix}_TELEMETRY_ENABLED"] = "true"
    env[f"{prefix}_TELEMETRY_TARGET"] = "local"
    env[f"{prefix}_TELEMETRY_OTLP_ENDPOINT"] = sink.base_url
    env[f"{prefix}_TELEMETRY_OTLP_PROTOCOL"] = "http"
    env[f"{prefix}_TELEMETRY_LOG_PROMPTS"] = \
        "true" if sink.telemetry["log_user_prompts"] else "false"
    env["OTEL_EXPORTER_OTLP_HEADERS"] = f"{sink.secret_header}={sink.secret}"
    env["OTEL_EXPORTER_OTLP_TIMEOUT"] = EXPORT_TIMEOUT_MS
    env["OTEL_RESOURCE_ATTRIBUTES"] = resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES"),
                                                          sink.attributes)
