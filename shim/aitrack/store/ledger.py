"""The local SQLite ledger: sessions, their usage, and (next to it) the outbox.

WAL, a busy timeout and `BEGIN IMMEDIATE` let many aitrack runs write at once. A payload's
ledger rows and its outbox row are written in one transaction, so what was counted is
also queued for forwarding, and the same bytes received twice are counted once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from aitrack.domain.records import Contribution, Point, TranscriptSession
from aitrack.store.migrations import migrate

BUSY_TIMEOUT_MS = 30_000
TOKEN_TYPES = ("input", "output", "cache_read", "cache_creation", "reasoning")


def connect(path: Path) -> sqlite3.Connection:
    from aitrack.config.private_files import database_uri

    # 0600 in a 0700 directory whatever the umask, and never through a symbolic link
    db = sqlite3.connect(database_uri(path), uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                         isolation_level=None, check_same_thread=False)
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


# sessions.sources: how aitrack learnt of a session (bit flags)
TELEMETRY, TRANSCRIPT, WRAPPER = 1, 2, 4
_IN = 500  # values per `IN (...)` list: well under SQLite's limit on parameters
SOURCE_NAMES = {TELEMETRY: "telemetry", TRANSCRIPT: "transcript", WRAPPER: "wrapper"}


class LogRecord:
    __slots__ = ("attrs", "time")

    def __init__(self, attrs: dict[str, str], time: float):
        self.attrs = attrs
        self.time = time  # unix seconds; 0 when the record has none


class Accepted:
    """Everything the ledger needs from one received payload."""

    __slots__ = ("signal", "body", "digest", "points", "logs", "receiver", "run_id", "tool",
                 "tool_version", "entrypoint", "attributes", "started_hint")

    def __init__(self, signal: str, body: bytes, digest: bytes, points: list[Point] | None = None,
                 logs: list[LogRecord] | None = None, receiver: str = "agent",
                 run_id: str | None = None, tool: str | None = None,
                 tool_version: str | None = None,
                 entrypoint: str | None = None, attributes: dict[str, str] | None = None,
                 started_hint: float | None = None):
        self.signal = signal
        self.body = body  # canonical protobuf, attributes enforced: what the outbox forwards
        self.digest = digest  # identifies the bytes the child sent
        self.points = points or []
        self.logs = logs or []
        self.receiver = receiver  # "agent", or the run id of a per-run receiver
        self.run_id = run_id  # the wrapper run the sender belongs to, when known
        self.tool = tool  # the tool's name in the ledger (default: the adapter's)
        self.tool_version = tool_version
        self.entrypoint = entrypoint  # from the resource, when records do not say
        self.attributes = attributes or {}  # enforced attributes, for sessions it creates
        self.started_hint = started_hint  # earliest time in the payload (unix seconds)


class Adapter(Protocol):
    """What the ledger asks of a tool's adapter (see aitrack.adapters)."""

    NAME: str

    def contributions(self, point: Point, delta: float) -> list[Contribution]: ...
    def log_contributions(self, attrs: dict[str, str], prices) -> list[Contribution]: ...
    def tool_session_id(self, attrs: dict[str, str]) -> str | None: ...
    def entrypoint(self, attrs: dict[str, str]) -> str | None: ...


class SessionStart:
    __slots__ = ("id", "tool", "started_at", "cwd", "project", "attributes")

    def __init__(self, id: str, tool: str, started_at: float, cwd: str | None,
                 project: str | None, attributes: dict[str, str]):
        self.id = id
        self.tool = tool
        self.started_at = started_at
        self.cwd = cwd
        self.project = project
        self.attributes = attributes


def start_session(db: sqlite3.Connection, s: SessionStart, sources: int = TELEMETRY) -> None:
    """A session row of its own, with no tool session id nor run (tests seed ledgers so)."""
    with write(db):
        db.execute(
            "INSERT INTO sessions (id, tool, started_at, cwd, project, attributes, sources) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (s.id, s.tool, s.started_at, s.cwd, s.project,
             json.dumps(s.attributes, sort_keys=True), sources),
        )


# ---------------------------------------------------------------- runs


