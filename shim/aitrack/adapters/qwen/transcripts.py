"""Qwen Code's local files: each billed request once across its two records of it.

Facts (checked with qwen 0.24.4): every API response, the main conversation's and each
subagent's, is logged once as an `api_response` event, from which Qwen Code writes
- a line of `usage/token-usage-YYYY-MM.jsonl` (`sessionId`, `timestamp`, `model`,
  `authType`, `source`, `inputTokens`, `outputTokens`, `cachedTokens`, `thoughtsTokens`,
  `totalTokens`), unless `usageStatisticsEnabled` is off; and
- a `type: "system", subtype: "ui_telemetry"` row of the session's chat file, whose
  `systemPayload.uiEvent` is the event itself (`response_id`, model, figures, `auth_type`,
  `subagent_name`).
The two carry no common id, and their times are taken a moment apart (the usage line's when
the event was made, the chat row's when it was logged: 0 or 1 ms apart, seen). So a request is
keyed by its session, model, figures and time in 10 ms steps, and a line whose key or a
neighbouring step's key was counted already (from the other file) is the same request.
Two requests of one session with the same model and figures within 20 ms would count once:
real figures differ from request to request. `assistant` rows repeat the main requests'
figures (`usageMetadata`) and are not counted.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from sys import intern
from typing import Any

import msgspec

from aitrack.adapters.qwen import locate
from aitrack.adapters.qwen.telemetry import request_usage
from aitrack.adapters.reading import BadLine, FileRead, decode, identity

TOOL = "qwen"
# a usage file's lines, and a chat file's api_response rows
MARKERS = (b'"inputTokens"', b'qwen-code.api_response')
STEP_MS = 10  # a request's time, in steps: its two lines' times differ by a millisecond or so

Number = int | float | None


class _Line(msgspec.Struct):
    """A token-usage line, or a chat row; msgspec skips the rest (messages, tool output)."""

    sessionId: str | None = None  # noqa: N815 - the files' names
    timestamp: str | None = None
    model: str | None = None
    authType: str | None = None  # noqa: N815
    inputTokens: Number = None  # noqa: N815
    outputTokens: Number = 0  # noqa: N815
    cachedTokens: Number = 0  # noqa: N815
    thoughtsTokens: Number = 0  # noqa: N815
    totalTokens: Number = 0  # noqa: N815
    type: str | None = None
    subtype: str | None = None
    cwd: str | None = None
    version: str | None = None
    systemPayload: dict[str, Any] | None = None  # noqa: N815


_DECODER = msgspec.json.Decoder(_Line)


def roots(env=None) -> list[Path]:
    return locate.transcript_roots(env)


def is_transcript(name: str) -> bool:
    return name.endswith(".jsonl")


def order(path: str, stat: os.stat_result) -> tuple:
    return (stat.st_mtime_ns, path)


def _kind(path: Path) -> str | None:
    """"usage", "chat", or None for the other files under its folders (memory, subagents')."""
    if path.parent.name == "usage" and path.name.startswith("token-usage-"):
        return "usage"
    if path.parent.name == "chats":
        return "chat"
    return None


def _time(stamp: str | None) -> float | None:
    try:
        return datetime.fromisoformat(stamp).timestamp() if stamp else None
    except ValueError:
        return None


def _int(value) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


class Reader:
    """One file's new lines: its requests, counted unless the other file counted them."""

    def __init__(self, file: FileRead, prices):
        self.file = file
        self.prices = prices
        self.kind = _kind(file.path)
        self.requests: list[tuple] = []  # (keys, session, model, figures, time)
        self.facts: dict[str, list] = {}  # session -> [cwd, version]

    def line(self, raw: bytes, head: bool) -> None:
        if self.kind is None:
            return
        rec = decode(_DECODER, raw)
        if self.kind == "usage":
            if rec.inputTokens is None:
                return
            self._request(rec.sessionId, rec.model, rec.timestamp, _int(rec.inputTokens),
                          _int(rec.cachedTokens), _int(rec.outputTokens),
                          _int(rec.thoughtsTokens), _int(rec.totalTokens), rec.authType or "")
            return
        if rec.type != "system" or rec.subtype != "ui_telemetry":
            return
        event = (rec.systemPayload or {}).get("uiEvent")
        if not isinstance(event, dict) or event.get("event.name") != "qwen-code.api_response":
            return
        if rec.sessionId and rec.sessionId not in self.facts:
            self.facts[rec.sessionId] = [rec.cwd, rec.version]
        self._request(rec.sessionId, event.get("model"), event.get("event.timestamp"),
                      _int(event.get("input_token_count")),
                      _int(event.get("cached_content_token_count")),
                      _int(event.get("output_token_count")),
                      _int(event.get("thoughts_token_count")),
                      _int(event.get("total_token_count")), str(event.get("auth_type") or ""))

    def _request(self, session: str | None, model: str | None, stamp: str | None, prompt: int,
                 cached: int, output: int, thoughts: int, total: int, auth: str) -> None:
        if not session:
            raise BadLine("no_session_id")
        at = _time(stamp)
        if at is None:
            raise BadLine("bad_record")
        model = model or "unknown"
        got = {c.name: int(c.value) for c in request_usage(
            model, prompt, cached, output, thoughts, total, auth, self.prices)}
        figures = (got.get("input", 0), got.get("output", 0), got.get("cache_read", 0), 0, 0,
                   got.get("reasoning", 0), 1 if any(n.startswith("long_") for n in got) else 0)
        step = int(at * 1000) // STEP_MS
        base = f"qwen\x1f{session}\x1f{model}\x1f{prompt},{cached},{output},{thoughts}"
        keys = tuple(identity(f"{base}\x1f{s}") for s in (step, step - 1, step + 1))
        self.requests.append((keys, intern(session), intern(model), figures, at))

    def keys(self) -> list[int]:
        return [k for r in self.requests for k in r[0]]

    def count(self, book) -> None:
        for session, (cwd, version) in self.facts.items():
            book.session(session).saw(None, cwd, None, version)
        for keys, session, model, figures, at in self.requests:
            s = book.session(session)
            s.saw(at)
            if book.known(keys[1]) or book.known(keys[2]):
                book.duplicate()  # counted from the other file, a step away
            else:
                book.count(keys[0], 0, s, model, figures)


def metrics(state: dict) -> dict[str, dict[str, float]]:
    return {}  # Qwen Code reports no cost: the price table prices it
