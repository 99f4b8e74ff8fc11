"""A received telemetry payload, counted and queued for forwarding in one transaction, so
what was counted is also queued, and the same bytes received twice are counted once."""

from __future__ import annotations

import sqlite3
import time
from typing import Protocol

from aitrack.domain.records import Contribution, Point, Request
from aitrack.store.ledger.connection import write
from aitrack.store.ledger.figures import add, is_total
from aitrack.store.ledger.requests import add_telemetry
from aitrack.store.ledger.runs import TELEMETRY, WRAPPER, apply_run_end, load_run
from aitrack.store.ledger.sessions import known_sessions, session_for
from aitrack.store.ledger.settle import settle_sessions


class LogRecord:
    __slots__ = ("attrs", "time")

    def __init__(self, attrs: dict[str, str], time: float):
        self.attrs = attrs
        self.time = time  # unix seconds; 0 when the record has none


class Accepted:
    """Everything the ledger needs from one received payload."""

    __slots__ = ("signal", "body", "digest", "points", "logs", "spans", "receiver", "run_id",
                 "tool", "tool_version", "entrypoint", "attributes", "started_hint")

    def __init__(self, signal: str, body: bytes, digest: bytes, points: list[Point] | None = None,
                 logs: list[LogRecord] | None = None, receiver: str = "agent",
                 run_id: str | None = None, tool: str | None = None,
                 tool_version: str | None = None,
                 entrypoint: str | None = None, attributes: dict[str, str] | None = None,
                 started_hint: float | None = None, spans: list[LogRecord] | None = None):
        self.signal = signal
        self.body = body  # canonical protobuf, attributes enforced: what the outbox forwards
        self.digest = digest  # identifies the bytes the child sent
        self.points = points or []
        self.logs = logs or []
        # the spans of a tool whose spans carry usage (its telemetry's USAGE_SIGNALS): their
        # attributes and start, as log records carry theirs
        self.spans = spans or []
        self.receiver = receiver  # "agent", or the run id of a per-run receiver
        self.run_id = run_id  # the wrapper run the sender belongs to, when known
        self.tool = tool  # the tool's name in the ledger (default: the adapter's)
        self.tool_version = tool_version
        self.entrypoint = entrypoint  # from the resource, when records do not say
        self.attributes = attributes or {}  # enforced attributes, for sessions it creates
        self.started_hint = started_hint  # earliest time in the payload (unix seconds)


class Adapter(Protocol):
    """What the ledger asks of a tool's telemetry part (aitrack.adapters, `telemetry`).

    Optional, read with getattr (the defaults in brackets): `log_request(attrs, prices)`,
    the billed request a log record reports [none]; `span_request(attrs, prices)`, the one
    a span reports (a tool whose USAGE_SIGNALS holds "traces") [none];
    `opens_session(name, attrs)`, whether a record that counts nothing makes its session
    known (name: the metric's or the event's) [yes]; `prompt(attrs)`, whether a record is a
    user's prompt [no]; `side_start(attrs)`, whether a record starts a conversation that
    the tool may have started for the prompt another session just had (then it is that
    session's, if exactly one had a prompt in the last SIDE_WINDOW_S seconds) [no]."""

    NAME: str

    def contributions(self, point: Point, delta: float) -> list[Contribution]: ...
    def log_contributions(self, attrs: dict[str, str], prices) -> list[Contribution]: ...
    # span_contributions(attrs, prices), for a tool whose USAGE_SIGNALS holds "traces"
    def tool_session_id(self, attrs: dict[str, str]) -> str | None: ...
    def entrypoint(self, attrs: dict[str, str]) -> str | None: ...


