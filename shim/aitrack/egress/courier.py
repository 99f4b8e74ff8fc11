"""One batch to the org endpoint: claimed from the outbox, posted, and the answer recorded.

Answers: 2xx -> the rows leave the outbox (a partialSuccess is logged, never retried);
429/502/503/504 and no answer -> retried with exponential backoff and jitter, never sooner
than Retry-After (backoff.py); 401/403, and TLS or configuration failures -> nothing more of
that signal is sent this run and its rows stay pending (the other signals keep going); any
other status -> the rows become dead letters, kept with the endpoint's answer until
`aitrack flush --retry-dead`. A batch of several payloads refused for good is re-sent one
payload at a time, so that only the culprit is buried.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from aitrack.config.profile import Endpoint
from aitrack.egress import access, otlp, outbox, transport
from aitrack.egress.backoff import RETRYABLE, retry_delay
from aitrack.egress.forward_log import size

LEASE_MARGIN_S = 30.0
# what a 2xx answer's partialSuccess says was rejected, per signal
_RESPONSES = {
    "metrics": (metrics_service_pb2.ExportMetricsServiceResponse, "rejected_data_points"),
    "logs": (logs_service_pb2.ExportLogsServiceResponse, "rejected_log_records"),
    "traces": (trace_service_pb2.ExportTraceServiceResponse, "rejected_spans"),
}


def lease_s(endpoint: Endpoint) -> float:
    """Long enough for one bounded exchange (connect, send, answer), with a margin."""
    return 2 * endpoint.timeout_s + LEASE_MARGIN_S


@dataclass
class Outcome:
    """What one claimed batch came to. `halt`: None, "retry" (wait `delay`) or "stop"."""

    signal: str | None = None
    sent: int = 0
    sent_bytes: int = 0  # protobuf bytes delivered
    wire_bytes: int = 0  # gzip bytes sent, all attempts
    dead: int = 0
    partial_rejected: int = 0
    halt: str | None = None
    delay: float = 0.0
    retry_after: float | None = None
    status: int | None = None
    error: str | None = None
    dead_error: str | None = None

    def add(self, other: Outcome) -> None:
        self.sent += other.sent
        self.sent_bytes += other.sent_bytes
        self.wire_bytes += other.wire_bytes
        self.dead += other.dead
        self.partial_rejected += other.partial_rejected
        self.dead_error = other.dead_error or self.dead_error
        self.signal = other.signal
        self.halt, self.delay, self.retry_after = other.halt, other.delay, other.retry_after
        self.status, self.error = other.status, other.error


def stop_line(out: Outcome, endpoint: Endpoint) -> str:
    """Why a signal stopped for this run (`halt == "stop"`), naming the fix."""
    if out.status in (401, 403):
        return access.refused_token_line(endpoint, out.signal, out.status)
    return f"{out.error}; telemetry stays queued in the outbox"


class Courier:
    """Claims a batch, posts it with its signal's token, and records the endpoint's answer
    in the outbox. A signal that cannot be sent this run (token refused, TLS or configuration
    failure) leaves `tokens`; the others keep going."""

    def __init__(self, db: sqlite3.Connection, endpoint: Endpoint, tokens: dict[str, str],
                 log: Callable[[str], None], on_answer=None):
        self.db = db
        self.endpoint = endpoint
        self.tokens = dict(tokens)  # signal -> token, for the signals still sent this run
        self.log = log  # a ForwardLog
        self.on_answer = on_answer  # (signal, rows, answer) -> None, for --debug
        self.owner = outbox.owner_id()
        self.lease_s = lease_s(endpoint)
        self.deadline: float | None = None  # time.monotonic(): no request goes on past it

    @property
    def signals(self) -> tuple[str, ...]:
        return tuple(self.tokens)

    def next(self, session_id: str | None = None, due_only: bool = True) -> Outcome | None:
        """Deliver the next batch; None when nothing can be claimed now."""
        rows = outbox.claim(self.db, self.owner, self.signals, self.lease_s,
                            session_id=session_id, due_only=due_only)
        return self.deliver(rows) if rows else None

    def deliver(self, rows: list[outbox.Row]) -> Outcome:
        signal, ids = rows[0].signal, [r.id for r in rows]
        try:
            body, content_type = otlp.encode(signal, b"".join(r.body for r in rows),
                                             self.endpoint.protocol)
        except Exception as exc:  # noqa: BLE001 - a row that cannot be read must not block the rest
            error = f"cannot encode the stored payload ({type(exc).__name__})"
            outbox.bury(self.db, self.owner, ids, error)
            self.log(f"dead letter: {len(rows)} {signal} payload(s): {error}")
            return Outcome(signal, dead=len(rows), dead_error=error)
        url = self.endpoint.signal_url(signal)
        answer = transport.post(self.endpoint, url, body, content_type, self.tokens[signal],
                                self.deadline)
        if self.on_answer is not None:
            self.on_answer(signal, rows, answer)
        raw = sum(len(r.body) for r in rows)
        what = f"{len(rows)} {signal} payload(s), {size(raw)}"
        out = Outcome(signal, wire_bytes=answer.sent_bytes, status=answer.status,
                      error=answer.error)
        status = answer.status
        if status is not None and 200 <= status < 300:
            outbox.ack(self.db, ids)
            out.sent, out.sent_bytes = len(rows), raw
            self.log(f"sent {what} to {url}: HTTP {status} in {answer.elapsed_s * 1000:.0f} ms")
            partial = partial_success(signal, answer)
            if partial:
                out.partial_rejected = partial[0]
                self.log(f"partial success for {what}: the endpoint rejected {partial[0]} "
                         f"item(s): {partial[1] or 'no message'} (not retried)")
            return out
        if answer.fatal or status in (401, 403):
            outbox.release(self.db, self.owner, ids)
            out.halt = "stop"
            self.tokens.pop(signal, None)
            self.log(f"stopped {signal}: {what} kept pending: {answer.error}")
            return out
        if status is None or status in RETRYABLE:
            attempt = max(r.attempts for r in rows) + 1
            out.halt, out.retry_after = "retry", answer.retry_after
            out.delay = retry_delay(attempt, answer.retry_after)
            outbox.retry_later(self.db, self.owner, ids, out.delay, answer.error)
            self.log(f"retry: {what} to {url}: {answer.error}; attempt {attempt}, next in "
                     f"{out.delay:.1f} s")
            return out
        if len(rows) > 1:
            return self._one_by_one(rows, answer.error)
        outbox.bury(self.db, self.owner, ids, answer.error)
        out.dead, out.dead_error = len(rows), answer.error
        self.log(f"dead letter: {what} to {url}: {answer.error}")
        return out

    def _one_by_one(self, rows: list[outbox.Row], error: str) -> Outcome:
        self.log(f"{len(rows)} {rows[0].signal} payloads refused together ({error}): "
                 "sending them one by one")
        total = Outcome()
        for i, row in enumerate(rows):
            if not outbox.renew(self.db, self.owner, [row.id], self.lease_s):
                continue  # the lease ran out and another run took it over
            total.add(self.deliver([row]))
            if total.halt:
                outbox.release(self.db, self.owner, [r.id for r in rows[i + 1:]])
                break
        return total


def partial_success(signal: str, answer: transport.Answer) -> tuple[int, str] | None:
    """(rejected items, message) of a 2xx answer's partialSuccess, if it has one."""
    if not answer.body:
        return None
    response, rejected_field = _RESPONSES[signal]
    message = response()
    try:
        if "json" in answer.content_type:
            json_format.Parse(answer.body, message, ignore_unknown_fields=True)
        else:
            message.ParseFromString(answer.body)
    except (DecodeError, json_format.ParseError, ValueError, TypeError):
        return None
    if not message.HasField("partial_success"):
        return None
    rejected = getattr(message.partial_success, rejected_field)
    text = message.partial_success.error_message
    return (rejected, text) if rejected or text else None
