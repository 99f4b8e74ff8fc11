"""The outbox: payloads waiting for the org endpoint, in the ledger's SQLite file.

ledger.accept() queues a payload in the same transaction that counts it. A row leaves only
when the endpoint answered 2xx (`ack`) or when the size bound evicts it; the ledger's
usage rows are never touched here. States: `pending` (due at next_attempt_at) and `dead`
(refused by the endpoint, kept and re-sent only on request).

Concurrent aitrack runs share the outbox. A forwarder claims rows in a BEGIN IMMEDIATE
transaction with a lease (claimed_by, claimed_until); no other run sends them until the
lease expires or its owner, a process on this host, is found dead (`reap`).

Size bound policy (`enforce_bound`): when the rows' bytes exceed the bound, rows are
deleted until they fit in 90% of it: dead letters first, then pending traces, then
pending logs, then pending metrics (the usage dashboards are built from metrics), each
oldest first. Every eviction is recorded in outbox_evicted.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import sys
import time
from dataclasses import dataclass

import psutil

from aitrack.store.ledger import write

PENDING, DEAD = "pending", "dead"
BATCH_ROWS = 64
BATCH_BYTES = 512 * 1024  # protobuf; several endpoints refuse requests over 1-5 MB
BATCH_SPAN_S = 3600.0  # CloudWatch refuses a request whose events span more than 24 h
EVICT_TO = 0.9  # evict down to this fraction of the bound, so that it is not hit every insert
EVICTION_ORDER = ((DEAD, None), (PENDING, "traces"), (PENDING, "logs"), (PENDING, "metrics"))
_CHUNK = 500


@dataclass(frozen=True)
class Counts:
    pending: int
    dead: int
    pending_bytes: int
    oldest_pending_at: float | None  # unix seconds
    dead_bytes: int = 0
    evicted: int = 0  # rows the size bound ever removed
    evicted_bytes: int = 0


@dataclass(frozen=True)
class Row:
    id: int
    session_id: str
    signal: str
    body: bytes
    attempts: int
    created_at: float


@dataclass(frozen=True)
class Eviction:
    rows: int
    bytes: int
    pending_rows: int  # never delivered (the rest were dead letters)
    bound_bytes: int


def owner_id() -> str:
    """Who claims rows: host and pid, so that a dead claimer on this host can be spotted."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def _in(values) -> str:
    return ",".join("?" * len(values))


# ---------------------------------------------------------------- claiming


def claim(db: sqlite3.Connection, owner: str, signals: tuple[str, ...], lease_s: float, *,
          session_id: str | None = None, due_only: bool = True,
          now: float | None = None) -> list[Row]:
    """Claim the next batch: rows of one signal that go in one request, oldest first.

    `session_id`: that run's rows first. `due_only=False` ignores the retry schedule (flush).
    Rows claimed by someone else whose lease has not expired are never returned.
    """
    if not signals:
        return []
    now = time.time() if now is None else now
    due = now if due_only else float("inf")
    with write(db):
        picked = []
        if session_id is not None:
            picked = _pick(db.execute(
                f"SELECT id, signal, created_at, size FROM outbox INDEXED BY outbox_session "
                f"WHERE session_id = ? AND state = 'pending' AND next_attempt_at <= ? "
                f"AND claimed_until <= ? AND signal IN ({_in(signals)}) ORDER BY id LIMIT ?",
                (session_id, due, now, *signals, BATCH_ROWS * 4)).fetchall())
        if not picked:
            picked = _pick(db.execute(
                f"SELECT id, signal, created_at, size FROM outbox INDEXED BY outbox_due "
                f"WHERE state = 'pending' AND next_attempt_at <= ? AND claimed_until <= ? "
                f"AND signal IN ({_in(signals)}) ORDER BY next_attempt_at LIMIT ?",
                (due, now, *signals, BATCH_ROWS * 4)).fetchall())
        if not picked:
            return []
        db.execute(f"UPDATE outbox SET claimed_by = ?, claimed_until = ? "
                   f"WHERE id IN ({_in(picked)})", (owner, now + lease_s, *picked))
        rows = db.execute(f"SELECT id, session_id, signal, body, attempts, created_at FROM outbox "
                          f"WHERE id IN ({_in(picked)}) ORDER BY id", picked).fetchall()
    return [Row(*r) for r in rows]


