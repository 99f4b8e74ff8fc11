"""Delivery of queued telemetry to the org endpoint.

`Forwarder`: one background thread per tracked run. It starts after the child is spawned,
reads the tokens from the keychain once (one read per distinct account: a signal may have
its own, `Endpoint.signal_account`), sends this run's payloads as they are queued and
then any older backlog (all sessions' rows), and when the child has exited keeps going for
at most `endpoint.flush_timeout_s`, sending what is due but never waiting out the backoff of
an unreachable endpoint. `drain`: the synchronous delivery behind `aitrack flush`.
Both use a `Courier`, which claims a batch from the outbox, posts it with its signal's token
and records the answer. A signal without a token is never claimed: it stays queued while
the others go.

Answers: 2xx -> the rows leave the outbox (a partialSuccess is logged, never retried);
429/502/503/504 and no answer -> retried with exponential backoff and jitter, never sooner
than Retry-After; 401/403, and TLS or configuration failures -> nothing more of that signal
is sent this run and its rows stay pending (the other signals keep going); any other
status -> the rows become dead letters, kept with the endpoint's answer until
`aitrack flush --retry-dead`. A batch of several payloads refused for good is re-sent one
payload at a time, so that only the culprit is buried.

This module is imported on the main thread after the spawn: keep its top-level imports
light (ssl, http.client and keyring load inside the thread).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

RETRYABLE = frozenset({429, 502, 503, 504})
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 300.0
RETRY_AFTER_MAX_S = 3600.0  # a longer Retry-After is capped: the next run tries again anyway
LEASE_MARGIN_S = 30.0
IDLE_POLL_S = 30.0
BOUND_CHECK_EVERY_S = 0.25
FLUSH_MAX_FAILURES = 4  # consecutive retryable failures before `aitrack flush` gives up
MIB = 1024 * 1024
LOG_MAX_BYTES = 1 * MIB


def retry_delay(attempt: int, retry_after: float | None = None, rng=None) -> float:
    """Seconds before attempt `attempt + 1`: 1, 2, 4... s capped at 5 min, times a jitter
    of 0.5-1; never sooner than Retry-After (plus up to 10% so that clients spread out)."""
    if rng is None:
        import random

        rng = random.random
    backoff = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempt - 1))
    delay = backoff * (0.5 + 0.5 * rng())
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_MAX_S) * (1 + 0.1 * rng()))
    return delay


def lease_s(endpoint) -> float:
    """Long enough for one bounded exchange (connect, send, answer), with a margin."""
    return 2 * endpoint.timeout_s + LEASE_MARGIN_S


def no_token_line(account: str, signals: tuple[str, ...]) -> str:
    from aitrack.config.keychain import set_command

    return (f"no org token in the keychain (account {account!r}): {' and '.join(signals)} "
            f"telemetry stays queued in the outbox; run `{set_command(account)}`")


def read_tokens(endpoint, signals: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """Each signal's token, read once per distinct account, and one line naming the fix for
    each account that has none. Never raises."""
    from aitrack.config import keychain

    tokens: dict[str, str] = {}
    problems: list[str] = []
    for account, group in endpoint.accounts(signals).items():
        try:
            token = keychain.get_token(account)
        except keychain.KeychainUnavailable as exc:
            problems.append(f"cannot read the org token: {exc}; telemetry stays queued in the "
                            "outbox")
            break  # the keychain itself is the problem: the other accounts would say the same
        except Exception as exc:  # noqa: BLE001 - a D-Bus or backend failure outside keyring's types
            problems.append(f"cannot read the org token (keychain error {type(exc).__name__}): "
                            "unlock the keychain or run `aitrack doctor`; telemetry stays "
                            "queued in the outbox")
            break
        if token:
            tokens.update(dict.fromkeys(group, token))
        else:
            problems.append(no_token_line(account, group))
    return tokens, problems


def sendable_signals(endpoint) -> tuple[tuple[str, ...], list[str]]:
    """The profile's signals that have a URL, and a line for each that has none."""
    ok, problems = [], []
    for signal in endpoint.signals:
        if endpoint.signal_url(signal):
            ok.append(signal)
        else:
            problems.append(f"endpoint.signals lists {signal} but no url or {signal}_url is set: "
                            f"{signal} stays queued; fix the profile")
    return tuple(ok), problems