def accept(db: sqlite3.Connection, payload: Accepted, adapter: Adapter, queue: bool = True,
           prices=None, consumed: int | None = None) -> bool:
    """Count a payload and (when it is to be forwarded) queue it, atomically.

    Each datapoint and log record counts for the session its own attributes name (a tool
    process can run several sessions); one that names none counts for its wrapper run.
    `consumed`: the inbox row the payload came from, removed in the same transaction.
    False if the same payload was already accepted, or another process took the row.
    """
    now = time.time()
    with write(db):
        if consumed is not None and db.execute("DELETE FROM inbox WHERE id = ?",
                                               (consumed,)).rowcount == 0:
            return False  # processed meanwhile by another aitrack (its lease had run out)
        dup = db.execute("INSERT OR IGNORE INTO payloads VALUES (?, ?, ?)",
                         (payload.digest, payload.receiver, now)).rowcount == 0
        if dup:
            return False
        if queue:
            db.execute(
                "INSERT INTO outbox (session_id, signal, body, size, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (payload.receiver, payload.signal, payload.body, len(payload.body), now),
            )
        sessions = _Resolver(db, payload, adapter)
        log_request = getattr(adapter, "log_request", None)
        prompt = getattr(adapter, "prompt", None)
        for point in payload.points:
            if not adapter.contributions(point, 1.0):
                sessions.of(point.attrs, only_known=not sessions.opens(point.metric,
                                                                      point.attrs))
                continue
            sid = sessions.of(point.attrs)
            if sid is None:
                continue
            delta = _delta(db, sid, point)
            if delta:
                for c in adapter.contributions(point, delta):
                    _count(db, sessions, sid, c)
        records = [(r, log_request, adapter.log_contributions) for r in payload.logs]
        if payload.spans:  # a tool whose spans carry usage: one request each (Copilot CLI's)
            span_request = getattr(adapter, "span_request", None)
            records += [(s, span_request, adapter.span_contributions) for s in payload.spans]
        for record, to_request, to_contributions in records:
            attrs = record.attrs
            request: Request | None = to_request(attrs, prices) if to_request else None
            found = to_contributions(attrs, prices)
            counts = request is not None or bool(found)
            sid = sessions.of(attrs, only_known=not (counts or sessions.opens(
                attrs.get("event.name", ""), attrs)), at=record.time)
            if sid is None:
                continue
            if prompt is not None and prompt(attrs):
                sessions.prompted(sid, record.time)
            if request is not None and add_telemetry(db, sid, sessions.tool, request):
                sessions.settle.add(sid)
            for c in found:
                _count(db, sessions, sid, c)
        settle_sessions(db, sessions.settle)
        sessions.finish(now)
    return True


def _count(db: sqlite3.Connection, sessions: _Resolver, sid: str, c: Contribution) -> None:
    add(db, sid, c, "telemetry", settle=False)
    if is_total(c):
        sessions.settle.add(sid)


