"""The local SQLite ledger: sessions, their usage, and (next to it) the outbox.

WAL, a busy timeout and `BEGIN IMMEDIATE` let many aitrack runs write at once. A payload's
ledger rows and its outbox row are written in one transaction, so what was counted is
also queued for forwarding, and the same bytes received twice are counted once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from aitrack.migrations import migrate
from aitrack.records import Contribution, Point

BUSY_TIMEOUT_MS = 30_000
TOKEN_TYPES = ("input", "output", "cache_read", "cache_creation", "reasoning")


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                         check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _use_wal(db)
    db.execute("PRAGMA synchronous = FULL")  # accepted means on disk, even on power loss
    db.execute("PRAGMA foreign_keys = ON")
    migrate(db)
    return db


def _use_wal(db: sqlite3.Connection) -> None:
    """WAL mode. While another run is creating the same ledger, switching fails at once with
    "database is locked" (SQLite does not call the busy handler there): retry until the
    busy timeout, as every other statement would wait."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


@contextmanager
def write(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken up front so concurrent writers queue instead of failing."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class Accepted:
    """Everything the ledger needs from one received payload."""

    __slots__ = ("signal", "body", "digest", "points", "tool_version", "tool_session_ids")

    def __init__(self, signal: str, body: bytes, digest: bytes, points: list[Point] | None = None,
                 tool_version: str | None = None, tool_session_ids: set[str] | None = None):
        self.signal = signal
        self.body = body  # canonical protobuf, attributes enforced: what the outbox forwards
        self.digest = digest  # identifies the bytes the child sent
        self.points = points or []
        self.tool_version = tool_version
        self.tool_session_ids = tool_session_ids or set()


Mapper = Callable[[Point, float], Iterable[Contribution]]


class SessionStart:
    __slots__ = ("id", "tool", "started_at", "cwd", "project", "attributes")

    def __init__(self, id: str, tool: str, started_at: float, cwd: str, project: str,
                 attributes: dict[str, str]):
        self.id = id
        self.tool = tool
        self.started_at = started_at
        self.cwd = cwd
        self.project = project
        self.attributes = attributes


def start_session(db: sqlite3.Connection, s: SessionStart) -> None:
    with write(db):
        db.execute(
            "INSERT INTO sessions (id, tool, started_at, cwd, project, attributes) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (s.id, s.tool, s.started_at, s.cwd, s.project,
             json.dumps(s.attributes, sort_keys=True)),
        )


def end_session(db: sqlite3.Connection, session_id: str, ended_at: float, exit_code: int) -> None:
    with write(db):
        db.execute("UPDATE sessions SET ended_at = ?, exit_code = ? WHERE id = ?",
                   (ended_at, exit_code, session_id))


def accept(db: sqlite3.Connection, session_id: str, payload: Accepted, mapper: Mapper,
           queue: bool = True) -> bool:
    """Count a payload and (when it is to be forwarded) queue it, atomically.

    False if the same payload was already accepted.
    """
    now = time.time()
    with write(db):
        dup = db.execute("INSERT OR IGNORE INTO payloads VALUES (?, ?, ?)",
                         (payload.digest, session_id, now)).rowcount == 0
        if dup:
            return False
        if queue:
            db.execute(
                "INSERT INTO outbox (session_id, signal, body, size, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (session_id, payload.signal, payload.body, len(payload.body), now),
            )
        if payload.tool_version:
            db.execute("UPDATE sessions SET tool_version = ? WHERE id = ? AND tool_version IS NULL",
                       (payload.tool_version, session_id))
        db.executemany("INSERT OR IGNORE INTO tool_sessions VALUES (?, ?)",
                       [(session_id, t) for t in sorted(payload.tool_session_ids)])
        for point in payload.points:
            delta = _delta(db, session_id, point)
            if delta:
                for c in mapper(point, delta):
                    _add(db, session_id, c)
    return True


def _delta(db: sqlite3.Connection, session_id: str, p: Point) -> float:
    """The increase a datapoint stands for; cumulative series are differenced."""
    if not p.cumulative:
        return p.value
    # start_time_unix_nano is unsigned 64-bit, SQLite's INTEGER signed: store it wrapped
    start = p.start_time - 2**64 if p.start_time >= 2**63 else p.start_time
    row = db.execute("SELECT start_time, value FROM cumulative_series "
                     "WHERE session_id = ? AND series = ?", (session_id, p.series)).fetchone()
    db.execute("INSERT OR REPLACE INTO cumulative_series VALUES (?, ?, ?, ?)",
               (session_id, p.series, start, p.value))
    if row is None or row[0] != start:
        return p.value  # a new series, or the tool restarted it
    return p.value - row[1]


def _add(db: sqlite3.Connection, session_id: str, c: Contribution) -> None:
    if c.kind == "tokens":
        db.execute(
            "INSERT INTO usage VALUES (?, ?, ?, ?) ON CONFLICT (session_id, model, token_type) "
            "DO UPDATE SET tokens = tokens + excluded.tokens",
            (session_id, c.model, c.name, round(c.value)),
        )
    else:
        db.execute(
            "INSERT INTO session_metrics VALUES (?, ?, ?, ?) ON CONFLICT (session_id, model, name) "
            "DO UPDATE SET value = value + excluded.value",
            (session_id, c.model, c.name, c.value),
        )