def _pick(candidates: list[tuple]) -> list[int]:
    """The first candidate's signal; as many as fit one request and a short time span."""
    if not candidates:
        return []
    signal, first_at = candidates[0][1], candidates[0][2]
    ids: list[int] = []
    size = 0
    for row_id, row_signal, created_at, row_size in candidates:
        if row_signal != signal or abs(created_at - first_at) > BATCH_SPAN_S:
            continue
        if ids and size + row_size > BATCH_BYTES:
            break
        ids.append(row_id)
        size += row_size
        if len(ids) == BATCH_ROWS:
            break
    return ids


def renew(db: sqlite3.Connection, owner: str, ids: list[int], lease_s: float,
          now: float | None = None) -> list[int]:
    """Extend a claim before another long send; the ids still held."""
    now = time.time() if now is None else now
    with write(db):
        db.execute(f"UPDATE outbox SET claimed_until = ? WHERE claimed_by = ? "
                   f"AND id IN ({_in(ids)})", (now + lease_s, owner, *ids))
        return [r[0] for r in db.execute(
            f"SELECT id FROM outbox WHERE claimed_by = ? AND id IN ({_in(ids)})", (owner, *ids))]


def ack(db: sqlite3.Connection, ids: list[int]) -> None:
    """The endpoint answered 2xx: the rows leave the outbox (whoever holds the claim now)."""
    with write(db):
        db.execute(f"DELETE FROM outbox WHERE id IN ({_in(ids)})", ids)


def release(db: sqlite3.Connection, owner: str, ids: list[int]) -> None:
    """Give rows back untouched (token refused, run ending): due again at once."""
    with write(db):
        db.execute(f"UPDATE outbox SET claimed_by = NULL, claimed_until = 0 "
                   f"WHERE claimed_by = ? AND id IN ({_in(ids)})", (owner, *ids))


def retry_later(db: sqlite3.Connection, owner: str, ids: list[int], delay_s: float,
                error: str, now: float | None = None) -> None:
    """A retryable failure: count the attempt and schedule the next one."""
    now = time.time() if now is None else now
    with write(db):
        db.execute(f"UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, "
                   f"last_error = ?, claimed_by = NULL, claimed_until = 0 "
                   f"WHERE claimed_by = ? AND id IN ({_in(ids)})",
                   (now + delay_s, error, owner, *ids))


def bury(db: sqlite3.Connection, owner: str, ids: list[int], error: str) -> None:
    """The endpoint refused the rows for good: keep them as dead letters with its answer."""
    with write(db):
        db.execute(f"UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ?, "
                   f"claimed_by = NULL, claimed_until = 0 "
                   f"WHERE claimed_by = ? AND id IN ({_in(ids)})", (error, owner, *ids))


def bury_unforwarded(db: sqlite3.Connection, signals: tuple[str, ...]) -> int:
    """Pending rows of signals the profile no longer forwards become dead letters."""
    unforwarded = f"AND signal NOT IN ({_in(signals)})" if signals else ""
    with write(db):
        return db.execute(
            f"UPDATE outbox SET state = 'dead', last_error = 'not sent: ' || signal || "
            f"' is not in endpoint.signals' WHERE state = 'pending' {unforwarded}",
            signals).rowcount


def revive(db: sqlite3.Connection) -> int:
    """Dead letters become pending and due now (`aitrack flush --retry-dead`)."""
    with write(db):
        return db.execute("UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = 0, "
                          "claimed_by = NULL, claimed_until = 0 WHERE state = 'dead'").rowcount


def make_due(db: sqlite3.Connection, now: float | None = None) -> int:
    """The endpoint answers again: rows waiting out a backoff are due now."""
    now = time.time() if now is None else now
    with write(db):
        return db.execute("UPDATE outbox SET next_attempt_at = 0 "
                          "WHERE state = 'pending' AND next_attempt_at > ?", (now,)).rowcount


def reap(db: sqlite3.Connection, now: float | None = None) -> int:
    """Release the claims of processes on this host that no longer exist (a SIGKILLed run)."""
    now = time.time() if now is None else now
    claimed = [r[0] for r in db.execute(
        "SELECT id FROM outbox INDEXED BY outbox_due WHERE state = 'pending' AND claimed_until > ?",
        (now,))]
    owners = {r[0] for i in range(0, len(claimed), _CHUNK) for r in db.execute(
        f"SELECT claimed_by FROM outbox WHERE id IN ({_in(claimed[i:i + _CHUNK])})",
        claimed[i:i + _CHUNK]) if r[0]}
    host = socket.gethostname()
    released = 0
    for owner in sorted(o for o in owners if _dead_here(o, host)):
        with write(db):
            released += db.execute("UPDATE outbox SET claimed_by = NULL, claimed_until = 0 "
                                   "WHERE claimed_by = ?", (owner,)).rowcount
    return released


