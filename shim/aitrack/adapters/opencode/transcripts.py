"""opencode's usage, read from its database (and its older JSON message documents).

A file is read whole (SOURCE): the database from the point the last import noted (the
latest `time_updated` it saw, less a margin for a write that committed late), a JSON
document at once. Each finished assistant message is one request, keyed by its message id
(the same id in the database and a document). Counting rules: the package docstring.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from aitrack.adapters.opencode import locate
from aitrack.adapters.reading import BadLine, FileRead, identity
from aitrack.domain import tokens

TOOL = "opencode"
SOURCE = "whole"  # the engine hands files to Reader.query(): no lines to split
DEPTH = 1  # storage/message/<session>/<message>.json
PARALLEL = False
MARGIN_MS = 10 * 60_000  # rows written this long before the latest seen are read again
STALE_MS = 86_400_000  # a message unfinished for a day counts as it stands
DOCUMENT_LIMIT = 1 << 20  # a message document is a few hundred bytes
_DEFAULT_TITLE = ("New session - ", "Child session - ")  # + an ISO time: no model wrote it


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
                rows = db.execute("SELECT id, session_id, time_updated, data FROM message "
                                  "WHERE time_updated >= ?", (since - MARGIN_MS,)).fetchall()
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
        try:
            with open(self.file.path, "rb") as fh:
                raw = fh.read(DOCUMENT_LIMIT + 1)
        except OSError:
            raise
        if len(raw) > DOCUMENT_LIMIT:
            raise BadLine("line_too_long")
        try:
            doc = json.loads(raw)
        except UnicodeDecodeError:
            raise BadLine("not_utf8") from None
        except ValueError:
            raise BadLine("not_json") from None
        if not isinstance(doc, dict):
            raise BadLine("bad_record")
        sid = doc.get("sessionID") or self.file.path.parent.name
        mid = doc.get("id") or os.path.splitext(self.file.path.name)[0]
        self._message(mid, sid, doc, int(time.time() * 1000))

    def _message(self, mid: str, sid: str, data, now_ms: int) -> bool:
        """Keep an assistant message's usage; False while it is still being written."""
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except ValueError:
                return True  # not JSON: nothing to wait for
        if not isinstance(data, dict) or data.get("role") != "assistant" or not sid:
            return True
        t = data.get("tokens")
        times = data.get("time") if isinstance(data.get("time"), dict) else {}
        created = _number(times.get("created"))
        done = times.get("completed") or data.get("finish") or data.get("error")
        if not done and now_ms - created < STALE_MS:
            return False
        if not isinstance(t, dict):
            return True
        cache = t.get("cache") if isinstance(t.get("cache"), dict) else {}
        usage = {"input": _number(t.get("input")), "output": _number(t.get("output")),
                 "reasoning": _number(t.get("reasoning")),
                 "cache_read": _number(cache.get("read")),
                 "cache_creation": _number(cache.get("write"))}
        model = str(data.get("modelID") or "unknown")
        self.messages.append((identity(f"opencode\x1f{mid}"), sid, model, usage,
                              float(_number(data.get("cost"), float)), created / 1000 or None))
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

    def _figures(self, model: str, u: dict[str, int]) -> tuple[int, ...]:
        # opencode's output excludes reasoning; the ledger's output is all of it
        request = {"input": u["input"], "output": u["output"] + u["reasoning"],
                   "reasoning": u["reasoning"], "cache_read": u["cache_read"],
                   "cache_creation": u["cache_creation"]}
        got = tokens.request(request, model, self.prices)
        return (got.get("input", 0), got.get("output", 0), got.get("cache_read", 0),
                got.get("cache_creation", 0), 0, got.get("reasoning", 0),
                1 if any(n.startswith("long_") for n in got) else 0)


def metrics(state: dict) -> dict[str, dict[str, float]]:
    """opencode's own cost per model, as reported; the title request it stores nowhere."""
    out: dict[str, dict[str, float]] = {m: {"tool_cost_usd": c}
                                        for m, c in (state.get("cost") or {}).items() if c}
    if state.get("titled"):
        out.setdefault("", {})["unrecorded_requests"] = 1.0
    return out


def _number(value, kind=int):
    try:
        return max(0, kind(value)) if value is not None else 0
    except (TypeError, ValueError):
        return 0
