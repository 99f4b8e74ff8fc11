"""The background delivery of one tracked run's telemetry (or of the agent's).

One thread per run. It starts after the child is spawned, reads the tokens from the
keychain once (access.py), sends this run's payloads as they are queued and then any older
backlog (all sessions' rows), and when the child has exited keeps going for at most
`endpoint.flush_timeout_s`, sending what is due but never waiting out the backoff of an
unreachable endpoint. Each batch goes through a Courier (courier.py), which says what the
endpoint's answer means. `aitrack flush` drains the same outbox synchronously (flush.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from aitrack.config.paths import Paths
from aitrack.config.profile import Profile
from aitrack.egress import outbox, transport
from aitrack.egress.access import read_tokens, sendable_signals
from aitrack.egress.courier import Courier, stop_line
from aitrack.egress.forward_log import MIB, ForwardLog, eviction_line
from aitrack.store import ledger

IDLE_POLL_S = 30.0
BOUND_CHECK_EVERY_S = 0.25


class Forwarder:
    """The background delivery of one tracked run (see the module's docstring)."""

    def __init__(self, paths: Paths, profile: Profile, notify: Callable[[str], None],
                 session_id: str | None = None):
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
    def start(cls, paths: Paths, profile: Profile, notify: Callable[[str], None],
              session_id: str | None = None) -> Forwarder:
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
        self._deliver(Courier(self.db, self.endpoint, tokens, self.log))
        self._leftovers()

    def _deliver(self, courier: Courier) -> None:
        """Batch after batch until the run is over or nothing can be sent any more."""
        recovered = False
        while True:
            self.wake.clear()
            if self.deadline is not None and time.monotonic() >= self.deadline:
                return
            self._check_bound()
            self.sending = True
            out = courier.next(session_id=self.session_id)
            self.sending = False
            if out is None:
                if not self._wait_for_work(courier.signals):
                    return
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
                line = stop_line(out, self.endpoint)
                self._say(line, line)
                if not courier.signals:  # nothing left to send this run
                    self._idle()
                    return
                continue
            if out.halt == "retry":
                self.last_error = out.error
                recovered = False
                if not self._pause(out.delay, unreachable=out.status is None):
                    return
            elif out.sent:
                self.last_error = None

    def _leftovers(self) -> None:
        self._check_bound(force=True)
        if self.last_error and outbox.counts(self.db).pending:
            self._say("unsent", f"org endpoint: {self.last_error}; unsent telemetry stays "
                                "queued and goes with the next run or `aitrack flush`")

    def _wait_for_work(self, signals: tuple[str, ...]) -> bool:
        """Wait for a payload or the next due row; False when the run is over."""
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
        now = time.monotonic()
        if not force and now - self.bound_checked < BOUND_CHECK_EVERY_S:
            return
        self.bound_checked = now
        eviction = outbox.enforce_bound(self.db, self.endpoint.outbox_max_mb * MIB)
        if eviction is not None:
            self._say("bound", eviction_line(eviction))