def _dead_here(owner: str, host: str) -> bool:
    owner_host, _, rest = owner.rpartition(":")[0].rpartition(":")
    try:
        pid = int(rest)
    except ValueError:
        return False
    return owner_host == host and pid != os.getpid() and not _alive(pid)


def _alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process there
        return psutil.pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def next_due(db: sqlite3.Connection, signals: tuple[str, ...]) -> float | None:
    """When the next pending row may be claimed (its backoff over and nobody's lease on it)."""
    if not signals:
        return None
    row = db.execute(f"SELECT MIN(MAX(next_attempt_at, claimed_until)) FROM outbox "
                     f"INDEXED BY outbox_due WHERE state = 'pending' "
                     f"AND signal IN ({_in(signals)})", signals).fetchone()
    return row[0]


def claimed(db: sqlite3.Connection, now: float | None = None) -> int:
    """Pending rows under a live lease (being sent by some forwarder)."""
    now = time.time() if now is None else now
    return db.execute("SELECT COUNT(*) FROM outbox INDEXED BY outbox_due "
                      "WHERE state = 'pending' AND claimed_until > ?", (now,)).fetchone()[0]


# ---------------------------------------------------------------- counting and the bound


def counts(db: sqlite3.Connection) -> Counts:
    by_state = {state: (n, size, oldest) for state, n, size, oldest in db.execute(
        "SELECT state, COUNT(*), TOTAL(size), MIN(created_at) FROM outbox GROUP BY state")}
    pending = by_state.get(PENDING, (0, 0, None))
    dead = by_state.get(DEAD, (0, 0, None))
    try:
        evicted, evicted_bytes = db.execute(
            "SELECT TOTAL(rows), TOTAL(bytes) FROM outbox_evicted").fetchone()
    except sqlite3.OperationalError:  # a ledger not yet migrated to m003 (read-only readers)
        evicted = evicted_bytes = 0
    return Counts(pending=pending[0], dead=dead[0], pending_bytes=int(pending[1]),
                  oldest_pending_at=pending[2], dead_bytes=int(dead[1]),
                  evicted=int(evicted), evicted_bytes=int(evicted_bytes))


def enforce_bound(db: sqlite3.Connection, max_bytes: int,
                  now: float | None = None) -> Eviction | None:
    """Apply the size bound policy (see the module's docstring); None when within it."""
    total = db.execute("SELECT TOTAL(size) FROM outbox INDEXED BY outbox_bytes").fetchone()[0]
    if total <= max_bytes:
        return None
    now = time.time() if now is None else now
    to_free = total - max_bytes * EVICT_TO
    rows = freed = pending_rows = 0
    for state, signal in EVICTION_ORDER:
        while freed < to_free:
            where, args = "state = ?", [state]
            if signal is not None:
                where, args = where + " AND signal = ?", args + [signal]
            with write(db):
                victims = db.execute(
                    f"SELECT id, signal, created_at, size FROM outbox INDEXED BY outbox_bytes "
                    f"WHERE {where} ORDER BY created_at, id LIMIT ?", (*args, _CHUNK)).fetchall()
                taken = []
                for victim in victims:
                    if freed >= to_free:
                        break
                    taken.append(victim)
                    freed += victim[3]
                if not taken:
                    break
                ids = [v[0] for v in taken]
                db.execute(f"DELETE FROM outbox WHERE id IN ({_in(ids)})", ids)
                _record(db, now, state, taken)
            rows += len(taken)
            pending_rows += len(taken) if state == PENDING else 0
    return Eviction(rows, int(freed), pending_rows, max_bytes)


def _record(db: sqlite3.Connection, now: float, state: str, taken: list[tuple]) -> None:
    by_signal: dict[str, list[tuple]] = {}
    for victim in taken:
        by_signal.setdefault(victim[1], []).append(victim)
    for signal, victims in by_signal.items():
        db.execute("INSERT INTO outbox_evicted VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (now, state, signal, len(victims), sum(v[3] for v in victims),
                    min(v[2] for v in victims), max(v[2] for v in victims)))
