"""opencode's usage, read from its database (and its older JSON message documents).

A file is read whole (SOURCE): the database from the point the last import noted (the
latest `time_updated` it saw, less a margin for a write that committed late), a JSON
document at once. Each finished assistant message is one request, keyed by its message id
(the same id in the database and a document). Counting rules: the package docstring.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgspec

from aitrack.adapters.opencode import locate
from aitrack.adapters.reading import BadLine, FileRead, decode, identity

TOOL = "opencode"
SOURCE = "whole"  # the engine hands files to Reader.query(): no lines to split
DEPTH = 1  # storage/message/<session>/<message>.json
PARALLEL = False
MARGIN_MS = 10 * 60_000  # rows written this long before the latest seen are read again
STALE_MS = 86_400_000  # a message unfinished for a day counts as it stands
DOCUMENT_LIMIT = 1 << 20  # a message document is a few hundred bytes
_DEFAULT_TITLE = ("New session - ", "Child session - ")  # + an ISO time: no model wrote it
Number = int | float | None


class _Cache(msgspec.Struct):
    read: Number = 0
    write: Number = 0


class _Tokens(msgspec.Struct):
    input: Number = 0
    output: Number = 0
    reasoning: Number = 0
    cache: _Cache | None = None


class _Time(msgspec.Struct):
    created: Number = 0
    completed: Number = None


class _Message(msgspec.Struct):
    """The fields aitrack reads of a message's `data` (a document: the whole message)."""

    role: str | None = None
    id: str | None = None
    sessionID: str | None = None  # noqa: N815 - opencode's names
    modelID: str | None = None  # noqa: N815
    tokens: _Tokens | None = None
    cost: Number = 0
    time: _Time | None = None
    finish: str | None = None
    error: Any = None


_DECODER = msgspec.json.Decoder(_Message)


def roots(env=None) -> list[Path]:
    return locate.transcript_roots(env)


def is_transcript(name: str) -> bool:
    """A message document (the databases are roots of their own)."""
    return name.endswith(".json")


def order(path: str, stat) -> tuple:
    """The databases first: a message also kept as a document counts once, from either."""
    return (path.endswith(".json"), path)


