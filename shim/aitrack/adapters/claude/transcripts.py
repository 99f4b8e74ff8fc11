"""Claude Code's transcripts: which lines carry usage, and what each API response counts.

Facts (checked against claude 2.1.328): usage sits on `type: "assistant"` lines, one per
content block of a response, each repeating `message.id`, `requestId` and the message's
usage (before 2.1.97 the earlier blocks carried placeholder output). So a response is keyed
by (message.id, requestId), by message.id alone when the request id is missing, and its
largest line counts, across ALL files: resumed and forked sessions copy earlier lines into
another file under the new session id, naming the session that made the request in
`requestSessionId`; subagent and `/btw` logs replay parent lines as sidechain lines.
`<synthetic>` lines (API errors, usage-limit notices) were never billed. Cache writes are
max(top-level, 5m + 1h breakdown): before 2.1.152 the top-level field could be 0 while the
breakdown held them. An assistant line's `message.model` is the model that answered; its
`requestedModel` (2.1.328) the name Claude Code asked for (an alias answered with a dated
id differs). The last `cost-state` line holds Claude Code's own totals of the session per
requested model (`modelUsage.<model>`: tokens by type and `costUSD`), including requests no
line shows (the TUI's title and side requests): the session's totals (`totals`), a floor
under its lines, and its cost of record. In a forked session it also holds the parent's
copied requests, so it is used only for sessions without copied history.
"""

from __future__ import annotations

import os
import zlib
from datetime import datetime
from pathlib import Path
from sys import intern

import msgspec

from aitrack.adapters.claude import locate
from aitrack.adapters.reading import (
    MAX_REQUEST_TOKENS,
    MAX_TOTAL_TOKENS,
    BadLine,
    Dates,
    FileRead,
    cost_usd,
    decode,
    figure_sums,
    identity,
    tokens,
)

TOOL = "claude"
# A line without these carries nothing to count (most lines: prompts, tool results...).
MARKERS = (b'"usage"',)
LAST_MARKERS = (b'"cost-state"',)  # last-wins: only the last of a read is parsed
SYNTHETIC = "<synthetic>"

Number = int | float | None


class _Cache(msgspec.Struct):
    ephemeral_5m_input_tokens: Number = 0
    ephemeral_1h_input_tokens: Number = 0


class _Thinking(msgspec.Struct):
    thinking_tokens: Number = 0


class _Usage(msgspec.Struct):
    input_tokens: Number = 0
    output_tokens: Number = 0
    cache_read_input_tokens: Number = 0
    cache_creation_input_tokens: Number = 0
    cache_creation: _Cache | None = None
    output_tokens_details: _Thinking | None = None


