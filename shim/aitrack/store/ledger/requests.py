"""The requests of sessions that telemetry reports request by request, each once.

The unit of counting is the billed request. A transcript keeps its own record of each
(transcript_responses, the import's table); telemetry's per-request events land here. Once a
session has a row here, every response its transcripts hold has one too (`tkey`): copied
when the first telemetry request of an imported session arrives, and by every import after
that. So for such a session this table holds its requests each once, with `sources` saying
which saw it; a session without rows here is counted from its transcripts' sums.

Two records are the same request when they name the same request id (`rid`: domain.tokens'
request_number of it, the form a transcript row keeps) and the same answering model, else,
where a source gives no id, when their figures are equal type for type (two requests of one
session with equal figures, each seen by a different source only, would count once: with
figures that vary by the token, rare).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from aitrack.domain.records import Request
from aitrack.domain.tokens import FIGURES, request_number
from aitrack.store.ledger.connection import in_chunks
from aitrack.store.ledger.runs import TELEMETRY, TRANSCRIPT

_COLUMNS = (*FIGURES, "long")
_BASE = ("input", "output", "cache_read", "cache_creation")

# one transcript response to copy: (key, rid, answered model, figures, requested or None)
Response = tuple[int, int, str, tuple[int, ...], str | None]


def per_request(db: sqlite3.Connection, session_ids: Iterable[str]) -> set[str]:
    """The sessions among these that are counted request by request (rows here)."""
    ids = list(session_ids)
    found: set[str] = set()
    if not ids or db.execute("SELECT 1 FROM requests LIMIT 1").fetchone() is None:
        return found
    for chunk, marks in in_chunks(ids):
        found.update(r[0] for r in db.execute(
            f"SELECT DISTINCT session_id FROM requests WHERE session_id IN ({marks})", chunk))
    return found


def add_telemetry(db: sqlite3.Connection, session_id: str, tool: str, r: Request) -> bool:
    """A request telemetry reported: merged with the transcript's record of it, or new.
    False when telemetry had reported it already (the same event sent twice)."""
    if db.execute("SELECT 1 FROM requests WHERE session_id = ? LIMIT 1",
                  (session_id,)).fetchone() is None:
        copy_transcripts(db, session_id, tool)
    number = request_number(r.identity) if r.identity else 0
    row = _match(db, session_id, number, r.model, r.figures, lacking=TELEMETRY)
    if row is None and number and db.execute(
            "SELECT 1 FROM requests WHERE session_id = ? AND rid = ? AND model = ? "
            "AND sources & ?", (session_id, number, r.model, TELEMETRY)).fetchone():
        return False
    if row is not None:
        rid, figures = row
        db.execute(
            f"UPDATE requests SET sources = sources | ?, identity = COALESCE(identity, ?), "
            f"rid = CASE rid WHEN 0 THEN ? ELSE rid END, at = COALESCE(?, at), "
            f"cost = COALESCE(?, cost), {', '.join(f'{c} = ?' for c in _COLUMNS)} "
            f"WHERE id = ?",
            (TELEMETRY, r.identity, number, r.at, r.cost,
             *_larger(figures, r.figures), rid))
        return True
    db.execute(f"INSERT INTO requests (session_id, identity, rid, at, requested, model, "
               f"{', '.join(_COLUMNS)}, cost, sources) VALUES "
               f"(?, ?, ?, ?, ?, ?, {', '.join('?' * len(_COLUMNS))}, ?, ?)",
               (session_id, r.identity, number, r.at, r.requested, r.model, *r.figures,
                r.cost, TELEMETRY))
    return True


def copy_responses(db: sqlite3.Connection, session_id: str, responses: list[Response]) -> None:
    """A counted-by-request session's transcript responses, new or grown since the last
    import, each merged with its telemetry record or added."""
    for key, number, model, figures, requested in responses:
        known = db.execute(f"SELECT id, {', '.join(_COLUMNS)} FROM requests WHERE tkey = ?",
                           (key,)).fetchone()
        if known is not None:
            db.execute(f"UPDATE requests SET session_id = ?, "
                       f"{', '.join(f'{c} = ?' for c in _COLUMNS)} WHERE id = ?",
                       (session_id, *_larger(tuple(known[1:]), figures), known[0]))
            continue
        row = _match(db, session_id, number, model, figures, lacking=TRANSCRIPT)
        if row is not None:
            rid, mine = row
            db.execute(f"UPDATE requests SET sources = sources | ?, tkey = ?, "
                       f"rid = CASE rid WHEN 0 THEN ? ELSE rid END, "
                       f"requested = COALESCE(requested, ?), "
                       f"{', '.join(f'{c} = ?' for c in _COLUMNS)} WHERE id = ?",
                       (TRANSCRIPT, key, number, requested, *_larger(mine, figures), rid))
        else:
            db.execute(f"INSERT INTO requests (session_id, rid, tkey, requested, model, "
                       f"{', '.join(_COLUMNS)}, sources) VALUES "
                       f"(?, ?, ?, ?, ?, {', '.join('?' * len(_COLUMNS))}, ?)",
                       (session_id, number, key, requested, model, *figures, TRANSCRIPT))


def copy_transcripts(db: sqlite3.Connection, session_id: str, tool: str) -> None:
    """Every response the transcripts of a session hold, copied here: the session is about
    to be counted request by request. transcript_responses has no index by session (the
    import writes hundreds of thousands of rows: one would slow every import), so this
    reads the table once; it happens once per session, and only for one imported before
    its first telemetry request arrived (the agent down at its start)."""
    owners = {}
    for ts_id, state in db.execute(
            "SELECT t.id, t.state FROM transcript_sessions t JOIN tool_sessions s "
            "ON s.tool_session_id = t.tool_session_id WHERE s.session_id = ? AND t.tool = ?",
            (session_id, tool)):
        owners[ts_id] = (json.loads(state or "{}").get("requested") or {})
    if not owners:
        return
    marks = ",".join("?" * len(owners))
    rows = db.execute(f"SELECT key, rid, session, model, {', '.join(_COLUMNS)} "
                      f"FROM transcript_responses WHERE session IN ({marks})",
                      list(owners)).fetchall()
    copy_responses(db, session_id, [(key, rid, model, tuple(figures),
                                     owners[owner].get(model))
                                    for key, rid, owner, model, *figures in rows])


def _match(db: sqlite3.Connection, session_id: str, number: int, model: str,
           figures: tuple[int, ...], lacking: int) -> tuple[int, tuple[int, ...]] | None:
    """The row of the session that another source made of this request, if any."""
    cols = ", ".join(_COLUMNS)
    if number:
        row = db.execute(f"SELECT id, {cols} FROM requests WHERE session_id = ? AND rid = ? "
                         f"AND model = ? AND NOT sources & ? ORDER BY id LIMIT 1",
                         (session_id, number, model, lacking)).fetchone()
        if row is not None:
            return row[0], tuple(row[1:])
    where = " AND ".join(f"{c} = ?" for c in _BASE)
    row = db.execute(f"SELECT id, {cols} FROM requests WHERE session_id = ? AND model = ? "
                     f"AND NOT sources & ? AND (rid = 0 OR ? = 0) AND {where} "
                     f"ORDER BY id LIMIT 1",
                     (session_id, model, lacking, number, *figures[:4])).fetchone()
    return (row[0], tuple(row[1:])) if row is not None else None


def _larger(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """Two records of one request as one: each figure the larger of the two (a line written
    before its request ended carries less output; a source may not tell reasoning apart)."""
    return tuple(max(x, y) for x, y in zip(a, b, strict=True))