def size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    return f"{n / 1024:.1f} KB" if n < MIB else f"{n / MIB:.1f} MB"


class ForwardLog:
    """forwarder.log under paths.log_dir: retries, dead letters, partial successes, evictions.

    Never a token (masked if an answer echoes it) nor request headers. Rotated at 1 MiB.
    """

    def __init__(self, directory: Path, name: str = "forwarder.log"):
        self.path = directory / name  # the agent keeps its own log the same way
        self.secrets: set[str] = set()

    def __call__(self, message: str) -> None:
        from aitrack.config.keychain import mask
        from aitrack.config.private_files import open_private, private_dir

        message = mask(message, self.secrets)  # echoed prefixes of a token too
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        line = f"{stamp} pid={os.getpid()} {' '.join(message.split())}\n".encode()
        try:
            private_dir(self.path.parent)
            try:
                if self.path.lstat().st_size > LOG_MAX_BYTES:
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            except FileNotFoundError:
                pass
            fd = open_private(self.path, os.O_WRONLY | os.O_APPEND)  # 0600, never a link
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError:
            pass  # a log that cannot be written must not stop delivery


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


class Courier:
    """Claims a batch, posts it with its signal's token, and records the endpoint's answer
    in the outbox. A signal that cannot be sent this run (token refused, TLS or configuration
    failure) leaves `tokens`; the others keep going."""

    def __init__(self, db, endpoint, tokens: dict[str, str], log: ForwardLog, on_answer=None):
        from aitrack.egress import outbox

        self.db = db
        self.endpoint = endpoint
        self.tokens = dict(tokens)  # signal -> token, for the signals still sent this run
        self.log = log
        self.on_answer = on_answer  # (signal, rows, answer) -> None, for --debug
        self.owner = outbox.owner_id()
        self.lease_s = lease_s(endpoint)

    @property
    def signals(self) -> tuple[str, ...]:
        return tuple(self.tokens)

    def next(self, session_id: str | None = None, due_only: bool = True) -> Outcome | None:
        """Deliver the next batch; None when nothing can be claimed now."""
        from aitrack.egress import outbox

        rows = outbox.claim(self.db, self.owner, self.signals, self.lease_s,
                            session_id=session_id, due_only=due_only)
        return self.deliver(rows) if rows else None

    def deliver(self, rows) -> Outcome:
        from aitrack.egress import otlp, outbox, transport

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
        answer = transport.post(self.endpoint, url, body, content_type, self.tokens[signal])
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

    def _one_by_one(self, rows, error: str) -> Outcome:
        from aitrack.egress import outbox

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


_RESPONSES = {
    "metrics": ("metrics_service_pb2", "ExportMetricsServiceResponse", "rejected_data_points"),
    "logs": ("logs_service_pb2", "ExportLogsServiceResponse", "rejected_log_records"),
    "traces": ("trace_service_pb2", "ExportTraceServiceResponse", "rejected_spans"),
}


def partial_success(signal: str, answer) -> tuple[int, str] | None:
    """(rejected items, message) of a 2xx answer's partialSuccess, if it has one."""
    import importlib

    from google.protobuf import json_format
    from google.protobuf.message import DecodeError

    if not answer.body:
        return None
    module, name, rejected_field = _RESPONSES[signal]
    package = "trace" if signal == "traces" else signal
    cls = getattr(importlib.import_module(
        f"opentelemetry.proto.collector.{package}.v1.{module}"), name)
    message = cls()
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


# ---------------------------------------------------------------- during a run