class _Message(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    usage: _Usage | None = None


class _ModelUsage(msgspec.Struct):
    """A cost-state's totals of one model (the file's names)."""

    inputTokens: Number = 0  # noqa: N815
    outputTokens: Number = 0  # noqa: N815
    cacheReadInputTokens: Number = 0  # noqa: N815
    cacheCreationInputTokens: Number = 0  # noqa: N815
    thinkingTokens: Number = 0  # noqa: N815
    costUSD: Number = None  # noqa: N815


# cost-state names -> ledger names (thinking is part of output, as `reasoning` is)
_TOTALS = (("inputTokens", "input"), ("outputTokens", "output"),
           ("cacheReadInputTokens", "cache_read"),
           ("cacheCreationInputTokens", "cache_creation"), ("thinkingTokens", "reasoning"),
           ("costUSD", "cost_usd"))


def _total(name: str, value: int | float) -> float:
    """A cost-state figure, checked as a transcript's are (a session's totals: one
    request's bound does not hold)."""
    return cost_usd(value) if name == "cost_usd" else float(tokens(value, MAX_TOTAL_TOKENS))


class _Line(msgspec.Struct):
    """The fields aitrack reads; msgspec skips the rest (content, tool results) unbuilt."""

    type: str | None = None
    sessionId: str | None = None  # noqa: N815
    requestSessionId: str | None = None  # noqa: N815
    requestId: str | None = None  # noqa: N815
    requestedModel: str | None = None  # noqa: N815
    uuid: str | None = None
    timestamp: str | None = None
    isSidechain: bool | None = None  # noqa: N815
    cwd: str | None = None
    entrypoint: str | None = None
    version: str | None = None
    message: _Message | None = None
    modelUsage: dict[str, _ModelUsage] | None = None  # noqa: N815


_DECODER = msgspec.json.Decoder(_Line)


def roots(env=None) -> list[Path]:
    return locate.transcript_roots(env)


def is_transcript(name: str) -> bool:
    """Main session logs and subagent logs alike."""
    return name.endswith(".jsonl")


def order(path: str, stat: os.stat_result) -> tuple:
    """Older files first: with old versions' copies (no requestSessionId) the original wins."""
    return (stat.st_mtime_ns, path)


def _time(stamp: str | None) -> float | None:
    try:
        return datetime.fromisoformat(stamp).timestamp() if stamp else None
    except ValueError:
        return None


class Reader:
    """One file's new lines, parsed: its responses (each once, at its largest line) and what
    they say of their sessions; counted into the Book once the batch's known keys are in."""

    def __init__(self, file: FileRead, prices):
        self.file = file
        self.prices = prices  # PriceTable; for long-context requests
        self.responses: list[list] = []  # [key, rid, owner, model, figures, side]
        self.tiered: dict[str, bool] = {}  # model -> has a long-context tier
        self.index: dict[int, int] = {}  # key -> its place in responses
        self.sessions: dict[str, list] = {}  # owner -> [first, last, cwd, entrypoint, version]
        self.copies: set[str] = set()  # sessions whose file holds copies of others' requests
        self.costs: list[tuple[str, dict[str, dict[str, float]]]] = []  # cost-state totals
        self.requested: dict[tuple[str, str], str] = {}  # (owner, answered) -> requested
        self.sums: dict[tuple[str, str], list[int]] = {}  # per owner and model, at finish
        self.first: tuple[str, str] | None = None  # the file's first timestamped line
        self.not_billed = 0
        self.duplicates = 0
        self.dates = Dates()

    def line(self, raw: bytes, head: bool) -> None:
        rec = decode(_DECODER, raw)
        self.dates.check(rec.timestamp)
        if head and self.first is None and rec.timestamp and rec.sessionId:
            self.first = (rec.sessionId, rec.timestamp)
        kind = rec.type
        if kind == "assistant" and rec.message is not None and rec.message.usage is not None:
            self._response(rec, rec.message)
        elif kind == "cost-state" and rec.sessionId and rec.modelUsage:
            self.costs.append((rec.sessionId, {
                m: {name: _total(name, v) for field, name in _TOTALS
                    if (v := getattr(u, field)) is not None and v > 0}
                for m, u in rec.modelUsage.items()}))

    def _response(self, rec: _Line, msg: _Message) -> None:
        model = msg.model or "unknown"
        if model == SYNTHETIC:
            self.not_billed += 1
            return
        session = rec.sessionId
        if not session:
            raise BadLine("bad_record")
        u = msg.usage
        inp, out = tokens(u.input_tokens), tokens(u.output_tokens)
        read = tokens(u.cache_read_input_tokens)
        write = tokens(u.cache_creation_input_tokens)
        one_h = 0
        cache = u.cache_creation
        if cache is not None:
            one_h = tokens(cache.ephemeral_1h_input_tokens)
            write = max(write, one_h + tokens(cache.ephemeral_5m_input_tokens))
        if inp + out + read + write > MAX_REQUEST_TOKENS:
            raise BadLine("implausible_tokens")
        details = u.output_tokens_details
        thinking = min(tokens(details.thinking_tokens), out) if details is not None else 0
        tiered = self.tiered.get(model)
        if tiered is None:  # whether the model has a long-context tier at all
            is_long = getattr(self.prices, "is_long_context", None)  # a new PriceTable API
            tiered = self.tiered[model] = bool(is_long and is_long(model, float("inf")))
        long = 1 if tiered and self.prices.is_long_context(model, inp + read + write) else 0
        figures = (inp, out, read, write, one_h, thinking, long)
        if min(figures) < 0:
            raise BadLine("bad_record")
        if msg.id:
            key = identity(f"claude\x1f{msg.id}")
        else:  # no message id (very old lines): the line's own identity, copied with it
            key = identity(f"claude-line\x1f{rec.uuid or (session, rec.timestamp, figures)}")
        # the request id tells apart two requests under one message id (a test server's)
        rid = zlib.crc32(rec.requestId.encode()) + 1 if rec.requestId else 0
        # one string per session and model: they travel from a worker process once
        owner, model = intern(rec.requestSessionId or session), intern(model)
        side = bool(rec.isSidechain)
        asked = rec.requestedModel
        if asked and asked != model and (owner, model) not in self.requested:
            self.requested[owner, model] = intern(asked)
        if owner != session:  # a copy of another session's request: its cost-state too
            self.copies.add(session)
        facts = self.sessions.get(owner)
        stamp = rec.timestamp
        if facts is None:
            self.sessions[owner] = [stamp, stamp, rec.cwd, rec.entrypoint, rec.version]
        elif stamp:  # ISO times in UTC: they sort as text
            if facts[0] is None or stamp < facts[0]:
                facts[0] = stamp
            if facts[1] is None or stamp > facts[1]:
                facts[1] = stamp
        i = self.index.get(key)
        if i is not None:  # another line of a response of this file
            known = self.responses[i]
            if not rid or not known[1] or rid == known[1]:
                larger = sum(figures[:4]) > sum(known[4][:4])
                if larger or (known[5] and not side):
                    if larger:
                        known[3], known[4] = model, figures
                    if known[5] and not side:
                        known[2], known[5] = owner, False
                    known[1] = known[1] or rid
                else:
                    self.duplicates += 1
                return
        else:
            self.index[key] = len(self.responses)
        self.responses.append([key, rid, owner, model, figures, side])

    def finish(self) -> None:
        """End of the read: what is left to count travels light, summed here (the reading
        process has time to spare; the one counting has not)."""
        self.index = {}
        self.tiered = {}
        self.sums = figure_sums((r[2], r[3], r[4]) for r in self.responses)

    def keys(self) -> list[int]:
        return [r[0] for r in self.responses]

    def count(self, book) -> None:
        session = book.session
        for owner, (first, last, cwd, entrypoint, version) in self.sessions.items():
            s = session(owner)
            s.saw(_time(first), cwd, entrypoint, version)
            s.saw(_time(last))
        book.count_many(self.responses, self.sums)
        for copier in self.copies:
            session(copier).set_state("copies", 1, figures=True)
        for (owner, model), asked in self.requested.items():
            s = session(owner)
            mine = s.state.get("requested") or {}
            if mine.get(model) != asked:
                s.set_state("requested", {**mine, model: asked}, figures=True)
        for owner, stated in self.costs:
            s = session(owner)
            known = s.state.get("totals") or {}
            grown = {m: {**known.get(m, {}), **{n: v for n, v in figures.items()
                                                 if v > known.get(m, {}).get(n, 0.0)}}
                     for m, figures in stated.items()}
            if grown != {m: known[m] for m in grown if m in known}:
                s.set_state("totals", {**known, **grown}, figures=True)
        if self.first is not None:
            session(self.first[0]).saw(_time(self.first[1]))
        book.result.not_billed += self.not_billed
        book.result.duplicates += self.duplicates


def totals(state: dict) -> dict[str, dict[str, float]]:
    """The session's totals per requested model from its last cost-state (tokens by ledger
    type and cost_usd), unless its transcript carries copies of another session's requests,
    which its cost-state includes. Sessions imported before aitrack read cost-state tokens
    kept only its cost."""
    if state.get("copies"):
        return {}
    stated = {m: dict(figures) for m, figures in (state.get("totals") or {}).items()}
    for model, usd in (state.get("cost") or {}).items():
        if usd > stated.get(model, {}).get("cost_usd", 0.0):
            stated.setdefault(model, {})["cost_usd"] = usd
    return {m: figures for m, figures in stated.items() if figures}


def metrics(state: dict) -> dict[str, dict[str, float]]:
    """The cost part of `totals` (the reader contract's older name)."""
    return {m: {"cost_usd": f["cost_usd"]} for m, f in totals(state).items() if "cost_usd" in f}
