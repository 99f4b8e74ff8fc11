"""What Gemini CLI's telemetry adds to the ledger: its per-request `api_response` log records.

Each record is one billed request (`log_request`), with what identifies it (`session.id`,
`prompt_id`, its time, model and figures: no request id) and its `role`: `main`, `subagent`,
or a `utility_*` call (the model router, loop detector, compressor, next-speaker check...).
Every role is billed, so every record counts. The cumulative `gemini_cli.token.usage` metric
repeats the same requests (its `type` input|output|thought|cache|tool per model and
session): counting both would count each request twice, so metrics add nothing and are
forwarded as they came.
"""

from __future__ import annotations

from aitrack.adapters.gemini import NAME
from aitrack.domain import tokens
from aitrack.domain.moments import epoch
from aitrack.domain.records import Contribution, Point, Request

__all__ = ["NAME", "contributions", "entrypoint", "ledger_figures", "log_contributions",
           "log_request", "tool_session_id", "tool_version"]

EVENT = "gemini_cli.api_response"


def contributions(point: Point, delta: float) -> list[Contribution]:
    return []  # the api_response records count each request once, with its session


def log_request(attrs: dict[str, str], prices) -> Request | None:
    """The billed request an `api_response` record reports, whatever its role. Gemini CLI
    names no request id (its chat files neither): the ledger meets it with its chat file's
    message on session, model and figures."""
    if attrs.get("event.name") != EVENT:
        return None
    model = attrs.get("model") or "unknown"
    inp, out, read, reasoning = ledger_figures(
        tokens.count(attrs.get("input_token_count")),
        tokens.count(attrs.get("cached_content_token_count")),
        tokens.count(attrs.get("output_token_count")),
        tokens.count(attrs.get("thoughts_token_count")),
        tokens.count(attrs.get("tool_token_count")))
    long = 1 if prices is not None and prices.is_long_context(model, inp + read) else 0
    return Request(None, epoch(attrs.get("event.timestamp")), model,
                   (inp, out, read, 0, 0, reasoning, long))


def log_contributions(attrs: dict[str, str], prices) -> list[Contribution]:
    return []  # api_response records are requests (log_request); nothing else counts


def ledger_figures(prompt: int, cached: int, candidates: int, thoughts: int,
                   tool: int) -> tuple[int, int, int, int]:
    """One request's (input, output, cache_read, reasoning) in ledger types (the chat-file
    reader uses this too): the prompt includes the cached part; thoughts are output apart
    from the candidates; tool-use prompt tokens are prompt apart from it."""
    cached = min(cached, prompt)
    return prompt - cached + tool, candidates + thoughts, cached, thoughts


def tool_session_id(attrs: dict[str, str]) -> str | None:
    """The session id on log records and metric datapoints (and the resource)."""
    return attrs.get("session.id") or None


def entrypoint(attrs: dict[str, str]) -> str | None:
    """`interactive` (true: the terminal UI; false: `-p`, piped), else the service name."""
    interactive = attrs.get("interactive")
    if interactive in ("true", "false"):
        return "gemini-cli" if interactive == "true" else "gemini-cli-headless"
    return attrs.get("service.name") or None


def tool_version(resource: dict[str, str]) -> str | None:
    """None: its `service.version` is the Node.js version (v20.20.2 with 0.61.0), not its own."""
    return None
