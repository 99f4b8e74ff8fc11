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
from pathlib import Path
from sys import intern

import msgspec

from aitrack.adapters.qwen import locate
from aitrack.adapters.qwen.telemetry import ledger_figures
from aitrack.adapters.reading import (
    BadLine,
    FileRead,
    decode,
    identity,
    long_context,
    request_number,
)
from aitrack.domain.moments import epoch

TOOL = "qwen"
# a usage file's lines, and a chat file's api_response rows
MARKERS = (b'"inputTokens"', b'qwen-code.api_response')
STEP_MS = 10  # a request's time, in steps: its two lines' times differ by a millisecond or so
_SPREAD = 0x9E3779B97F4A7C15  # a step's key: the request's hash moved by an odd 64-bit number
_WRAP, _HALF = 1 << 64, 1 << 63  # keys are signed 64-bit (the ledger's INTEGER)

Number = int | float | None


class _Event(msgspec.Struct):
    """A chat row's `api_response` event (its other keys: skipped unbuilt)."""

    name: str | None = msgspec.field(default=None, name="event.name")
    timestamp: str | None = msgspec.field(default=None, name="event.timestamp")
    model: str | None = None
    input_token_count: Number = 0
    output_token_count: Number = 0
    cached_content_token_count: Number = 0
    thoughts_token_count: Number = 0
    total_token_count: Number = 0
    auth_type: str | None = None
    response_id: str | None = None


class _Payload(msgspec.Struct):
    uiEvent: _Event | None = None  # noqa: N815 - the file's name


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
    systemPayload: _Payload | None = None  # noqa: N815


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




class Reader:
    """One file's new lines: its requests, counted unless the other file counted them."""

    def __init__(self, file: FileRead, prices):
        self.file = file
        self.prices = prices
        self.kind = _kind(file.path)
        self.requests: list[tuple] = []  # (keys, session, model, figures, time)
        self.tiered: dict[str, bool] = {}  # model -> has a long-context tier
        self.facts: dict[str, list] = {}  # session -> [cwd, version]

    def line(self, raw: bytes, head: bool) -> None:
        if self.kind is None:
            return
        try:
            rec = _DECODER.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError):
            rec = decode(_DECODER, raw)  # raises BadLine, saying why
        if self.kind == "usage":
            if rec.inputTokens is None:
                return
            self._request(rec.sessionId, rec.model, rec.timestamp, int(rec.inputTokens),
                          int(rec.cachedTokens or 0), int(rec.outputTokens or 0),
                          int(rec.thoughtsTokens or 0), int(rec.totalTokens or 0),
                          rec.authType or "", 0)
            return
        if rec.type != "system" or rec.subtype != "ui_telemetry" or rec.systemPayload is None:
            return
        event = rec.systemPayload.uiEvent
        if event is None or event.name != "qwen-code.api_response":
            return
        if rec.sessionId and rec.sessionId not in self.facts:
            self.facts[rec.sessionId] = [rec.cwd, rec.version]
        self._request(rec.sessionId, event.model, event.timestamp,
                      int(event.input_token_count or 0),
                      int(event.cached_content_token_count or 0),
                      int(event.output_token_count or 0), int(event.thoughts_token_count or 0),
                      int(event.total_token_count or 0), event.auth_type or "",
                      request_number(event.response_id or ""))

    def _request(self, session: str | None, model: str | None, stamp: str | None, prompt: int,
                 cached: int, output: int, thoughts: int, total: int, auth: str,
                 rid: int) -> None:
        if not session:
            raise BadLine("no_session_id")
        at = epoch(stamp)
        if at is None or min(prompt, cached, output, thoughts, total) < 0:
            raise BadLine("bad_record")
        model = intern(model or "unknown")
        inp, out, read, reasoning = ledger_figures(prompt, cached, output, thoughts, total, auth)
        long = long_context(self.prices, self.tiered, model, inp + read)
        # one hash per request; its neighbouring time steps' keys derived from it
        base = identity(f"qwen\x1f{session}\x1f{model}\x1f{prompt},{cached},{output},{thoughts}")
        step = int(at * 1000) // STEP_MS * _SPREAD + _HALF
        keys = ((base + step) % _WRAP - _HALF, (base + step - _SPREAD) % _WRAP - _HALF,
                (base + step + _SPREAD) % _WRAP - _HALF)
        self.requests.append((keys, intern(session), model,
                              (inp, out, read, 0, 0, reasoning, long), at, rid))

    def finish(self) -> None:
        self.tiered = {}

    def keys(self) -> list[int]:
        return [k for r in self.requests for k in r[0]]

    def count(self, book) -> None:
        for session, (cwd, version) in self.facts.items():
            book.session(session).saw(None, cwd, None, version)
        for keys, session, model, figures, at, rid in self.requests:
            s = book.session(session)
            s.saw(at)
            if book.known(keys[1]) or book.known(keys[2]):
                book.duplicate()  # counted from the other file, a step away
            else:  # a chat row's response id: what telemetry's record of it names
                book.count(keys[0], rid, s, model, figures)


def metrics(state: dict) -> dict[str, dict[str, float]]:
    return {}  # Qwen Code reports no cost: the price table prices it