class Run:
    """One wrapper invocation: what only the wrapper knows about the tool's sessions."""

    __slots__ = ("id", "tool", "started_at", "cwd", "project", "attributes", "mode")

    def __init__(self, id: str, tool: str, started_at: float, cwd: str | None,
                 project: str | None, attributes: dict[str, str], mode: str):
        self.id = id
        self.tool = tool
        self.started_at = started_at
        self.cwd = cwd
        self.project = project
        self.attributes = attributes
        self.mode = mode  # agent | receiver | transcript: how its telemetry is captured


def start_run(db: sqlite3.Connection, run: Run) -> None:
    """Record a run's start (once: told again, nothing changes)."""
    with write(db):
        _insert_run(db, run)


def _insert_run(db: sqlite3.Connection, run: Run) -> None:
    db.execute("INSERT OR IGNORE INTO runs (id, tool, started_at, cwd, project, attributes, "
               "mode) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (run.id, run.tool, run.started_at, run.cwd, run.project,
                json.dumps(run.attributes, sort_keys=True), run.mode))


def end_run(db: sqlite3.Connection, run_id: str, ended_at: float, exit_code: int,
            tool_session_ids: Iterable[str] = (), is_session: bool = True) -> list[str]:
    """Record the run's end on every session it ran; the ids of those sessions.

    `tool_session_ids`: the tool's sessions the run is known to have run (from its
    transcripts); sessions the telemetry linked to it are found by run_id. A run that ran
    no tool session at all is a session of its own (a failed start shows), unless
    `is_session` is false (`--version`).
    """
    with write(db):
        db.execute("UPDATE runs SET ended_at = ?, exit_code = ?, pending_end = NULL "
                   "WHERE id = ?", (ended_at, exit_code, run_id))
        run = _run(db, run_id)
        if run is None:
            return []
        for tool_session_id in tool_session_ids:
            session_for(db, run.tool, tool_session_id, run=run)
        _apply_run_end(db, run_id)
        ids = [r[0] for r in db.execute("SELECT id FROM sessions WHERE run_id = ?", (run_id,))]
        if not ids and is_session:
            db.execute(
                "INSERT INTO sessions (id, tool, started_at, ended_at, exit_code, cwd, project, "
                "attributes, run_id, sources) SELECT id, tool, started_at, ended_at, exit_code, "
                "cwd, project, attributes, id, ? FROM runs WHERE id = ?", (WRAPPER, run_id))
            ids = [run_id]
    return ids


def note_run_end(db: sqlite3.Connection, run: Run, ended_at: float, exit_code: int,
                 account: str) -> None:
    """A run's end, durably, before it is linked to its sessions (the agent answers the
    wrapper at once, then links): `account` keeps what linking needs, as JSON. The run's
    start is recorded too if it was not (one transaction: one write to disk)."""
    with write(db):
        _insert_run(db, run)
        db.execute("UPDATE runs SET ended_at = ?, exit_code = ?, pending_end = ? WHERE id = ?",
                   (ended_at, exit_code, account, run.id))
        _apply_run_end(db, run.id)