class Forwarder:
    """The background delivery of one tracked run (see the module's docstring)."""

    def __init__(self, paths, profile, notify, session_id: str | None = None):
        self.paths = paths
        self.endpoint = profile.endpoint
        self.say_once = notify  # one line for the user, printed after the child exits
        self.session_id = session_id
        self.wake = threading.Event()
        self.done = threading.Event()
        self.deadline: float | None = None  # monotonic; set by finish()
        self.said: set[str] = set()
        self.last_error: str | None = None
        self.sent = 0
        self.sending = False  # talking to the endpoint (connecting or a request in flight)
        self.db = None
        self.log: ForwardLog | None = None
        self.bound_checked = 0.0
        self.thread = threading.Thread(target=self._run, name="aitrack-forwarder", daemon=True)

    @classmethod
    def start(cls, paths, profile, notify, session_id: str | None = None) -> Forwarder:
        forwarder = cls(paths, profile, notify, session_id)
        forwarder.thread.start()
        return forwarder

    def notify(self) -> None:
        """A payload was queued."""
        self.wake.set()

    def finish(self, timeout_s: float) -> None:
        """The child has exited: deliver what is due for at most `timeout_s`, then return."""
        self.deadline = time.monotonic() + timeout_s
        self.wake.set()
        if self.done.wait(timeout_s):
            return
        if self.last_error:
            self._say("unsent", f"org endpoint: {self.last_error}; unsent telemetry stays "
                                "queued and goes with the next run or `aitrack flush`")
        elif self.sending and not self.sent:  # a black hole looks like this: say it once
            bound = self.endpoint.flush_timeout_s
            self._say("unsent", f"the org endpoint did not answer within {bound:g} s "
                                "(endpoint.flush_timeout_s): unsent telemetry stays queued and "
                                "goes with the next run or `aitrack flush`")

    # ------------------------------------------------------------ the thread

    def _say(self, key: str, line: str) -> None:
        if key not in self.said:
            self.said.add(key)
            self.say_once(line)
        if self.log is not None:
            self.log(line)

    def _run(self) -> None:
        try:
            self._serve()
        except Exception as exc:  # noqa: BLE001 - the tool must never notice
            if self.log is not None:
                self.log(f"forwarding stopped: {type(exc).__name__}: {exc}")  # token masked
            self._say("crash", f"forwarding stopped ({type(exc).__name__}); telemetry stays "
                               "queued: run `aitrack flush`")
        finally:
            self.done.set()

    def _serve(self) -> None:
        # The keychain is the slow part of starting (backend discovery, D-Bus): read it in a
        # thread of its own while this one prepares the outbox and connects to the endpoint.
        signals, problems = sendable_signals(self.endpoint)
        keychain_answer: list = []
        reader = threading.Thread(target=lambda: keychain_answer.append(
            read_tokens(self.endpoint, signals)), name="aitrack-keychain", daemon=True)
        reader.start()
        from aitrack.egress import outbox, transport
        from aitrack.store import ledger

        self.log = ForwardLog(self.paths.log_dir)
        self.db = ledger.connect(self.paths.ledger)
        for line in problems:
            self._say(line, line)
        outbox.reap(self.db)
        buried = outbox.bury_unforwarded(self.db, self.endpoint.signals)
        if buried:
            self.log(f"{buried} pending payload(s) of signals not in endpoint.signals kept "
                     "as dead letters")
        self._check_bound()
        self.sending = True
        transport.connect_ahead(self.endpoint, [self.endpoint.signal_url(s) for s in signals])
        self.sending = False
        reader.join()
        tokens, missing = keychain_answer[0] if keychain_answer else ({}, ["keychain read failed"])
        for line in missing:  # those signals stay queued; the others go
            self._say(line, line)
        if not tokens:
            self._idle()
            return
        self.log.secrets.update(tokens.values())
        courier = Courier(self.db, self.endpoint, tokens, self.log)
        recovered = False
        while True:
            self.wake.clear()
            if self.deadline is not None and time.monotonic() >= self.deadline:
                break
            self._check_bound()
            self.sending = True
            out = courier.next(session_id=self.session_id)
            self.sending = False
            if out is None:
                if not self._wait_for_work(courier.signals):
                    break
                continue
            self.sent += out.sent
            if out.sent and not recovered:
                outbox.make_due(self.db)  # the endpoint answers: earlier backoffs are over
                recovered = True
            if out.dead:
                self._say("dead", f"the endpoint refused telemetry ({out.dead_error}): it is "
                                  "kept as a dead letter; fix the cause, then run "
                                  "`aitrack flush --retry-dead`")
            if out.halt == "stop":
                line = _stop_line(out, self.endpoint)
                self._say(line, line)
                if not courier.signals:  # nothing left to send this run
                    self._idle()
                    break
                continue
            if out.halt == "retry":
                self.last_error = out.error
                recovered = False
                if not self._pause(out.delay, unreachable=out.status is None):
                    break
            elif out.sent:
                self.last_error = None
        self._leftovers()

    def _leftovers(self) -> None:
        from aitrack.egress import outbox

        self._check_bound(force=True)
        if self.last_error and outbox.counts(self.db).pending:
            self._say("unsent", f"org endpoint: {self.last_error}; unsent telemetry stays "
                                "queued and goes with the next run or `aitrack flush`")

    def _wait_for_work(self, signals: tuple[str, ...]) -> bool:
        """Wait for a payload or the next due row; False when the run is over."""
        from aitrack.egress import outbox

        due = outbox.next_due(self.db, signals)
        wait = IDLE_POLL_S if due is None else max(0.0, due - time.time()) + 0.01
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if due is None or wait > left:
                return False
        self.wake.wait(min(wait, IDLE_POLL_S))
        return True

    def _pause(self, delay: float, unreachable: bool) -> bool:
        """Send nothing for `delay` s (the endpoint is down or asked us to wait).

        False when the run is over first. Once the child has exited, an unreachable endpoint
        (offline, refused, timed out) is not waited for at all: the next run will try again.
        """
        until = time.monotonic() + delay
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return True
            if self.deadline is not None and (unreachable or until > self.deadline):
                return False
            if self.wake.wait(left):
                self.wake.clear()
                self._check_bound()  # payloads keep arriving while the endpoint is down

    def _idle(self) -> None:
        """Nothing can be sent this run: only keep the outbox within its bound."""
        while self.deadline is None:
            self.wake.wait(IDLE_POLL_S)
            self.wake.clear()
            self._check_bound()
        self._check_bound(force=True)

    def _check_bound(self, force: bool = False) -> None:
        from aitrack.egress import outbox

        now = time.monotonic()
        if not force and now - self.bound_checked < BOUND_CHECK_EVERY_S:
            return
        self.bound_checked = now
        eviction = outbox.enforce_bound(self.db, self.endpoint.outbox_max_mb * MIB)
        if eviction is not None:
            self._say("bound", eviction_line(eviction))


