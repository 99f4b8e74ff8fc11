"""OpenAI Codex CLI: usage from its per-response log events, its session from its rollout.

Codex is configured only through its own settings (`[otel]` in its config, pointed at the
per-user agent): command-line `-c` overrides would put a secret in its argv, readable by every
local user, and force it out of its shared background-server mode. Without an agent a run
is read from its rollout when it exits (WITHOUT_AGENT, and no `prepare`).

Usage is counted from `codex.sse_event` log records of kind `response.completed`: one per
model response, with the conversation (= session) id and model. Its metrics carry no session
id and are forwarded untouched. OpenAI token semantics: `input` INCLUDES cached input and
cache writes; `output` INCLUDES reasoning. The ledger's types do not overlap, so cached
input moves to cache_read, cache writes to cache_creation, and input keeps the rest.
"""

from __future__ import annotations

from aitrack.domain import tokens
from aitrack.domain.records import Contribution, Point

NAME = "codex"
EXECUTABLE = "codex"
BIN_ENV = "AITRACK_CODEX_BIN"
# without an agent: a per-run receiver, or only the transcripts read at exit
WITHOUT_AGENT = "transcript"
# with the agent: its telemetry cannot name the wrapper's run (Codex has no helper)
TELLS_RUN = False
SERVICE_NAMES = ("codex", "codex_exec", "codex-app-server", "codex_app_server", "codex_cli_rs",
                 "codex-tui", "codex_mcp_server")
# no lines or commits of its own: a wrapped run's commits are read from git
REPORTS_CONTRIBUTIONS = False
# resumes a session by its own id (shown beside aitrack's in `aitrack report session`)
RESUME = "codex resume {id}"
# ChatGPT plans' Codex limits: a 5-hour window (and a weekly one) (`aitrack report blocks`)
BILLING_WINDOW_H = 5

_NOT_SESSIONS = frozenset(("--version", "-V", "--help", "-h", "help", "login", "logout",
                           "completion", "features", "mcp"))
_DECISIONS = {"approved": "accept", "approved_for_session": "accept",
              "approved_execpolicy_amendment": "accept", "denied": "reject", "abort": "reject"}


def is_session(args: list[str]) -> bool:
    return not (args and args[0] in _NOT_SESSIONS)


def contributions(point: Point, delta: float) -> list[Contribution]:
    return []  # usage comes from the log events, which name their session


def log_contributions(attrs: dict[str, str], prices) -> list[Contribution]:
    event = attrs.get("event.name")
    if event == "codex.sse_event":
        if attrs.get("event.kind") != "response.completed" or "input_token_count" not in attrs:
            return []
        return response_usage(attrs.get("model") or attrs.get("slug") or "", {
            "input": tokens.count(attrs.get("input_token_count")),
            "cached": tokens.count(attrs.get("cached_token_count")),
            "cache_write": tokens.count(attrs.get("cache_write_token_count")),
            "output": tokens.count(attrs.get("output_token_count")),
            "reasoning": tokens.count(attrs.get("reasoning_token_count")),
        }, prices)
    if event == "codex.tool_decision":
        decision = _DECISIONS.get(attrs.get("decision", ""))
        tool = attrs.get("tool_name") or "unknown"
        return [Contribution("decision", tool, decision, 1)] if decision else []
    return []


def response_usage(model: str, usage: dict[str, int], prices) -> list[Contribution]:
    """One response's usage in ledger types (the rollout reader uses this too)."""
    cached, write = usage.get("cached", 0), usage.get("cache_write", 0)
    ledger = {"input": max(0, usage.get("input", 0) - cached - write), "cache_read": cached,
              "cache_creation": write, "output": usage.get("output", 0),
              "reasoning": usage.get("reasoning", 0)}
    return [Contribution("tokens", model, t, v)
            for t, v in tokens.request(ledger, model, prices).items()]


def tool_session_id(attrs: dict[str, str]) -> str | None:
    """The conversation (thread) id on log records; Codex's metrics carry none."""
    return attrs.get("conversation.id") or attrs.get("thread.id") or None


def entrypoint(attrs: dict[str, str]) -> str | None:
    """codex_exec, codex_cli_rs, codex-app-server... (`originator`, else `service.name`)."""
    return attrs.get("originator") or attrs.get("service.name") or None
