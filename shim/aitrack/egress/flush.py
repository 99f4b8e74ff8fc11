"""`aitrack flush`: deliver every pending payload now, and say what is left and why.

The retry schedule is ignored; retryable failures are retried with backoff, up to
FLUSH_MAX_FAILURES in a row, within the caller's time bound. Rows another run is sending are
waited for. Batches go through the same Courier as the background forwarder's.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

from aitrack.config.paths import Paths
from aitrack.config.profile import Endpoint, Profile
from aitrack.egress import outbox, transport
from aitrack.egress.access import read_tokens, sendable_signals
from aitrack.egress.backoff import retry_delay
from aitrack.egress.courier import Courier, Outcome, stop_line
from aitrack.egress.forward_log import MIB, ForwardLog, eviction_line
from aitrack.store import ledger

FLUSH_MAX_FAILURES = 4  # consecutive retryable failures before `aitrack flush` gives up


class FlushError(Exception):
    """Nothing could be attempted: one line naming the fix."""


@dataclass
class FlushReport:
    endpoint: str
    outcome: Outcome = field(default_factory=Outcome)
    revived: int = 0
    eviction: outbox.Eviction | None = None
    counts: outbox.Counts | None = None
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


def drain(paths: Paths, profile: Profile, *, retry_dead: bool = False, timeout_s: float = 60.0,
          on_answer=None) -> FlushReport:
    """Deliver every pending payload now (the retry schedule ignored), within `timeout_s`.

    Raises FlushError when there is no endpoint.
    """
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


def _deliver_all(db: sqlite3.Connection, endpoint: Endpoint, signals: tuple[str, ...],
                 log: ForwardLog, timeout_s: float, report: FlushReport, on_answer
                 ) -> list[str]:
    """Why something is left pending, one line each (none when everything went)."""
    tokens, errors = read_tokens(endpoint, signals)
    if not tokens:
        return errors
    log.secrets.update(tokens.values())
    courier = Courier(db, endpoint, tokens, log, on_answer)
    deadline = courier.deadline = time.monotonic() + timeout_s
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
                errors.append(stop_line(out, endpoint))
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
