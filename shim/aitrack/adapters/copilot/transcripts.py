"""Copilot CLI's files: its sessions' event logs and the OTel file exporter's lines.

`session-state/<session>/events.jsonl`: a `session.start` line (session id, start time, cwd,
version), then per request a `session.usage_record` event whose `data.usage` holds the
figures, `model`, `cost` and `apiCallId` (the provider's response id), in the parent's log
for a subagent's requests too (`agentId` says whose). The OTel file exporter writes one span
or metric per line; its `chat` spans are the same requests under the same response id. So a
request is keyed by its response id in both, and counted once (the package docstring).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import msgspec

from aitrack.adapters.copilot import locate
from aitrack.adapters.copilot.telemetry import PREMIUM
from aitrack.adapters.reading import FileRead, decode, identity
from aitrack.domain.moments import epoch

TOOL = "copilot"
# a usage record, a span carrying usage, a session's totals at its end; session.start is a
# log's first line (a head line)
MARKERS = (b'"session.usage_record"', b'"gen_ai.usage.input_tokens"', b'"session.shutdown"')
DEPTH = 1  # session-state/<session>/events.jsonl; otel/*.jsonl
Number = int | float | None


class _Accounting(msgspec.Struct):
    usageId: str | None = None  # noqa: N815 - the file's names
    sourceSessionId: str | None = None  # noqa: N815
    sequence: int | None = None


class _Usage(msgspec.Struct):
    model: str | None = None
    inputTokens: Number = 0  # noqa: N815
    outputTokens: Number = 0  # noqa: N815
    cacheReadTokens: Number = 0  # noqa: N815
    cacheWriteTokens: Number = 0  # noqa: N815
    reasoningTokens: Number = 0  # noqa: N815
    cost: Number = 0
    apiCallId: str | None = None  # noqa: N815
    accounting: _Accounting | None = None


class _Context(msgspec.Struct):
    cwd: str | None = None


class _ModelMetrics(msgspec.Struct):
    usage: _Usage | None = None


class _Data(msgspec.Struct):
    sessionId: str | None = None  # noqa: N815
    startTime: str | None = None  # noqa: N815
    copilotVersion: str | None = None  # noqa: N815
    context: _Context | None = None
    usage: _Usage | None = None
    modelMetrics: dict[str, _ModelMetrics] | None = None  # noqa: N815 - session.shutdown's


class _Attrs(msgspec.Struct):
    """The attributes of a `chat` span that aitrack reads (the rest are never built)."""

    operation: str | None = msgspec.field(default=None, name="gen_ai.operation.name")
    request_model: str | None = msgspec.field(default=None, name="gen_ai.request.model")
    response_model: str | None = msgspec.field(default=None, name="gen_ai.response.model")
    response_id: str | None = msgspec.field(default=None, name="gen_ai.response.id")
    session: str | None = msgspec.field(default=None, name="gen_ai.conversation.id")
    input: Number = msgspec.field(default=None, name="gen_ai.usage.input_tokens")
    output: Number = msgspec.field(default=0, name="gen_ai.usage.output_tokens")
    cache_read: Number = msgspec.field(default=0, name="gen_ai.usage.cache_read.input_tokens")
    cache_write: Number = msgspec.field(default=0, name="gen_ai.usage.cache_write.input_tokens")
    reasoning: Number = msgspec.field(default=0, name="gen_ai.usage.reasoning.output_tokens")
    cost: Number = msgspec.field(default=0, name="github.copilot.cost")


class _Line(msgspec.Struct):
    type: str | None = None
    id: str | None = None
    timestamp: str | None = None
    data: _Data | None = None
    name: str | None = None  # a span's
    traceId: str | None = None  # noqa: N815
    spanId: str | None = None  # noqa: N815
    endTime: list[int] | None = None  # noqa: N815 - [seconds, nanoseconds]
    attributes: _Attrs | None = None


_DECODER = msgspec.json.Decoder(_Line)


def roots(env=None) -> list[Path]:
    return locate.transcript_roots(env)


def is_transcript(name: str) -> bool:
    return name.endswith(".jsonl")


def order(path: str, stat: os.stat_result) -> tuple:
    return (stat.st_mtime_ns, path)


class Reader:
    """One file's new lines: its requests, each with its session, model and figures."""

    def __init__(self, file: FileRead, prices):
        self.file = file
        self.prices = prices
        self.requests: list[tuple] = []  # (key, seq, session, model, usage, premium, at)
        self.starts: list[tuple] = []  # (session, started, cwd, version)
        self.ends: list[tuple] = []  # (session, {model: its totals in ledger types})
        self.tiered: dict[str, bool] = {}  # model -> has a long-context tier
        if "session" not in file.context:
            sid = locate.session_of(file.path)
            if sid:
                file.context["session"] = sid

    def line(self, raw: bytes, head: bool) -> None:
        rec = decode(_DECODER, raw)
        if rec.type == "span":
            self._span(rec)
            return
        data = rec.data
        if data is None:
            return
        if rec.type == "session.start":
            sid = self.file.context.setdefault("session", data.sessionId) or data.sessionId
            self.starts.append((sid, epoch(data.startTime) or epoch(rec.timestamp),
                                data.context.cwd if data.context else None,
                                data.copilotVersion))
        elif rec.type == "session.shutdown" and data.modelMetrics:
            self.ends.append((self.file.context.get("session"), {
                m: _ledger(mm.usage) for m, mm in data.modelMetrics.items()
                if mm.usage is not None}))
        elif rec.type == "session.usage_record" and data.usage is not None:
            u, sid = data.usage, self.file.context.get("session")
            acc = u.accounting
            rid = u.apiCallId or (acc.usageId if acc else None) or rec.id
            # the record's own place in its log: two records under one response id (a local
            # provider that answers every request with the same id) stay two requests
            seq = zlib.crc32(f"{acc.sourceSessionId}\x1f{acc.sequence}".encode()) + 1 if (
                acc and acc.sequence) else 0
            self.requests.append((_key(sid, rid), seq, sid, u.model or "unknown", {
                "input": _int(u.inputTokens), "output": _int(u.outputTokens),
                "cache_read": _int(u.cacheReadTokens), "cache_write": _int(u.cacheWriteTokens),
                "reasoning": _int(u.reasoningTokens)}, _float(u.cost), epoch(rec.timestamp)))

    def _span(self, rec: _Line) -> None:
        """A `chat` span (as telemetry.span_contributions reads one off the wire)."""
        a = rec.attributes
        if a is None or a.operation != "chat" or a.input is None:
            return  # not a request: a turn's `invoke_agent` repeats its totals
        rid = a.response_id or f"{rec.traceId}:{rec.spanId}"
        at = rec.endTime[0] + rec.endTime[1] / 1e9 if rec.endTime and len(
            rec.endTime) == 2 else None
        usage = {"input": _int(a.input), "output": _int(a.output),
                 "cache_read": _int(a.cache_read), "cache_write": _int(a.cache_write),
                 "reasoning": _int(a.reasoning)}
        self.requests.append((_key(a.session, rid), 0, a.session,
                              a.request_model or a.response_model or "unknown", usage,
                              _float(a.cost), at))

    def keys(self) -> list[int]:
        return [r[0] for r in self.requests]

    def count(self, book) -> None:
        for sid, started, cwd, version in self.starts:
            if sid:
                book.session(sid).saw(started, cwd, None, version)
        for sid, totals in self.ends:  # the largest of a session's ends (a resumed one's)
            if sid and totals:
                s = book.session(sid)
                known = s.state.get("totals") or {}
                merged = {m: {k: max(v, known.get(m, {}).get(k, 0)) for k, v in t.items()}
                          for m, t in totals.items()}
                s.set_state("totals", {**known, **merged}, figures=True)
        for key, seq, sid, model, usage, premium, at in self.requests:
            if not sid:
                book.skip("no_session_id")
                continue
            s = book.session(sid)
            s.saw(at)
            if premium and not book.known(key):  # the charge, once per request
                charged = dict(s.state.get("premium") or {})
                charged[model] = round(charged.get(model, 0.0) + premium, 9)
                s.set_state("premium", charged, figures=True)
            book.count(key, seq, s, model, self._figures(model, usage))

    def _figures(self, model: str, usage: dict[str, int]) -> tuple[int, ...]:
        """In FIGURES order, then 1 for a long-context request: as telemetry.request_usage
        maps a span (input less cache reads and writes; output holds reasoning)."""
        read, write = usage["cache_read"], usage["cache_write"]
        inp = max(0, usage["input"] - read - write)
        tiered = self.tiered.get(model)
        if tiered is None:  # whether the model has a long-context tier at all
            tiered = self.tiered[model] = bool(
                self.prices is not None and self.prices.is_long_context(model, float("inf")))
        long = 1 if tiered and self.prices.is_long_context(model, inp + read + write) else 0
        return (inp, usage["output"], read, write, 0, usage["reasoning"], long)