class Reader:
    """One database's new messages, or one message document."""

    def __init__(self, file: FileRead, prices):
        self.file = file
        self.prices = prices
        self.messages: list[tuple] = []  # (key, session, model, usage, cost, at)
        self.sessions: dict[str, tuple] = {}  # id -> (cwd, version, started, gap)
        self.tiered: dict[str, bool] = {}  # model -> has a long-context tier

    def query(self) -> None:
        if self.file.path.suffix == ".json":
            self._document()
        else:
            self._database()

    def _database(self) -> None:
        ctx = self.file.context
        since = int(ctx.get("since", 0))
        now_ms = int(time.time() * 1000)
        try:
            db = locate.connect(self.file.path)
            try:
                db.execute("BEGIN")  # one snapshot: messages and their sessions agree
                # a user's message carries no usage: left out by a byte search in SQLite
                rows = db.execute("SELECT id, session_id, time_updated, data FROM message "
                                  "WHERE time_updated >= ? AND instr(data, '\"assistant\"')",
                                  (since - MARGIN_MS,)).fetchall()
                latest, waiting = since, None
                for mid, sid, updated, data in rows:
                    latest = max(latest, updated or 0)
                    if not self._message(mid, sid, data, now_ms) and updated:
                        waiting = updated if waiting is None else min(waiting, updated)
                self._session_rows(db)
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise OSError(f"cannot read {self.file.path}: {exc}") from None
        # an unfinished message stays inside the next read's window
        ctx["since"] = latest if waiting is None else min(latest, waiting)

    def _session_rows(self, db: sqlite3.Connection) -> None:
        ids = sorted({m[1] for m in self.messages})
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for sid, cwd, version, parent, title, created in db.execute(
                    "SELECT id, directory, version, parent_id, title, time_created FROM session "
                    f"WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                titled = bool(title) and not parent and not title.startswith(_DEFAULT_TITLE)
                self.sessions[sid] = (cwd, version, (created or 0) / 1000 or None, titled)

    def _document(self) -> None:
        with open(self.file.path, "rb") as fh:
            raw = fh.read(DOCUMENT_LIMIT + 1)
        if len(raw) > DOCUMENT_LIMIT:
            raise BadLine("line_too_long")
        doc = decode(_DECODER, raw)
        sid = doc.sessionID or self.file.path.parent.name
        mid = doc.id or os.path.splitext(self.file.path.name)[0]
        self._message(mid, sid, doc, int(time.time() * 1000))

    def _message(self, mid: str, sid: str, data, now_ms: int) -> bool:
        """Keep an assistant message's usage; False while it is still being written."""
        if not isinstance(data, _Message):
            try:
                data = _DECODER.decode(data)
            except (msgspec.DecodeError, UnicodeDecodeError):
                return True  # not a message aitrack can read: nothing to wait for
        if data.role != "assistant" or not sid:
            return True
        times = data.time or _Time()
        created = _number(times.created)
        if not (times.completed or data.finish or data.error) and now_ms - created < STALE_MS:
            return False
        t = data.tokens
        if t is None:
            return True
        cache = t.cache or _Cache()
        usage = (_number(t.input), _number(t.output), _number(t.reasoning),
                 _number(cache.read), _number(cache.write))
        self.messages.append((identity(f"opencode\x1f{mid}"), sid, data.modelID or "unknown",
                              usage, float(_number(data.cost, float)), created / 1000 or None))
        return True

    def keys(self) -> list[int]:
        return [m[0] for m in self.messages]

    def count(self, book) -> None:
        for key, sid, model, usage, cost, at in self.messages:
            s = book.session(sid)
            facts = self.sessions.get(sid)
            if facts is not None:
                cwd, version, started, titled = facts
                s.saw(started, cwd, None, version)
                if titled:
                    s.set_state("titled", 1, figures=True)
            s.saw(at)
            if not book.known(key):  # opencode's own cost, once per message
                costs = dict(s.state.get("cost") or {})
                costs[model] = round(costs.get(model, 0.0) + cost, 9)
                s.set_state("cost", costs, figures=True)
            book.count(key, 0, s, model, self._figures(model, usage))

    def _figures(self, model: str, u: tuple[int, ...]) -> tuple[int, ...]:
        """In FIGURES order, then 1 for a long-context request. opencode's output excludes
        reasoning; the ledger's output is all of it."""
        inp, out, reasoning, read, write = u
        tiered = self.tiered.get(model)
        if tiered is None:  # whether the model has a long-context tier at all
            tiered = self.tiered[model] = bool(
                self.prices is not None and self.prices.is_long_context(model, float("inf")))
        long = 1 if tiered and self.prices.is_long_context(model, inp + read + write) else 0
        return (inp, out + reasoning, read, write, 0, reasoning, long)


def metrics(state: dict) -> dict[str, dict[str, float]]:
    """opencode's own cost per model, as reported; the title request it stores nowhere."""
    out: dict[str, dict[str, float]] = {m: {"tool_cost_usd": c}
                                        for m, c in (state.get("cost") or {}).items() if c}
    if state.get("titled"):
        out.setdefault("", {})["unrecorded_requests"] = 1.0
    return out


def notes(state: dict) -> dict[str, str]:
    """What a session's database rows cannot show: the title request (no source has it)."""
    if not state.get("titled"):
        return {}
    return {"title_request": "its title request (one, with its first prompt) is stored "
                             "nowhere opencode keeps: not counted"}


def _number(value, kind=int):
    try:
        return max(0, kind(value)) if value is not None else 0
    except (TypeError, ValueError):
        return 0