def _stop_line(out: Outcome, endpoint) -> str:
    if out.status in (401, 403):
        from aitrack.config.keychain import set_command

        account = endpoint.signal_account(out.signal)
        return (f"the endpoint rejected the token (HTTP {out.status} for {out.signal}, account "
                f"{account!r}): run `{set_command(account)}`; {out.signal} telemetry stays "
                "queued in the outbox")
    return f"{out.error}; telemetry stays queued in the outbox"


def eviction_line(e) -> str:
    dropped = (f"{e.pending_rows} unsent payload(s)" if e.pending_rows == e.rows else
               f"{e.rows} payload(s) ({e.pending_rows} unsent, the rest dead letters)")
    return (f"the outbox reached its {e.bound_bytes // MIB} MiB bound (endpoint.outbox_max_mb): "
            f"dropped the oldest {dropped}, {size(e.bytes)}; your local ledger still counts "
            "them; run `aitrack flush` once the endpoint is reachable")


# ---------------------------------------------------------------- aitrack flush


class FlushError(Exception):
    """Nothing could be attempted: one line naming the fix."""


@dataclass
class FlushReport:
    endpoint: str
    outcome: Outcome = field(default_factory=Outcome)
    revived: int = 0
    eviction: object | None = None
    counts: object | None = None
    errors: list[str] = field(default_factory=list)  # why something is still pending

    def as_dict(self) -> dict:
        c = self.counts
        return {
            "endpoint": self.endpoint,
            "sent": self.outcome.sent,
            "sent_bytes": self.outcome.sent_bytes,
            "wire_bytes": self.outcome.wire_bytes,
            "partial_rejected": self.outcome.partial_rejected,
            "dead_new": self.outcome.dead,
            "revived": self.revived,
            "pending": c.pending,
            "pending_bytes": c.pending_bytes,
            "oldest_pending_at": c.oldest_pending_at,
            "dead": c.dead,
            "dead_bytes": c.dead_bytes,
            "evicted_total": c.evicted,
            "dead_error": self.outcome.dead_error,
            "error": "; ".join(self.errors) or None,
            "errors": self.errors,
        }


