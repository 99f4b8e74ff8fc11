"""What Qwen Code's telemetry adds to the ledger: its per-request `api_response` log records.

Each record is one billed request (`log_request`: `session.id`, `response_id`, `prompt_id`,
its time, model, figures, and `subagent_name` for a subagent's); the ledger meets it with
its chat file's copy of the same event on the response id. The cumulative
`qwen-code.token.usage` metric repeats them without a session id: it adds nothing, and is
forwarded as it came.
"""

from __future__ import annotations

from aitrack.adapters.qwen import NAME
from aitrack.domain import tokens
from aitrack.domain.moments import epoch
from aitrack.domain.records import Contribution, Point, Request

__all__ = ["NAME", "contributions", "entrypoint", "ledger_figures", "log_contributions",
           "log_request", "tool_session_id"]

EVENT = "qwen-code.api_response"
# backends whose candidates exclude the thoughts (Gemini semantics), when a request names no
# total to tell by
THOUGHTS_APART = frozenset(("gemini", "vertex-ai"))


def contributions(point: Point, delta: float) -> list[Contribution]:
    return []  # the api_response records count each request once, with its session


def log_request(attrs: dict[str, str], prices) -> Request | None:
    """The billed request an `api_response` record reports (a subagent's and the memory
    extractor's too), under its response id."""
    if attrs.get("event.name") != EVENT:
        return None
    model = attrs.get("model") or "unknown"
    inp, out, read, reasoning = ledger_figures(
        tokens.count(attrs.get("input_token_count")),
        tokens.count(attrs.get("cached_content_token_count")),
        tokens.count(attrs.get("output_token_count")),
        tokens.count(attrs.get("thoughts_token_count")),
        tokens.count(attrs.get("total_token_count")), attrs.get("auth_type") or "")
    long = 1 if prices is not None and prices.is_long_context(model, inp + read) else 0
    return Request(attrs.get("response_id"), epoch(attrs.get("event.timestamp")), model,
                   (inp, out, read, 0, 0, reasoning, long))


def log_contributions(attrs: dict[str, str], prices) -> list[Contribution]:
    return []  # api_response records are requests (log_request); nothing else counts


def output_of(prompt: int, candidates: int, thoughts: int, total: int, auth_type: str) -> int:
    """All of a request's output: its candidates, plus its thoughts where they are apart."""
    if not thoughts:
        return candidates
    if total:
        return candidates + thoughts if total >= prompt + candidates + thoughts else candidates
    return candidates + thoughts if auth_type in THOUGHTS_APART else candidates


def ledger_figures(prompt: int, cached: int, candidates: int, thoughts: int, total: int,
                   auth_type: str) -> tuple[int, int, int, int]:
    """One request's (input, output, cache_read, reasoning) in ledger types (the file reader
    uses this too): input without the cached part, output with its reasoning."""
    cached = min(cached, prompt)
    output = output_of(prompt, candidates, thoughts, total, auth_type)
    return prompt - cached, output, cached, min(thoughts, output)


def tool_session_id(attrs: dict[str, str]) -> str | None:
    """The session id on log records (metrics carry it only when told to)."""
    return attrs.get("session.id") or None


def entrypoint(attrs: dict[str, str]) -> str | None:
    return attrs.get("service.name") or None
