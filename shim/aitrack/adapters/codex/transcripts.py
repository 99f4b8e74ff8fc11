"""Codex rollouts: which lines carry usage, and how to count each response once.

Facts (checked against codex 0.169.0): a rollout starts with `session_meta` (thread id, cwd,
originator, version, `forked_from_id` for a fork, `source` with `thread_spawn` for a
subagent); `turn_context` names the model for the events after it. Each response writes a
`token_usage_record` (its own `usage`, plus the thread's cumulative `thread_token_usage`)
and then an `event_msg` `token_count` whose `total_token_usage` is the same cumulative total;
older builds write only the `token_count`. Codex re-emits `token_count` with an unchanged
total, and a fork's totals go on from its parent's.

So, per thread, the cumulative total counts by its advance, only when it moves:
- a `token_usage_record` counts its own `usage` once (keyed by response id and cumulative
  total) and raises the thread's total to its `thread_token_usage`, so the `token_count`
  after it adds nothing; a record whose usage is not in the cumulative total (a compaction
  request in some versions) still counts;
- a `token_count` counts the advance of its total over the thread's; the first one seen of a
  thread counts only its `last_token_usage` (a fork starts from its parent's total);
- every `token_count` that counted is remembered by (timestamp, cumulative figures): a copy
  of it in another file (the same rollout in `archived_sessions/`, a branched desktop
  thread) is the same event, and only raises the total;
- a subagent's rollout replays its parent's events in its first second: those raise the
  total and count nothing; records naming another thread are the other thread's.
Token types follow OpenAI semantics, normalised in one place: `response_usage`.

What no rollout holds: the title request the TUI sends for each prompt (checked with 0.169.0:
a conversation of its own, in no rollout and not in `state_5.sqlite`). Only telemetry sees
it (telemetry.py ties it to its session); a TUI session read from its rollout alone says so
in `report session` (`notes`), with the number of its prompts (its turns).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from aitrack.adapters.codex import locate
from aitrack.adapters.codex.telemetry import response_usage
from aitrack.adapters.reading import (
    MAX_REQUEST_TOKENS,
    MAX_TOTAL_TOKENS,
    BadLine,
    Dates,
    FileRead,
    decode,
    identity,
)
from aitrack.domain.moments import epoch

TOOL = "codex"
# "token_ is in token_count and token_usage_record; session_meta is a rollout's first line,
# read with the head lines of every file read from its start
MARKERS = (b'"token_', b'"turn_context"')
# counting (stateful, in this process) costs more than parsing: no worker processes
PARALLEL = False
REPLAY_S = 1.0  # a subagent's replay of its parent: the burst in its first second
UNKNOWN_MODEL = "unknown"  # rollouts from before September 2025 name no model
# the TUI's originators (`session_meta`): the front end that sends a title request per prompt
TUI = ("codex-tui", "codex_cli_rs")

Number = int | float | None
_FIELDS = ("input_tokens", "cached_input_tokens", "cache_write_input_tokens", "output_tokens",
           "reasoning_output_tokens", "total_tokens")


class _Totals(msgspec.Struct):
    input_tokens: Number = 0
    cached_input_tokens: Number = 0
    cache_write_input_tokens: Number = 0
    output_tokens: Number = 0
    reasoning_output_tokens: Number = 0
    total_tokens: Number = None


class _Info(msgspec.Struct):
    total_token_usage: _Totals | None = None
    last_token_usage: _Totals | None = None


class _Payload(msgspec.Struct):
    type: str | None = None
    id: str | None = None
    timestamp: str | None = None
    cwd: str | None = None
    originator: str | None = None
    cli_version: str | None = None
    source: Any = None
    forked_from_id: str | None = None
    model: str | None = None
    info: _Info | None = None
    thread_id: str | None = None
    response_id: str | None = None
    turn_id: str | None = None
    usage: _Totals | None = None
    thread_token_usage: _Totals | None = None


class _Line(msgspec.Struct):
    timestamp: str | None = None
    type: str | None = None
    payload: _Payload | None = None


_DECODER = msgspec.json.Decoder(_Line)


def roots(env=None) -> list[Path]:
    return locate.transcript_roots(env)


def is_transcript(name: str) -> bool:
    return name.startswith("rollout-") and name.endswith(".jsonl")


def order(path: str, stat: os.stat_result) -> tuple:
    """By the start time in the file name (parents before their forks), then live before
    archived copies."""
    return (os.path.basename(path), f"{os.sep}archived_sessions{os.sep}" in path)


def _vector(t: _Totals) -> tuple[int, ...]:
    """The figures as counts (a negative one is 0); a running total past MAX_TOTAL_TOKENS,
    or not a number, skips the line (BadLine). reading.tokens, inlined: three vectors a
    line, six figures each, made it a sixth of a Codex import."""
    values = []
    for v in (t.input_tokens, t.cached_input_tokens, t.cache_write_input_tokens,
              t.output_tokens, t.reasoning_output_tokens, t.total_tokens):
        if v is None:
            v = 0
        elif not -MAX_TOTAL_TOKENS <= v <= MAX_TOTAL_TOKENS:  # NaN fails too
            raise BadLine("implausible_tokens")
        values.append(int(v) if v > 0 else 0)
    if not values[5]:
        values[5] = values[0] + values[3]
    return tuple(values)


def _plausible(v: tuple[int, ...]) -> bool:
    """One request's figures: input (cached input and writes inside) and output."""
    return v[0] + v[3] <= MAX_REQUEST_TOKENS


def _higher(h: list[int] | None, total: tuple[int, ...]) -> bool:
    return h is None or total[5] > h[5]


