"""Payloads acknowledged before they are ledgered: the inbox, and the processor emptying it.

A receiver answers 200 as soon as a payload is durably in the inbox (a millisecond or two
for a megabyte), so a tool that waits for its export's answer (Codex does, at exit) is not
held up while aitrack decodes it. The processor then decodes the payload, enforces the
profile's attributes, counts it in the ledger, queues it for the org and removes it from the
inbox, in one transaction. A crash in between loses nothing: a row left behind is taken by
the next aitrack that processes (the agent, or any wrapped run) once it is an orphan. A
payload that cannot be decoded stays in the inbox marked failed, with the reason.

Per-run receivers and the per-user agent use this the same way; only their `receiver` name
differs (the run id, or "agent"). The agent processes in a worker process (agent/worker.py).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable

from aitrack import adapters
from aitrack.egress import policy as egress_policy
from aitrack.store import ledger

LEASE_S = 60.0  # a claimed row whose processor died is taken again after this
ORPHAN_S = 30.0  # a row nobody claimed for this long belongs to a receiver that is gone
BATCH = 16


class Delivery:
    """A payload as a receiver accepted it."""

    __slots__ = ("signal", "content_type", "body", "run_id")

    def __init__(self, signal: str, content_type: str, body: bytes, run_id: str | None):
        self.signal = signal
        self.content_type = content_type
        self.body = body  # decompressed
        self.run_id = run_id  # the wrapper run the sender belongs to, when it says


class StoreUnavailable(Exception):
    """The payload could not be stored; the sender should retry (503)."""


class Inbox:
    """The receivers' side: durable puts, from any connection thread."""

    def __init__(self, db: sqlite3.Connection, receiver: str, on_put: Callable[[], None]):
        self.db = db  # a connection of its own: a processor's transaction never holds it
        self.receiver = receiver
        self.on_put = on_put
        self.lock = threading.Lock()

    def put(self, d: Delivery) -> None:
        try:
            with self.lock, ledger.write(self.db):
                self.db.execute(
                    "INSERT INTO inbox (received_at, receiver, run_id, signal, content_type, "
                    "body) VALUES (?, ?, ?, ?, ?, ?)",
                    (time.time(), self.receiver, d.run_id, d.signal, d.content_type, d.body))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"aitrack's ledger is not writable ({exc})") from None
        self.on_put()


def release_claims(db: sqlite3.Connection, receiver: str) -> int:
    """Rows of `receiver` claimed by a processor that is gone, free to take now; how many.

    The agent calls it as it starts: its worker died with it (a SIGKILL of its process
    group), and those rows were already answered 200, so no tool sends them again; without
    this they waited out the lease and then the next payload's kick. Taking a row a live
    processor still holds costs nothing: `ledger.accept` counts a row once (it deletes it
    in the same transaction)."""
    with ledger.write(db):
        return db.execute("UPDATE inbox SET claimed_until = 0 WHERE receiver = ? AND failed "
                          "IS NULL AND claimed_until > 0", (receiver,)).rowcount


class Context:
    """What processing takes from the profile; rebuilt when the profile changes."""

    __slots__ = ("attributes", "forward_signals", "prices", "egress")

    def __init__(self, attributes: dict[str, str], forward_signals: tuple[str, ...], prices,
                 egress=None):
        self.attributes = attributes  # enforced on every payload
        self.forward_signals = forward_signals  # the signals queued for the org
        self.prices = prices  # a PriceTable: long-context tiers of per-request figures
        # what leaves the machine (egress.Policy): raw payloads queued or not, attributes dropped
        self.egress = egress or egress_policy.FORWARD_ALL