class _Resolver:
    """The ledger session of each record of one payload (cached by tool session id)."""

    def __init__(self, db: sqlite3.Connection, payload: Accepted, adapter: Adapter):
        self.db = db
        self.payload = payload
        self.adapter = adapter
        self.run = load_run(db, payload.run_id)
        self.tool = self.run.tool if self.run else payload.tool or adapter.NAME
        self.found: dict[str | None, str | None] = {}
        self.settle: set[str] = set()  # sessions whose figures of record to write
        self.side = getattr(adapter, "side_start", None)
        self._opens = getattr(adapter, "opens_session", None)

    def opens(self, name: str, attrs: dict[str, str]) -> bool:
        """Whether a record that counts nothing makes its tool session known (never a
        session of its run: a record naming no session makes none)."""
        return self.adapter.tool_session_id(attrs) is not None and (
            self._opens is None or self._opens(name, attrs))

    def of(self, attrs: dict[str, str], only_known: bool = False,
           at: float | None = None) -> str | None:
        """The session for a record; with only_known, only a session already known (a
        record that counts nothing and does not open a session makes none, neither of the
        tool's nor of its run)."""
        tsid = self.adapter.tool_session_id(attrs)
        if tsid is None and only_known:
            return None
        if tsid not in self.found:
            if only_known and not known_sessions(self.db, self.tool, [tsid]):
                return None  # not known yet: a later record may open it
            side = None if only_known else self._side_of(tsid, attrs, at)
            self.found[tsid] = side or self._resolve(tsid, self.adapter.entrypoint(attrs), at)
        return self.found[tsid]

    def prompted(self, sid: str, at: float) -> None:
        """A user's prompt in a session, for side conversations started on it."""
        self.db.execute("INSERT INTO session_prompts VALUES (?, ?) ON CONFLICT (session_id) "
                        "DO UPDATE SET at = MAX(at, excluded.at)", (sid, at or time.time()))

    def _side_of(self, tsid: str | None, attrs: dict[str, str], at: float | None) -> str | None:
        """The session a side conversation belongs to: the one session of the same tool and
        entry point with a prompt in the window before its start (none: not a side
        conversation, or not one that can be told). Its id then names that session."""
        if tsid is None or self.side is None or not self.side(attrs):
            return None
        if known_sessions(self.db, self.tool, [tsid]):
            return None  # a session of its own already
        at = at or time.time()
        window = getattr(self.adapter, "SIDE_WINDOW_S", 2.0)
        entrypoint = self.adapter.entrypoint(attrs) or self.payload.entrypoint
        found = [sid for (sid,) in self.db.execute(
            "SELECT p.session_id FROM session_prompts p JOIN sessions s ON s.id = p.session_id "
            "WHERE p.at BETWEEN ? AND ? AND s.tool = ? AND COALESCE(s.entrypoint, '') = ?",
            (at - window, at, self.tool, entrypoint or ""))]
        if len(found) != 1:
            return None
        self.db.execute("INSERT OR IGNORE INTO tool_sessions VALUES (?, ?)", (found[0], tsid))
        return found[0]

    def _resolve(self, tsid: str | None, entrypoint: str | None, at: float | None) -> str | None:
        p = self.payload
        entrypoint = entrypoint or p.entrypoint
        if tsid is not None:
            return session_for(self.db, self.tool, tsid, run=self.run,
                               started_at=_plausible(p.started_hint or at),
                               attributes=p.attributes, entrypoint=entrypoint,
                               sources=TELEMETRY)
        if self.run is None:
            # the agent, and a record naming no session: one session per tool and day
            day = time.strftime("%Y-%m-%d", time.gmtime())
            return session_for(self.db, self.tool, f"unidentified-{day}",
                               attributes=p.attributes, entrypoint=entrypoint,
                               sources=TELEMETRY)
        row = self.db.execute("SELECT id FROM sessions WHERE id = ?", (self.run.id,)).fetchone()
        if row is None:
            self.db.execute(
                "INSERT INTO sessions (id, tool, started_at, cwd, project, attributes, run_id, "
                "entrypoint, sources) SELECT id, tool, started_at, cwd, project, attributes, "
                "id, ?, ? FROM runs WHERE id = ?", (entrypoint, TELEMETRY | WRAPPER, self.run.id))
            apply_run_end(self.db, self.run.id)
        return self.run.id

    def finish(self, now: float) -> None:
        """What every session this payload touched learns from it."""
        for sid in {s for s in self.found.values() if s is not None}:
            self.db.execute(
                "UPDATE sessions SET tool_version = COALESCE(tool_version, ?), "
                "sources = sources | ?, ended_at = CASE WHEN run_id IS NULL "
                "THEN MAX(COALESCE(ended_at, 0), ?) ELSE ended_at END WHERE id = ?",
                (self.payload.tool_version, TELEMETRY, now, sid))


def _plausible(at: float | None) -> float | None:
    """A start time taken from a payload, if it is one (not in the future, not years ago)."""
    now = time.time()
    return at if at and now - 7 * 86400 < at <= now + 60 else None


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
