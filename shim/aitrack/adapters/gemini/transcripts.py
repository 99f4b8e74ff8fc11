"""Gemini CLI's chat files: which lines carry usage, and what each request counts.

Facts (checked with gemini 0.61.0): a chat file's first line is its session's header
(`sessionId`, `projectHash`, `startTime`, `kind`: main or subagent); each later line is a
message (`id`, `timestamp`, `type`: user | gemini | info...), a `{"$set": {...}}` update
(`$set.messages` replaces the whole list, as a resume or compression writes it) or a
`{"$rewindTo": id}`. A `gemini` message carries its request's `tokens` {input, output, cached,
thoughts, tool, total} and `model`; a message is appended again, whole, each time it changes
(its tokens arrive, a tool call is added). So a request is keyed by its message id and its
largest line counts, across files: a resumed legacy `.json` session is copied into a new
`.jsonl` with the same ids. A rewind removes messages from the conversation, not from the
bill: they still count. Token semantics and what the files miss: the package docstring.
"""

from __future__ import annotations

import os
from pathlib import Path
from sys import intern

import msgspec

from aitrack.adapters.gemini import locate
from aitrack.adapters.gemini.telemetry import ledger_figures
from aitrack.adapters.reading import (
    BadLine,
    FileRead,
    decode,
    figure_sums,
    identity,
    long_context,
)
from aitrack.domain.moments import epoch

TOOL = "gemini"
MARKERS = (b'"tokens"',)  # gemini messages, and $set lines that list messages

Number = int | float | None


class _Tokens(msgspec.Struct):
    input: Number = 0
    output: Number = 0
    cached: Number = 0
    thoughts: Number = 0
    tool: Number = 0


class _Message(msgspec.Struct):
    id: str | None = None
    timestamp: str | None = None
    type: str | None = None
    model: str | None = None
    tokens: _Tokens | None = None


class _Set(msgspec.Struct):
    messages: list[_Message] | None = None


class _Line(msgspec.Struct):
    """A header, a message or an update: msgspec skips the rest (contents, tool calls)."""

    id: str | None = None
    timestamp: str | None = None
    type: str | None = None
    model: str | None = None
    tokens: _Tokens | None = None
    sessionId: str | None = None  # noqa: N815 - the file's name
    startTime: str | None = None  # noqa: N815
    kind: str | None = None
    set: _Set | None = msgspec.field(default=None, name="$set")


_DECODER = msgspec.json.Decoder(_Line)


def roots(env=None) -> list[Path]:
    return locate.transcript_roots(env)


def is_transcript(name: str) -> bool:
    """Main sessions' files and subagents' alike (`logs.json`, `*.json` checkpoints are not
    chat files)."""
    return name.endswith(".jsonl")


def order(path: str, stat: os.stat_result) -> tuple:
    return (stat.st_mtime_ns, path)


class Reader:
    """One chat file's new lines: its requests (each once, at its largest line)."""

    def __init__(self, file: FileRead, prices):
        self.file = file
        self.prices = prices
        self.responses: list[list] = []  # [key, rid, owner, model, figures, side]
        self.index: dict[int, int] = {}
        self.tiered: dict[str, bool] = {}  # model -> has a long-context tier
        self.times: list[str] = []
        self.sums: dict[tuple[str, str], list[int]] = {}
        if "session" not in file.context and file.path.parent.name != "chats":
            file.context["session"] = file.path.parent.name  # a subagent's: its parent's
        if "cwd" not in file.context:
            file.context["cwd"] = locate.project_root(file.path)

    def line(self, raw: bytes, head: bool) -> None:
        rec = decode(_DECODER, raw)
        if rec.sessionId and "session" not in self.file.context:
            self.file.context["session"] = rec.sessionId  # the header
        if rec.startTime:
            self.times.append(rec.startTime)
        if rec.set is not None and rec.set.messages:
            for msg in rec.set.messages:
                self._message(msg.id, msg.type, msg.model, msg.tokens, msg.timestamp)
        self._message(rec.id, rec.type, rec.model, rec.tokens, rec.timestamp)

    def _message(self, mid: str | None, kind: str | None, model: str | None,
                 t: _Tokens | None, stamp: str | None) -> None:
        if kind != "gemini" or t is None or not mid:
            return
        owner = self.file.context.get("session")
        if not owner:
            raise BadLine("no_session_id")
        model = intern(model or "unknown")
        inp, out, read, reasoning = ledger_figures(int(t.input or 0), int(t.cached or 0),
                                                   int(t.output or 0), int(t.thoughts or 0),
                                                   int(t.tool or 0))
        if min(inp, out, read, reasoning) < 0:
            raise BadLine("bad_record")
        figures = (inp, out, read, 0, 0, reasoning,
                   long_context(self.prices, self.tiered, model, inp + read))
        if stamp:
            self.times.append(stamp)
        key = identity(f"gemini\x1f{mid}")
        i = self.index.get(key)
        if i is not None:  # the message again: its larger version counts
            known = self.responses[i]
            if sum(figures[:4]) > sum(known[4][:4]):
                known[3], known[4] = model, figures
            return
        self.index[key] = len(self.responses)
        self.responses.append([key, 0, intern(owner), model, figures, False])

    def finish(self) -> None:
        self.index = {}
        self.tiered = {}
        self.sums = figure_sums((r[2], r[3], r[4]) for r in self.responses)

    def keys(self) -> list[int]:
        return [r[0] for r in self.responses]

    def count(self, book) -> None:
        owner = self.file.context.get("session")
        if owner and self.times:
            s = book.session(owner)
            s.saw(epoch(min(self.times)), self.file.context.get("cwd"))  # ISO, UTC: as text
            s.saw(epoch(max(self.times)))
        for owner in {r[2] for r in self.responses}:
            # a session with requests in its files: its utility calls are in none of them
            book.session(owner).set_state("requests", 1, figures=True)
        book.count_many(self.responses, self.sums)


def metrics(state: dict) -> dict[str, dict[str, float]]:
    return {}  # Gemini CLI reports no cost: the price table prices it


def notes(state: dict) -> dict[str, str]:
    """What a session's chat files cannot show: its utility calls (the model router's...)."""
    if not state.get("requests"):
        return {}
    return {"utility_requests": "the model router's and other utility calls Gemini CLI makes "
                                "are in no chat file: counted only from telemetry"}