def pending_run_ends(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """(run id, account) of the ends noted and not linked yet."""
    return db.execute("SELECT id, pending_end FROM runs WHERE pending_end IS NOT NULL "
                      "ORDER BY ended_at").fetchall()


def forget_run_end(db: sqlite3.Connection, run_id: str) -> None:
    """Stop trying to link a run's end (its account cannot be read)."""
    with write(db):
        db.execute("UPDATE runs SET pending_end = NULL WHERE id = ?", (run_id,))


def _run(db: sqlite3.Connection, run_id: str | None) -> Run | None:
    if not run_id:
        return None
    row = db.execute("SELECT id, tool, started_at, cwd, project, attributes, mode FROM runs "
                     "WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return None
    return Run(*row[:5], json.loads(row[5] or "{}"), row[6])


def _apply_run_end(db: sqlite3.Connection, run_id: str) -> None:
    """Copy an ended run's exit status and end onto the sessions it ran."""
    db.execute(
        "UPDATE sessions SET exit_code = r.exit_code, "
        "ended_at = MAX(COALESCE(sessions.ended_at, 0), r.ended_at), "
        "sources = sources | ?, cwd = COALESCE(sessions.cwd, r.cwd), "
        "project = COALESCE(sessions.project, r.project) "
        "FROM runs r WHERE r.id = ? AND r.ended_at IS NOT NULL AND sessions.run_id = r.id",
        (WRAPPER, run_id))


# ---------------------------------------------------------------- sessions


def session_for(db: sqlite3.Connection, tool: str, tool_session_id: str, *,
                run: Run | None = None, started_at: float | None = None,
                attributes: dict[str, str] | None = None, entrypoint: str | None = None,
                cwd: str | None = None, project: str | None = None,
                sources: int = 0) -> str:
    """The session of a tool's own session id, created if new; inside a write transaction.

    One tool session is one ledger session, however aitrack learns of it: a wrapper run, the
    agent, a transcript. A run's own row (a run that had not reported a tool session yet)
    becomes that session when the tool's id turns up.
    """
    known = _known_sessions(db, tool, [tool_session_id]).get(tool_session_id)
    row = (known,) if known is not None else None
    if row is None and run is not None:
        row = db.execute("SELECT id FROM sessions WHERE id = ? AND tool_session_id IS NULL",
                         (run.id,)).fetchone()
        if row is not None:
            db.execute("UPDATE sessions SET tool_session_id = ? WHERE id = ?",
                       (tool_session_id, run.id))
    if row is None:
        sid = f"{tool}:{tool_session_id}"
        at = run.started_at if run is not None else started_at or time.time()
        db.execute(
            "INSERT INTO sessions (id, tool, started_at, cwd, project, attributes, "
            "tool_session_id, run_id, entrypoint, sources) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sid, tool, at, cwd or (run.cwd if run else None),
             project or (run.project if run else None),
             json.dumps(attributes if attributes is not None else run.attributes if run else {},
                        sort_keys=True),
             tool_session_id, run.id if run else None, entrypoint, sources))
    else:
        sid = row[0]
        db.execute(
            "UPDATE sessions SET sources = sources | ?, run_id = COALESCE(?, run_id), "
            "entrypoint = COALESCE(entrypoint, ?), cwd = COALESCE(cwd, ?), "
            "project = COALESCE(project, ?) WHERE id = ?",
            (sources, run.id if run else None, entrypoint, cwd or (run.cwd if run else None),
             project or (run.project if run else None), sid))
    db.execute("INSERT OR IGNORE INTO tool_sessions VALUES (?, ?)", (sid, tool_session_id))
    if run is not None:
        _apply_run_end(db, run.id)
    return sid


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
        for point in payload.points:
            if not adapter.contributions(point, 1.0):
                sessions.of(point.attrs, only_known=True)
                continue
            sid = sessions.of(point.attrs)
            if sid is None:
                continue
            delta = _delta(db, sid, point)
            if delta:
                for c in adapter.contributions(point, delta):
                    add(db, sid, c, "telemetry")
        for record in payload.logs:
            found = adapter.log_contributions(record.attrs, prices)
            sid = sessions.of(record.attrs, only_known=not found, at=record.time)
            if sid is not None:
                for c in found:
                    add(db, sid, c, "telemetry")
        sessions.finish(now)
    return True


class _Resolver:
    """The ledger session of each record of one payload (cached by tool session id)."""

    def __init__(self, db: sqlite3.Connection, payload: Accepted, adapter: Adapter):
        self.db = db
        self.payload = payload
        self.adapter = adapter
        self.run = _run(db, payload.run_id)
        self.tool = self.run.tool if self.run else payload.tool or adapter.NAME
        self.found: dict[str | None, str | None] = {}

    def of(self, attrs: dict[str, str], only_known: bool = False,
           at: float | None = None) -> str | None:
        """The session for a record; with only_known, None unless it names a tool session
        (a record that counts nothing does not make a session of its run)."""
        tsid = self.adapter.tool_session_id(attrs)
        if tsid is None and only_known:
            return None
        if tsid not in self.found:
            self.found[tsid] = self._resolve(tsid, self.adapter.entrypoint(attrs), at)
        return self.found[tsid]

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
            _apply_run_end(self.db, self.run.id)
        return self.run.id

    def finish(self, now: float) -> None:
        """What every session this payload touched learns from it."""
        for sid in {s for s in self.found.values() if s is not None}:
            self.db.execute(
                "UPDATE sessions SET tool_version = COALESCE(tool_version, ?), "
                "sources = sources | ?, ended_at = CASE WHEN run_id IS NULL "
                "THEN MAX(COALESCE(ended_at, 0), ?) ELSE ended_at END WHERE id = ?",
                (self.payload.tool_version, TELEMETRY, now, sid))


def record_transcript(db: sqlite3.Connection, t: TranscriptSession,
                      attributes: dict[str, str]) -> tuple[str, bool]:
    """Merge one session's transcript figures; its ledger id, and whether it is new."""
    return record_transcripts(db, [t], attributes)[0]


def record_transcripts(db: sqlite3.Connection, batch: list[TranscriptSession],
                       attributes: dict[str, str]) -> list[tuple[str, bool]]:
    """Merge sessions' transcript figures (each session once); each one's ledger id, and
    whether it is new.

    Inside the caller's write transaction. An import merges thousands of sessions at once,
    so this takes them in a few statements, not several per session. Per model and token
    type the larger of the transcript's and the telemetry's figure stands: each source can
    miss requests the other saw.
    """
    known: dict[tuple[str, str], str] = {}
    for tool in {t.tool for t in batch}:
        found = _known_sessions(db, tool, [t.tool_session_id for t in batch if t.tool == tool])
        known.update(((tool, tsid), sid) for tsid, sid in found.items())
    placed = [(t, known.get(who) or f"{t.tool}:{t.tool_session_id}", who not in known)
              for t in batch for who in ((t.tool, t.tool_session_id),)]
    attrs = json.dumps(attributes, sort_keys=True)
    db.executemany(
        "INSERT INTO sessions (id, tool, started_at, ended_at, cwd, project, attributes, "
        "tool_session_id, entrypoint, tool_version, sources) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(sid, t.tool, t.started_at, t.ended_at, t.cwd, t.project, attrs, t.tool_session_id,
          t.entrypoint, t.tool_version, TRANSCRIPT) for t, sid, new in placed if new])
    db.executemany(
        "UPDATE sessions SET sources = sources | ?, entrypoint = COALESCE(entrypoint, ?), "
        "cwd = COALESCE(cwd, ?), project = COALESCE(project, ?), "
        "ended_at = MAX(COALESCE(ended_at, 0), ?), tool_version = COALESCE(tool_version, ?) "
        "WHERE id = ?",
        [(TRANSCRIPT, t.entrypoint, t.cwd, t.project, t.ended_at, t.tool_version, sid)
         for t, sid, new in placed if not new])
    db.executemany("INSERT OR IGNORE INTO tool_sessions VALUES (?, ?)",
                   [(sid, t.tool_session_id) for t, sid, _ in placed])
    _set_many(db, "transcript", [(sid, m, k, v) for t, sid, _ in placed
                                 for m, types in t.usage.items() for k, v in types.items()],
              tokens=True)
    _set_many(db, "transcript", [(sid, m, k, v) for t, sid, _ in placed
                                 for m, names in t.metrics.items() for k, v in names.items()],
              tokens=False)
    return [(sid, new) for _, sid, new in placed]