def _key(session: str | None, response_id: str) -> int:
    """A request's key: its session and the provider's response id, which the spans, the
    events and the exporter's lines all carry."""
    return identity(f"copilot\x1f{session}\x1f{response_id}")


def totals(state: dict) -> dict[str, dict[str, float]]:
    """A session's totals per model at its end (`session.shutdown`'s modelMetrics: a floor
    under its usage records), with the premium requests they were charged."""
    out = {m: dict(t) for m, t in (state.get("totals") or {}).items()}
    for m, figures in metrics(state).items():
        out.setdefault(m, {}).update(figures)
    return out


def metrics(state: dict) -> dict[str, dict[str, float]]:
    """The premium requests the session's requests were charged, per model."""
    return {m: {PREMIUM: v} for m, v in (state.get("premium") or {}).items() if v}


def _ledger(u: _Usage) -> dict[str, int]:
    """Usage figures in ledger types: input less cache reads and writes; output holds
    reasoning."""
    read, write = _int(u.cacheReadTokens), _int(u.cacheWriteTokens)
    out = {"input": max(0, _int(u.inputTokens) - read - write), "cache_read": read,
           "cache_creation": write, "output": _int(u.outputTokens),
           "reasoning": _int(u.reasoningTokens)}
    return {k: v for k, v in out.items() if v}


def _int(value) -> int:
    try:
        return max(0, int(value)) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def _float(value) -> float:
    try:
        return max(0.0, float(value)) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0