def drain(paths, profile, *, retry_dead: bool = False, timeout_s: float = 60.0,
          on_answer=None) -> FlushReport:
    """Deliver every pending payload now (the retry schedule ignored), within `timeout_s`.

    Retryable failures are retried with backoff, up to FLUSH_MAX_FAILURES in a row. Rows
    another run is sending are waited for. Raises FlushError when there is no endpoint.
    """
    from aitrack.egress import outbox
    from aitrack.store import ledger

    endpoint = profile.endpoint
    if endpoint is None:
        raise FlushError("no org endpoint is configured (local-only profile), so there is "
                         "nothing to forward: set [endpoint] in your profile or ask IT for the "
                         "managed one (`aitrack profile show --origin`)")
    report = FlushReport(endpoint=endpoint.url or endpoint.signal_url(endpoint.signals[0]) or "")
    if not paths.ledger.exists():  # nothing was ever tracked here
        report.counts = outbox.Counts(pending=0, dead=0, pending_bytes=0, oldest_pending_at=None)
        return report
    log = ForwardLog(paths.log_dir)
    db = ledger.connect(paths.ledger)
    try:
        signals, problems = sendable_signals(endpoint)
        outbox.reap(db)
        outbox.bury_unforwarded(db, endpoint.signals)
        report.eviction = outbox.enforce_bound(db, endpoint.outbox_max_mb * MIB)
        if report.eviction is not None:
            log(eviction_line(report.eviction))
        if retry_dead:
            report.revived = outbox.revive(db)
            outbox.bury_unforwarded(db, endpoint.signals)
        if outbox.counts(db).pending:
            errors = _deliver_all(db, endpoint, signals, log, timeout_s, report, on_answer)
            report.errors = list(dict.fromkeys(errors + problems))
        report.counts = outbox.counts(db)
    finally:
        db.close()
    return report


def _deliver_all(db, endpoint, signals, log, timeout_s, report, on_answer) -> list[str]:
    """Why something is left pending, one line each (none when everything went)."""
    from aitrack.egress import outbox, transport

    tokens, errors = read_tokens(endpoint, signals)
    if not tokens:
        return errors
    log.secrets.update(tokens.values())
    courier = Courier(db, endpoint, tokens, log, on_answer)
    deadline = time.monotonic() + timeout_s
    failures = 0
    try:
        while True:
            out = courier.next(due_only=False)
            if out is None:
                if outbox.claimed(db) and time.monotonic() < deadline:
                    time.sleep(0.1)  # another run is sending some: wait for its answer
                    continue
                if outbox.counts(db).pending and outbox.claimed(db):
                    errors.append("another aitrack run is still sending some payloads")
                return errors
            report.outcome.add(out)
            if out.halt == "stop":
                errors.append(_stop_line(out, endpoint))
                if not courier.signals:
                    return errors
                continue
            if out.halt != "retry":
                failures = 0
                continue
            failures += 1
            delay = retry_delay(failures, out.retry_after)
            if failures >= FLUSH_MAX_FAILURES or time.monotonic() + delay > deadline:
                return [*errors, f"{out.error} (gave up after {failures} attempt(s))"]
            time.sleep(delay)
    finally:
        transport.close_connections()