def _known_sessions(db: sqlite3.Connection, tool: str, tool_session_ids: list[str]
                    ) -> dict[str, str]:
    """The ledger sessions of these tool session ids that exist (tool session id -> id)."""
    found: dict[str, str] = {}
    for i in range(0, len(tool_session_ids), _IN):
        chunk = tool_session_ids[i:i + _IN]
        marks = ",".join("?" * len(chunk))
        found.update(db.execute(f"SELECT tool_session_id, id FROM sessions WHERE tool = ? "
                                f"AND tool_session_id IN ({marks})", (tool, *chunk)))
        missing = [tsid for tsid in chunk if tsid not in found]
        if missing:  # ledgers from before m004: a run linked through tool_sessions
            marks = ",".join("?" * len(missing))
            for tsid, sid in db.execute(
                    "SELECT t.tool_session_id, s.id FROM tool_sessions t JOIN sessions s "
                    f"ON s.id = t.session_id WHERE t.tool_session_id IN ({marks}) "
                    "AND s.tool = ? ORDER BY s.started_at DESC", (*missing, tool)):
                found[tsid] = sid  # the earliest session wins: it comes last
    return found


def _plausible(at: float | None) -> float | None:
    """A start time taken from a payload, if it is one (not in the future, not years ago)."""
    now = time.time()
    return at if at and now - 7 * 86400 < at <= now + 60 else None


