"""The import's book: the sessions and response rows of one tool, which readers count into.

A batch's rows are looked up first (`prefetch`), counted (`count`, `count_many`), then
written with the sessions whose figures changed (`write`), inside the merge's transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from aitrack.adapters.reading import FIGURES, SUMS, accumulate, identity
from aitrack.store.importing.result import ImportResult
from aitrack.store.ledger.connection import in_chunks


class SessionState:
    """A tool session as its transcripts told it so far (table transcript_sessions)."""

    __slots__ = ("tsid", "id", "started_at", "ended_at", "cwd", "entrypoint", "tool_version",
                 "state", "usage", "dirty", "changed")

    def __init__(self, tsid: str, id: int | None = None, started_at: float | None = None,
                 ended_at: float | None = None, cwd: str | None = None,
                 entrypoint: str | None = None, tool_version: str | None = None,
                 state: dict | None = None, usage: dict[str, list[int]] | None = None):
        self.tsid = tsid
        self.id = id
        self.started_at = started_at
        self.ended_at = ended_at
        self.cwd = cwd
        self.entrypoint = entrypoint
        self.tool_version = tool_version
        self.state = state if state is not None else {}
        self.usage = usage if usage is not None else {}  # model -> sums in SUMS order
        self.dirty = id is None
        self.changed = False  # its figures grew in this batch

    def saw(self, at: float | None, cwd: str | None = None, entrypoint: str | None = None,
            tool_version: str | None = None) -> None:
        """An event of the session: its time, and facts the session did not have yet."""
        if at is not None:
            if self.started_at is None or at < self.started_at:
                self.started_at, self.dirty = at, True
            if self.ended_at is None or at > self.ended_at:
                self.ended_at, self.dirty = at, True
        if cwd and not self.cwd:
            self.cwd, self.dirty = cwd, True
        if entrypoint and not self.entrypoint:
            self.entrypoint, self.dirty = entrypoint, True
        if tool_version and not self.tool_version:
            self.tool_version, self.dirty = tool_version, True

    def set_state(self, name: str, value, figures: bool = False) -> None:
        """Keep a piece of the adapter's reading state; `figures`: it changes what the
        session reports (the reader's `metrics`)."""
        if self.state.get(name) != value:
            self.state[name] = value
            self.dirty = True
            self.changed = self.changed or figures

    def add(self, model: str, figures: tuple[int, ...], sign: int = 1) -> None:
        sums = self.usage.get(model)
        if sums is None:
            sums = self.usage[model] = [0] * len(SUMS)
        if sign < 0:
            figures = tuple(-f for f in figures[:6]) + figures[6:]
        accumulate(sums, figures)
        self.dirty = self.changed = True

    def add_sums(self, model: str, sums: list[int]) -> None:
        """Add figures already summed in SUMS order (see figure_sums)."""
        mine = self.usage.get(model)
        if mine is None:
            self.usage[model] = list(sums)
        else:
            self.usage[model] = [a + b for a, b in zip(mine, sums, strict=True)]
        self.dirty = self.changed = True

    def ledger_usage(self) -> dict[str, dict[str, int]]:
        return {model: {n: v for n, v in zip(SUMS, sums, strict=True) if v}
                for model, sums in self.usage.items() if any(sums)}


# a response row in a batch: [rid, owner (SessionState, or the id of one not loaded yet),
# model, figures, side, status]
_KEPT, _NEW, _GREW = 0, 1, 2


class Book:
    """The sessions and response rows of one tool in an import; adapters count into it."""

    def __init__(self, db: sqlite3.Connection, tool: str, result: ImportResult):
        self.db = db
        self.tool = tool
        self.result = result
        self.sessions: dict[str, SessionState] = {}
        self.by_id: dict[int, SessionState] = {}
        self.rows: dict[int, list] = {}  # this batch's: looked up and new
        # A first import looks up only the keys it wrote itself (`written`): no other exist.
        self.fresh = db.execute("SELECT 1 FROM transcript_responses LIMIT 1").fetchone() is None
        self.written: set[int] = set()
        self.last: list[tuple] = []  # the rows the last `write` wrote (see responses_of)
        self._last_by: dict[int, list[tuple]] | None = None

    def session(self, tsid: str) -> SessionState:
        s = self.sessions.get(tsid)
        if s is None:
            row = self.db.execute(
                "SELECT id, started_at, ended_at, cwd, entrypoint, tool_version, state, usage "
                "FROM transcript_sessions WHERE tool = ? AND tool_session_id = ?",
                (self.tool, tsid)).fetchone()
            if row is None:
                s = SessionState(tsid)
            else:
                s = SessionState(tsid, *row[:6], json.loads(row[6]), json.loads(row[7]))
                self.by_id[s.id] = s
            self.sessions[tsid] = s
        return s

    def _owner(self, row: list) -> SessionState:
        owner = row[1]
        if not isinstance(owner, SessionState):
            s = self.by_id.get(owner)
            if s is None:
                tsid = self.db.execute("SELECT tool_session_id FROM transcript_sessions "
                                       "WHERE id = ?", (owner,)).fetchone()[0]
                s = self.session(tsid)
            owner = row[1] = s
        return owner

    def prefetch(self, keys: Iterable[int]) -> None:
        """Load the rows of these keys that earlier imports (or batches) wrote."""
        rows, written = self.rows, self.written
        if self.fresh:  # only keys this import wrote: a set's intersection, not a loop
            wanted = [k for k in written.intersection(keys) if k not in rows]
        else:
            wanted = [k for k in set(keys) if k not in rows]
        for chunk, marks in in_chunks(wanted):
            for key, rid, sid, model, *figures, side in self.db.execute(
                    f"SELECT key, rid, session, model, {', '.join(FIGURES)}, long, side FROM "
                    f"transcript_responses WHERE key IN ({marks})", chunk):
                rows[key] = [rid, sid, model, tuple(figures), side, _KEPT]

    def known(self, key: int) -> bool:
        return key in self.rows

    def duplicate(self) -> None:
        self.result.duplicates += 1

    def skip(self, reason: str, n: int = 1) -> None:
        self.result.skip(reason, n)

    def count(self, key: int, rid: int, session: SessionState, model: str,
              figures: tuple[int, ...], side: bool = False) -> None:
        """One line of a response: a new response, a larger line of a known one (its figures
        replace the smaller ones), or a copy. A response seen on the main chain belongs there
        (a sidechain line with the same id is a replay). `rid` tells apart two requests under
        one key (0: unknown); the second is kept under a key of its own."""
        row = self.rows.get(key)
        if row is not None and rid and row[0] and row[0] != rid:
            key = identity(f"{key}\x1f{rid}")
            self.prefetch((key,))
            row = self.rows.get(key)
        if row is None:
            self.rows[key] = [rid, session, model, figures, int(side), _NEW]
            self.written.add(key)
            session.add(model, figures)
            if figures[0] or figures[1] or figures[2] or figures[3]:
                self.result.responses += 1
            return
        larger = sum(figures[:4]) > sum(row[3][:4])
        main = row[4] and not side
        if not (larger or main):
            self.result.duplicates += 1  # another line of a known response
            if not rid or row[0]:
                return  # (else it names the response's request id: kept)
        owner = self._owner(row)
        owner.add(row[2], row[3], -1)
        if main:  # the main chain's line: the response is its session's
            owner, row[1], row[4] = session, session, 0
        if larger:
            row[2], row[3] = model, figures
        row[0] = row[0] or rid
        owner.add(row[2], row[3])
        if row[5] == _KEPT:
            row[5] = _GREW

    def count_many(self, responses: list[list], sums: dict[tuple[str, str], list[int]]
                   ) -> None:
        """A file's responses ([key, rid, session id, model, figures, side], each key once
        unless its request ids differ) with their figure_sums, its sessions known to the
        Book: those new to it taken in bulk; the others taken back out of the sums and
        counted one by one, as `count` would."""
        rows, written, sessions = self.rows, self.written, self.sessions
        again = []
        counted = 0
        for response in responses:
            key, rid, owner, model, figures, side = response
            if key in rows:
                again.append(response)
                continue
            rows[key] = [rid, sessions[owner], model, figures, int(side), _NEW]
            written.add(key)
            if figures[0] or figures[1] or figures[2] or figures[3]:
                counted += 1
        self.result.responses += counted
        for (owner, model), figures in sums.items():
            sessions[owner].add_sums(model, figures)
        for key, rid, owner, model, figures, side in again:
            session = sessions[owner]
            session.add(model, figures, -1)
            self.count(key, rid, session, model, figures, side)

    def responses_of(self, tsid: str) -> list[tuple[int, int, str, tuple[int, ...], str | None]]:
        """The responses of a session the last `write` wrote, new or grown: (key, request
        number, model, figures, requested name or None), for a session the ledger counts
        request by request (rare in a big import: the rows are indexed on the first ask)."""
        s = self.sessions.get(tsid)
        if s is None or s.id is None:
            return []
        if self._last_by is None:
            self._last_by = {}
            for rows in self.last:
                for row in rows:
                    self._last_by.setdefault(row[1], []).append(row)
        requested = s.state.get("requested") or {}
        return [(row[-1], row[0], row[2], tuple(row[3:10]), requested.get(row[2]))
                for row in self._last_by.get(s.id, ())]

    def write(self) -> list[SessionState]:
        """Write this batch's sessions and rows; the sessions whose figures grew."""
        db = self.db
        for s in self.sessions.values():
            if not s.dirty:
                continue
            values = (s.started_at, s.ended_at, s.cwd, s.entrypoint, s.tool_version,
                      json.dumps(s.state, sort_keys=True), json.dumps(s.usage, sort_keys=True))
            if s.id is None:
                s.id = db.execute(
                    "INSERT INTO transcript_sessions (started_at, ended_at, cwd, entrypoint, "
                    "tool_version, state, usage, tool, tool_session_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (*values, self.tool, s.tsid)).lastrowid
                self.by_id[s.id] = s
            else:
                db.execute("UPDATE transcript_sessions SET started_at = ?, ended_at = ?, cwd = ?, "
                           "entrypoint = ?, tool_version = ?, state = ?, usage = ? WHERE id = ?",
                           (*values, s.id))
            s.dirty = False
        new, grown = [], []
        for key, (rid, owner, model, figures, side, status) in self.rows.items():
            if status != _KEPT:
                sid = owner.id if isinstance(owner, SessionState) else owner
                (new if status == _NEW else grown).append((rid, sid, model, *figures, side, key))
        new.sort(key=lambda row: row[-1])  # in key order: B-tree appends, not random writes
        columns = ("rid", "session", "model", *FIGURES, "long", "side")
        db.executemany(f"INSERT INTO transcript_responses ({', '.join(columns)}, key) "
                       f"VALUES ({', '.join('?' * (len(columns) + 1))})", new)
        db.executemany(f"UPDATE transcript_responses SET {' = ?, '.join(columns)} = ? "
                       "WHERE key = ?", grown)
        self.rows = {}
        self.last, self._last_by = [new, grown], None
        changed = [s for s in self.sessions.values() if s.changed]
        for s in changed:
            s.changed = False
        return changed