class Reader:
    """One rollout's new lines, parsed; counted in order once the batch's known keys are in."""

    def __init__(self, file: FileRead, prices):
        self.file = file
        self.prices = prices
        self.events: list[tuple] = []
        self.dates = Dates()
        if "thread" not in file.context:
            tid = locate.thread_id(file.path)
            if tid:
                file.context["thread"] = tid

    def line(self, raw: bytes, head: bool) -> None:
        rec = decode(_DECODER, raw)
        p, kind = rec.payload, rec.type
        if p is None:
            return
        self.dates.check(rec.timestamp)
        if kind == "session_meta":
            self.dates.check(p.timestamp)
            if p.id:
                self.file.context["thread"] = p.id
                self.events.append(("meta", rec.timestamp, p))
        elif kind == "turn_context":
            if p.model or p.turn_id:
                self.events.append(("model", rec.timestamp, p.model, p.turn_id))
        elif kind == "token_usage_record":
            if p.usage is not None:
                thread = _vector(p.thread_token_usage) if p.thread_token_usage else None
                key = identity(f"codex-record\x1f{p.response_id or p.turn_id or rec.timestamp}"
                               f"\x1f{thread[5] if thread else _vector(p.usage)}")
                self.events.append(("record", rec.timestamp, key, p.thread_id,
                                    _vector(p.usage), thread))
        elif kind == "event_msg" and p.type == "token_count":
            info = p.info
            if info is not None and info.total_token_usage is not None:
                total = _vector(info.total_token_usage)
                last = _vector(info.last_token_usage) if info.last_token_usage else total
                self.events.append(("count", rec.timestamp,
                                    identity(f"codex-count\x1f{rec.timestamp}\x1f{total}"),
                                    total, last))

    def keys(self) -> list[int]:
        return [e[2] for e in self.events if e[0] in ("record", "count")]

    def count(self, book) -> None:
        tid = self.file.context.get("thread")
        if tid is None:
            if self.events:
                book.skip("no_session_id", len(self.events))
            return
        s = book.session(tid)
        st = s.state
        h = st.get("h")
        model = st.get("model") or UNKNOWN_MODEL
        replay_until = st.get("replay_until")
        earliest = latest = None  # the events' times (ISO, UTC: they sort as text)
        for event in self.events:
            kind, stamp = event[0], event[1]
            if kind == "meta":
                p = event[2]
                started = epoch(p.timestamp) or epoch(stamp)
                s.saw(started, p.cwd, p.originator, p.cli_version)
                sub = p.source.get("subagent") if isinstance(p.source, dict) else None
                spawned = isinstance(sub, dict) and "thread_spawn" in sub
                if spawned and started and replay_until is None:
                    replay_until = started + REPLAY_S
                    s.set_state("replay_until", replay_until)
                continue
            if kind == "model":
                if event[2]:
                    model = event[2]
                    s.set_state("model", model)
                if event[3] and event[3] != st.get("turn") and s.entrypoint in TUI:
                    s.set_state("turn", event[3])
                    s.set_state("turns", st.get("turns", 0) + 1, figures=True)
                continue
            if stamp:
                if earliest is None or stamp < earliest:
                    earliest = stamp
                if latest is None or stamp > latest:
                    latest = stamp
            replay = replay_until is not None and (epoch(stamp) or 0) <= replay_until
            if kind == "record":
                _, _, key, thread_id, usage, thread = event
                raises = thread
                if not _plausible(usage):
                    book.skip("implausible_tokens")  # and its totals are not believed
                    continue
                if (thread_id and thread_id != tid) or book.known(key) or replay:
                    book.duplicate()
                else:
                    book.count(key, 0, s, model, self._figures(model, usage))
                    if raises is None:  # no cumulative figures: the response's own move it
                        raises = usage if h is None else tuple(
                            a + b for a, b in zip(h, usage, strict=True))
                if raises is not None and _higher(h, raises):
                    h = list(raises)
            else:
                _, _, key, total, last = event
                if book.known(key):
                    book.duplicate()
                else:
                    if replay:
                        advance = None
                    elif h is None:  # the thread's first: a fork's total starts from its parent
                        advance = tuple(min(a, b) for a, b in zip(last, total, strict=True))
                    elif total[5] > h[5]:
                        advance = tuple(max(0, a - b) for a, b in zip(total, h, strict=True))
                    else:
                        advance = None  # re-emitted, unchanged
                    if advance and not _plausible(advance):
                        book.skip("implausible_tokens")  # nor is its total
                        continue
                    if advance and any(advance):
                        book.count(key, 0, s, model, self._figures(model, advance))
                    else:  # what moved nothing needs no key: its copies move nothing either
                        book.duplicate()
                if _higher(h, total):
                    h = list(total)
        s.set_state("h", h)
        if earliest is not None:
            s.saw(epoch(earliest))
            s.saw(epoch(latest))

    def _figures(self, model: str, v: tuple[int, ...]) -> tuple[int, ...]:
        got = {c.name: int(c.value) for c in response_usage(model, {
            "input": v[0], "cached": v[1], "cache_write": v[2], "output": v[3],
            "reasoning": v[4]}, self.prices)}
        return (got.get("input", 0), got.get("output", 0), got.get("cache_read", 0),
                got.get("cache_creation", 0), got.get("cache_creation_1h", 0),
                got.get("reasoning", 0), 1 if any(n.startswith("long_") for n in got) else 0)


def metrics(state: dict) -> dict[str, dict[str, float]]:
    return {}  # Codex reports no cost: the price table prices it


def notes(state: dict) -> dict[str, str]:
    """What a session's rollout cannot show: the TUI's title requests, one per prompt."""
    turns = state.get("turns", 0)
    if not turns:
        return {}
    return {"title_requests": f"{turns} title request(s) the Codex TUI sent for its prompts are "
                              "in no file Codex keeps: counted only from telemetry (agent)"}