class Processor:
    """Empties the inbox: its own receiver's rows at once, orphans of any receiver later."""

    def __init__(self, db: sqlite3.Connection, receiver: str, context: Context,
                 on_queued: Callable[[], None] | None = None,
                 on_error: Callable[[str], None] | None = None):
        self.db = db
        self.receiver = receiver
        self.context = context
        self.on_queued = on_queued or (lambda: None)
        self.on_error = on_error or (lambda line: None)
        self.owner = f"{os.getpid()}:{threading.get_ident()}:{os.urandom(4).hex()}"
        self.wake = threading.Event()
        self.stopping = False
        self.busy = threading.Lock()  # held while a batch is processed
        self.processed = 0
        self.failed = 0
        self.thread = threading.Thread(target=self._run, name="aitrack-processor", daemon=True)

    def start(self) -> Processor:
        self.thread.start()
        return self

    def notify(self) -> None:
        self.wake.set()

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()
        self.thread.join(5)

    def drain(self, timeout_s: float) -> int:
        """Process this receiver's rows until none is left or `timeout_s` has passed; how
        many are left."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.batch(orphans=False):
                break
        return self.db.execute("SELECT COUNT(*) FROM inbox WHERE receiver = ? AND failed IS "
                               "NULL", (self.receiver,)).fetchone()[0]

    def _run(self) -> None:
        while not self.stopping:
            try:
                while self.batch(orphans=True) and not self.stopping:
                    pass
            except sqlite3.Error as exc:
                self.on_error(f"cannot process received telemetry ({exc}); it stays in the "
                              "inbox: run `aitrack doctor`")
                self.wake.wait(5)
            self.wake.wait(ORPHAN_S)
            self.wake.clear()

    def batch(self, orphans: bool) -> int:
        """Claim and process up to BATCH rows; how many were claimed."""
        with self.busy:
            rows = self._claim(orphans)
            for row in rows:
                self._process(*row)
            return len(rows)

    def _claim(self, orphans: bool) -> list[tuple]:
        now = time.time()
        with ledger.write(self.db):
            return self.db.execute(
                "UPDATE inbox SET claimed_by = ?, claimed_until = ?, attempts = attempts + 1 "
                "WHERE id IN (SELECT id FROM inbox WHERE failed IS NULL AND claimed_until < ? "
                "AND (receiver = ? OR received_at < ?) ORDER BY id LIMIT ?) "
                "RETURNING id, receiver, run_id, signal, content_type, body",
                (self.owner, now + LEASE_S, now, self.receiver,
                 now - ORPHAN_S if orphans else 0, BATCH)).fetchall()

    def _process(self, row_id: int, receiver: str, run_id: str | None, signal: str,
                 content_type: str, body: bytes) -> None:
        # protobuf (~20 ms) loads with the first payload, not with every wrapped run: a run
        # that sends nothing exits sooner (bench/overhead.py (b))
        from aitrack.egress import otlp

        try:
            payload, telemetry = self._decode(receiver, run_id, signal, content_type, body)
        except otlp.MalformedPayload as exc:
            self._fail(row_id, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a bug costs this payload, kept, not the rest
            self._fail(row_id, f"{type(exc).__name__}: {exc}")
            self.on_error(f"a payload could not be recorded ({type(exc).__name__}: {exc}): "
                          "a bug in aitrack, please report it; it is kept in the inbox")
            return
        queued = signal in self.context.forward_signals and self.context.egress.raw
        if ledger.accept(self.db, payload, telemetry, queue=queued, prices=self.context.prices,
                         consumed=row_id):
            self.processed += 1
            if queued:
                self.on_queued()

    def _decode(self, receiver: str, run_id: str | None, signal: str, content_type: str,
                body: bytes):
        from aitrack.egress import otlp  # protobuf: with the first payload (see _process)

        request = otlp.decode(signal, body, content_type)
        resource = otlp.resource_attributes(request)
        run_id = run_id if run_id else (receiver if receiver != "agent" else None)
        tool = self._run_tool(run_id)
        if tool is None:
            adapter = adapters.for_service(resource.get("service.name"))
            tool = adapter.NAME if adapter.SERVICE_NAMES else (
                resource.get("service.name") or "unknown")
            telemetry = adapters.telemetry(adapter.NAME)
        else:
            telemetry = adapters.telemetry(tool)
        otlp.enforce_resource(request, self.context.attributes)
        points = list(otlp.points(request)) if signal == "metrics" else []
        logs = [ledger.LogRecord(attrs, t / 1e9) for attrs, t in otlp.log_records(request)] \
            if signal == "logs" else []
        spans = [ledger.LogRecord(attrs, t / 1e9) for attrs, t in otlp.spans(request)] \
            if signal == "traces" and signal in adapters.usage_signals(telemetry) else []
        starts = [p.start_time / 1e9 for p in points if p.start_time] + \
                 [r.time for r in logs + spans if r.time]
        self.context.egress.strip(request)  # after the ledger's reading: what is queued only
        payload = ledger.Accepted(
            signal=signal,
            body=request.SerializeToString(),
            digest=hashlib.sha256(f"{receiver}\0{signal}\0".encode() + body).digest(),
            points=points, logs=logs, spans=spans, receiver=receiver, run_id=run_id, tool=tool,
            tool_version=_tool_version(telemetry, resource),
            entrypoint=telemetry.entrypoint(resource),
            attributes=self.context.attributes,
            started_hint=min(starts) if starts else None)
        return payload, telemetry

    def _run_tool(self, run_id: str | None) -> str | None:
        if not run_id:
            return None
        row = self.db.execute("SELECT tool FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def _fail(self, row_id: int, reason: str) -> None:
        self.failed += 1
        with ledger.write(self.db):
            self.db.execute("UPDATE inbox SET failed = ?, claimed_by = NULL WHERE id = ?",
                            (reason[:500], row_id))


def _tool_version(telemetry, resource: dict[str, str]) -> str | None:
    """The tool's version: `service.version`, unless its adapter reads it otherwise."""
    own = getattr(telemetry, "tool_version", None)
    return own(resource) if own is not None else resource.get("service.version")