def add(db: sqlite3.Connection, session_id: str, c: Contribution, source: str) -> None:
    """Add to one source's figure; the figure of record is the largest source's."""
    if c.kind == "decision":
        db.execute("INSERT INTO tool_decisions VALUES (?, ?, ?, ?) ON CONFLICT "
                   "(session_id, tool_name, decision) DO UPDATE SET count = count + excluded.count",
                   (session_id, c.model, c.name, round(c.value)))
        return
    db.execute("INSERT INTO source_figures VALUES (?, ?, ?, ?, ?) ON CONFLICT "
               "(session_id, model, name, source) DO UPDATE SET value = value + excluded.value",
               (session_id, c.model, c.name, source, c.value))
    _settle(db, session_id, c.model, c.name, c.kind == "tokens")


def set_figures(db: sqlite3.Connection, session_id: str, source: str,
                figures: Iterable[tuple[str, str, float]], tokens: bool) -> None:
    """Replace one source's figures (model, name, value) where they grew; never lower them:
    what was counted stays counted (a transcript compacted shorter)."""
    _set_many(db, source, [(session_id, m, n, v) for m, n, v in figures], tokens)


def _set_many(db: sqlite3.Connection, source: str,
              figures: list[tuple[str, str, str, float]], tokens: bool) -> None:
    """set_figures for many sessions (session id, model, name, value): three statements
    per few hundred sessions, not three per figure."""
    if not figures:
        return
    db.executemany("INSERT INTO source_figures VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                   "(session_id, model, name, source) DO UPDATE SET "
                   "value = MAX(value, excluded.value)",
                   [(sid, model, name, source, value) for sid, model, name, value in figures])
    names = sorted({name for _, _, name, _ in figures})
    sessions = list(dict.fromkeys(sid for sid, _, _, _ in figures))
    for i in range(0, len(sessions), _IN):
        chunk = sessions[i:i + _IN]
        where = (f"session_id IN ({','.join('?' * len(chunk))}) "
                 f"AND name IN ({','.join('?' * len(names))})")
        if tokens:
            db.execute("INSERT INTO usage SELECT session_id, model, name, "
                       f"CAST(ROUND(MAX(value)) AS INTEGER) FROM source_figures WHERE {where} "
                       "GROUP BY session_id, model, name "
                       "ON CONFLICT (session_id, model, token_type) DO UPDATE SET "
                       "tokens = excluded.tokens WHERE tokens != excluded.tokens",
                       (*chunk, *names))
        else:
            db.execute("INSERT INTO session_metrics SELECT session_id, model, name, MAX(value) "
                       f"FROM source_figures WHERE {where} GROUP BY session_id, model, name "
                       "ON CONFLICT (session_id, model, name) DO UPDATE SET "
                       "value = excluded.value WHERE value != excluded.value",
                       (*chunk, *names))


def _settle(db: sqlite3.Connection, session_id: str, model: str, name: str,
            tokens: bool) -> None:
    best = db.execute("SELECT MAX(value) FROM source_figures WHERE session_id = ? AND model = ? "
                      "AND name = ?", (session_id, model, name)).fetchone()[0]
    if tokens:
        db.execute("INSERT INTO usage VALUES (?, ?, ?, ?) ON CONFLICT "
                   "(session_id, model, token_type) DO UPDATE SET tokens = excluded.tokens "
                   "WHERE tokens != excluded.tokens",
                   (session_id, model, name, round(best)))
    else:
        db.execute("INSERT INTO session_metrics VALUES (?, ?, ?, ?) ON CONFLICT "
                   "(session_id, model, name) DO UPDATE SET value = excluded.value "
                   "WHERE value != excluded.value",
                   (session_id, model, name, best))


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
