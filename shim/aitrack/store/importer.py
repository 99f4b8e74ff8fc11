"""`aitrack import`: the tools' own transcripts into the ledger, each API response once.

This module is the generic part: finding the files (each adapter's
`locate.transcript_roots`), reading only what was added since the last import (state in the
ledger, migration m005), skipping bad input with a reason, and merging into the ledger in
batches. What a line means and how it counts is the tool's own knowledge, in
`aitrack/adapters/<tool>/transcripts.py`, which provides:

  MARKERS              byte strings at least one of which is in every line that can count;
                       the other lines (most of them) are never parsed
  LAST_MARKERS         markers of which only the last line of a read counts (last-wins)
  roots(env)           the directories holding its transcripts
  is_transcript(name)  whether a file name there is one
  order(path, stat)    the sort key of files within an import (path: a str)
  Reader(file, prices) one file's new lines: `line(raw, head)` parses a line (raising
                       BadLine; `head`: one of a file's first lines, always handed over),
                       optional `finish()` once the file is read, `keys()` the response keys
                       it will ask about, `count(book)` counts them in order into the Book.
                       Its `prices` (the PriceTable) is None while it travels from a worker
                       process, which parses big imports
  metrics(state)       per-model figures from the session's reading state (Claude's cost)
  PARALLEL             optional, default True: a big import may parse in worker processes
                       (worth it where parsing costs more than counting)

Counting is idempotent: every counted response is a row keyed by a hash of its identity, a
row only ever grows (the largest line of a response wins), and a session's transcript
figures are the sums of its rows, merged with `ledger.record_transcripts` (per model and
token type the larger of the transcript's and the telemetry's figure stands). So re-reading
a file (a compaction rewrote it, a copy sits in an archive folder) counts nothing twice, and
neither can two imports at once: each batch is merged inside one write transaction.
"""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from aitrack.adapters.reading import (
    FIGURES,
    LINE_LIMIT,
    SKIP_REASONS,
    SUMS,
    BadLine,
    FileRead,
    accumulate,
    identity,
)
from aitrack.domain.projects import project_of

TOOLS = ("claude", "codex")
CHUNK = 1 << 20  # bytes read at a time
HEAD_BYTES = 4096  # a file whose first bytes changed was rewritten: read it from the start
HEAD_LINES = 8  # lines of a file read from its start that are always parsed (its start time)
BATCH_BYTES = 48 << 20  # input merged per transaction
BULK_CACHE_KIB = 32 << 10  # SQLite page cache while importing
PARALLEL_BYTES = 64 << 20  # more new input than this is read by worker processes
TASK_BYTES = 8 << 20  # input per worker task
AHEAD = 8  # answers of a worker held while the merge is busy
IDLE_S = 600.0  # a last line without its newline is read once the file is this old
_IN = 500  # keys per `IN (...)` query


@dataclass
class ImportResult:
    """What an import read and counted; `skipped` counts lines and files by reason."""

    files_seen: int = 0
    files_read: int = 0
    bytes: int = 0
    sessions_new: int = 0
    sessions_updated: int = 0
    responses: int = 0
    duplicates: int = 0
    not_billed: int = 0
    incomplete: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    dry_run: bool = False

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        out["skipped"] = dict(sorted(self.skipped.items()))
        out["seconds"] = round(self.seconds, 3)
        return out

    def summary(self) -> str:
        """One line for people."""
        verb = "would import" if self.dry_run else "imported"
        if self.files_read == 0:
            line = f"nothing new in {self.files_seen:,} transcript files"
        else:
            line = (f"{verb} {self.responses:,} responses into {self.sessions_new:,} new and "
                    f"{self.sessions_updated:,} updated sessions from {self.files_read:,} of "
                    f"{self.files_seen:,} transcript files ({_size(self.bytes)})")
        line += f" in {self.seconds:.2f} s"
        if self.skipped:
            parts = ", ".join(f"{n:,} {SKIP_REASONS.get(r, r)}"
                              for r, n in sorted(self.skipped.items()))
            line += f"; skipped {parts}"
        if self.incomplete:
            line += f"; {self.incomplete:,} half-written last line(s) left for next time"
        return line


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


# ---------------------------------------------------------------- the import's state


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
        session reports (adapter.metrics)."""
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
        wanted = [k for k in set(keys) if k not in rows and (not self.fresh or k in written)]
        for i in range(0, len(wanted), _IN):
            chunk = wanted[i:i + _IN]
            for key, rid, sid, model, *figures, side in self.db.execute(
                    f"SELECT key, rid, session, model, {', '.join(FIGURES)}, long, side FROM "
                    f"transcript_responses WHERE key IN ({','.join('?' * len(chunk))})", chunk):
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
        if not (larger or main or (rid and not row[0])):
            self.result.duplicates += 1
            return
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
        changed = [s for s in self.sessions.values() if s.changed]
        for s in changed:
            s.changed = False
        return changed


# ---------------------------------------------------------------- files


class _State:
    """What the last import knew of a file (a row of transcript_files)."""

    __slots__ = ("device", "inode", "size", "mtime_ns", "offset", "head", "_context")

    def __init__(self, device, inode, size, mtime_ns, offset, head, context: str):
        self.device, self.inode, self.size, self.mtime_ns = device, inode, size, mtime_ns
        self.offset, self.head, self._context = offset, head, context

    @property
    def context(self) -> dict:
        return json.loads(self._context)


def _walk(root: Path, adapter, result: ImportResult) -> Iterator[tuple[str, os.stat_result]]:
    """Every transcript under `root` with its stat; unreadable folders skipped and counted."""
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except FileNotFoundError:
            continue
        except OSError:
            result.skip("unreadable_dir")
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif adapter.is_transcript(entry.name):
                    yield entry.path, entry.stat()
            except OSError:
                continue  # gone since the listing


def _adapter(tool: str):
    return importlib.import_module(f"aitrack.adapters.{tool}.transcripts")


class _Read:
    """A file's new lines, parsed by its adapter's Reader, and what reading it found."""

    __slots__ = ("reader", "state", "size", "skipped", "incomplete")

    def __init__(self, reader, state: tuple, size: int, skipped: dict[str, int],
                 incomplete: int):
        self.reader = reader
        self.state = state  # its transcript_files row
        self.size = size  # bytes read
        self.skipped = skipped
        self.incomplete = incomplete


def read_file(adapter, path: str, prev: _State | None, prices,
              skipped: dict[str, int]) -> _Read | None:
    """Read what is new in one file; None (and the reason in `skipped`) when it cannot be."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        skipped["vanished_file"] = skipped.get("vanished_file", 0) + 1
        return None
    except OSError:
        skipped["unreadable_file"] = skipped.get("unreadable_file", 0) + 1
        return None
    with fh:
        try:
            st = os.fstat(fh.fileno())
            start = _resume_at(fh, st, prev)
            file = FileRead(Path(path), prev.context if start and prev else {})
            reader = adapter.Reader(file, prices)
            lines = _Lines(adapter, reader)
            offset = lines.read(fh, start, st)
            head = _head(fh, offset)
            if hasattr(reader, "finish"):
                reader.finish()
        except OSError:
            skipped["unreadable_file"] = skipped.get("unreadable_file", 0) + 1
            return None
    for reason, n in lines.skipped.items():
        skipped[reason] = skipped.get(reason, 0) + n
    state = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, offset, head,
             json.dumps(file.context, sort_keys=True))
    return _Read(reader, state, offset - start, lines.skipped, lines.incomplete)


def _resume_at(fh, st: os.stat_result, prev: _State | None) -> int:
    """Where to read on: the end of what was read, if the file was only appended to."""
    if prev is None or not prev.offset or (st.st_dev, st.st_ino) != (prev.device, prev.inode):
        return 0
    if st.st_size < prev.offset or _head(fh, prev.offset) != prev.head:
        return 0  # rewritten (compaction): read it again; what was counted stays
    fh.seek(prev.offset - 1)
    return prev.offset if fh.read(1) == b"\n" else 0


def _head(fh, offset: int) -> int:
    """The hash of a file's first min(offset, HEAD_BYTES) bytes."""
    fh.seek(0)
    return identity(fh.read(min(offset, HEAD_BYTES)).hex())


class _WorkerFailed(Exception):
    pass


class _Workers:
    """Processes that read files while this one merges. Started as `python -c`, not with
    multiprocessing: its spawned children would import `aitrack.__main__` and so run the
    command line again. Tasks and results go as length-prefixed pickles over pipes; at most
    AHEAD results per worker wait in memory for the merge."""

    def __init__(self, n: int):
        import subprocess
        import sys

        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (package_root,
                                                          env.get("PYTHONPATH"))))
        self.procs = []
        self.answers: list = []
        try:
            for _ in range(n):
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-c", "from aitrack.store.importer import _serve; _serve()"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                    env=env))
        except OSError:  # no process to spare: read here
            self.__exit__()
            raise _WorkerFailed() from None

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            for pipe in (proc.stdin, proc.stdout):
                try:
                    pipe.close()
                except (OSError, ValueError):
                    pass
        for answers in self.answers:  # a taker waiting for room sees the closed pipe and ends
            while not answers.empty():
                answers.get_nowait()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except Exception:  # noqa: BLE001 - a stuck worker must not hold the import
                proc.kill()
                proc.wait()

    def map(self, tasks: list[tuple]) -> Iterator[list]:
        """Each task's result, in order. Task k goes to worker k % n; per worker, one thread
        writes its tasks and one takes its answers as they come (so it reads on while this
        process merges), holding at most AHEAD of them."""
        import pickle
        import queue
        import threading

        n = len(self.procs)
        answers = self.answers = [queue.Queue(AHEAD) for _ in range(n)]

        def feed(k: int) -> None:
            try:
                for task in tasks[k::n]:
                    _send(self.procs[k].stdin, pickle.dumps(task, pickle.HIGHEST_PROTOCOL))
            except (_WorkerFailed, ValueError):  # closed: the import is over or failed
                pass

        def take(k: int) -> None:
            for _ in tasks[k::n]:
                try:
                    data = _receive(self.procs[k].stdout)
                except (OSError, ValueError):
                    data = None
                answers[k].put(data)
                if data is None:
                    return

        for k in range(n):
            threading.Thread(target=feed, args=(k,), daemon=True).start()
            threading.Thread(target=take, args=(k,), daemon=True).start()
        for i in range(len(tasks)):
            data = answers[i % n].get()
            if data is None:
                raise _WorkerFailed()
            yield pickle.loads(data)


def _send(pipe, data: bytes) -> None:
    try:
        pipe.write(len(data).to_bytes(8, "little") + data)
        pipe.flush()
    except OSError:
        raise _WorkerFailed() from None


def _receive(pipe) -> bytes | None:
    head = pipe.read(8)
    if len(head) < 8:
        return None
    size = int.from_bytes(head, "little")
    data = pipe.read(size)
    return data if len(data) == size else None


def _serve() -> None:
    """A worker process: answer tasks from stdin until it closes."""
    import pickle
    import sys

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (data := _receive(stdin)) is not None:
        result = _read_task(*pickle.loads(data))
        _send(stdout, pickle.dumps(result, pickle.HIGHEST_PROTOCOL))


_WORKER_PRICES: dict = {}


def _read_task(tool: str, items: list, overrides: dict) -> list:
    """A worker's task: read these files; what travels back omits the price table."""
    key = json.dumps(overrides, sort_keys=True)
    if key not in _WORKER_PRICES:
        from aitrack.domain import pricing

        _WORKER_PRICES[key] = pricing.load(overrides)
    adapter = _adapter(tool)
    out = []
    for path, prev in items:
        skipped: dict[str, int] = {}
        read = read_file(adapter, path, prev, _WORKER_PRICES[key], skipped)
        if read is not None:
            read.reader.prices = None
        out.append((read, skipped))
    return out


class _Lines:
    """Splits a file's bytes into whole lines and hands its Reader those that can count."""

    def __init__(self, adapter, reader):
        self.markers = adapter.MARKERS
        self.last_markers = getattr(adapter, "LAST_MARKERS", ())
        self.reader = reader
        self.skipped: dict[str, int] = {}
        self.incomplete = 0
        self.heads = 0

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def read(self, fh, start: int, st: os.stat_result) -> int:
        """Read from `start`; the offset after the last whole line. A line over the limit
        is never held whole: its pieces are dropped as they come."""
        fh.seek(start)
        self.heads = HEAD_LINES if start == 0 else 0
        at = start  # the file offset of the next block
        pos = start  # the offset where the unfinished line starts
        pending: list[bytes] = []  # its pieces so far
        size = 0
        dropping = False  # it is over the limit
        while block := fh.read(CHUNK):
            nl = block.find(b"\n")
            if nl < 0:  # the whole block goes on with the unfinished line
                at += len(block)
                if not dropping:
                    pending.append(block)
                    size += len(block)
                    if size > LINE_LIMIT:
                        dropping, pending, size = True, [], 0
                continue
            first = 0
            if dropping:
                self.skip("line_too_long")
                dropping, first = False, nl + 1
            elif pending:
                pending.append(block[:nl + 1])
                line = b"".join(pending)
                pending, size, first = [], 0, nl + 1
                self.region(line, 0, len(line))
            last = block.rfind(b"\n")
            if first <= last:
                self.region(block, first, last + 1)
            pos = at + last + 1
            at += len(block)
            if last + 1 < len(block):
                pending, size = [block[last + 1:]], len(block) - last - 1
        if dropping:  # a long line still being written: dropped once it is whole
            self.incomplete += 1
        elif pending:  # a last line without its newline: the tool may still be writing it
            if time.time() - st.st_mtime >= IDLE_S:
                line = b"".join(pending) + b"\n"
                self.region(line, 0, len(line))
                pos += len(line) - 1
            else:
                self.incomplete += 1
        return pos

    def region(self, buf: bytes, begin: int, end: int) -> None:
        """Hand the reader the whole lines of buf[begin:end] that carry a marker (the last
        one only for a last-wins marker) and the file's first lines."""
        find, rfind = buf.find, buf.rfind
        starts = set()
        for marker in self.markers:
            i = find(marker, begin, end)
            while i >= 0:
                starts.add(max(begin, rfind(b"\n", begin, i) + 1))
                i = find(marker, find(b"\n", i, end), end)
        for marker in self.last_markers:
            i = rfind(marker, begin, end)
            if i >= 0:
                starts.add(max(begin, rfind(b"\n", begin, i) + 1))
        s = begin
        head_end = 0
        while self.heads and s < end:
            starts.add(s)
            s = head_end = find(b"\n", s, end) + 1
            self.heads -= 1
        line = self.reader.line
        for s in sorted(starts):
            e = find(b"\n", s, end)
            if e - s > LINE_LIMIT:
                self.skip("line_too_long")
                continue
            raw = buf[s:e]
            if raw[-1:] == b"\r":
                raw = raw[:-1]
            if not raw.strip():
                continue
            try:
                line(raw, s < head_end)
            except BadLine as bad:
                self.skip(bad.reason)


# ---------------------------------------------------------------- merging


class _Import:
    def __init__(self, db: sqlite3.Connection, profile, env: Mapping[str, str] | None,
                 result: ImportResult, dry_run: bool):
        self.db = db
        self.profile = profile
        self.env = env
        self.result = result
        self.dry_run = dry_run
        self._prices = None
        self._attributes = None
        self.new_sessions: set[tuple[str, str]] = set()
        self.updated_sessions: set[tuple[str, str]] = set()

    @property
    def prices(self):
        if self._prices is None:
            from aitrack.domain import pricing

            self._prices = pricing.load(getattr(self.profile, "prices", None) or {})
        return self._prices

    @property
    def attributes(self) -> dict[str, str]:
        if self._attributes is None:
            from aitrack.config.identity import resource_attributes

            self._attributes = resource_attributes(self.profile)
        return self._attributes

    @contextmanager
    def _transaction(self):
        if self.dry_run:  # run() holds one transaction and rolls it back
            yield
            return
        from aitrack.store import ledger

        with ledger.write(self.db):
            yield

    def tool(self, tool: str, files: list[tuple[str, os.stat_result]],
             since: float | None = None, prune_under: list[Path] | None = None) -> None:
        adapter = _adapter(tool)
        states = {row[0]: row[1:] for row in self.db.execute(
            "SELECT path, device, inode, size, mtime_ns, offset, head, context "
            "FROM transcript_files WHERE tool = ?", (tool,))}
        self.result.files_seen += len(files)
        todo = []
        for path, st in files:
            prev = states.get(path)
            # unchanged since the last import: not opened (Windows lists no inode: size and
            # time alone)
            if prev is not None and prev[2:4] == (st.st_size, st.st_mtime_ns) and (
                    not st.st_ino or prev[:2] == (st.st_dev, st.st_ino)):
                continue
            if since is not None and st.st_mtime < since:
                continue
            todo.append((path, st, _State(*prev) if prev is not None else None))
        todo.sort(key=lambda item: adapter.order(item[0], item[1]))
        gone = []
        if prune_under is not None:
            seen = {p for p, _ in files}
            gone = [p for p in states if p not in seen and any(
                Path(p).is_relative_to(root) for root in prune_under)]
        if not todo and not gone:
            return
        book = Book(self.db, tool, self.result)
        batch: list[_Read] = []
        size = 0
        for read in self._reads(tool, adapter, todo):
            if read is None:
                continue
            self.result.files_read += 1
            self.result.bytes += read.size
            self.result.incomplete += read.incomplete
            batch.append(read)
            size += read.size
            if size >= BATCH_BYTES:
                self._merge(tool, adapter, book, batch)
                batch, size = [], 0
        self._merge(tool, adapter, book, batch, gone)

    def _reads(self, tool: str, adapter, todo: list) -> Iterator[_Read | None]:
        """The files read, in order: here, or (much to read, cores to spare) by worker
        processes while this one merges what they read before."""
        new_bytes = sum(st.st_size - (prev.offset if prev else 0) for _, st, prev in todo)
        workers = 0
        if new_bytes >= PARALLEL_BYTES and getattr(adapter, "PARALLEL", True):
            cores = os.cpu_count() or 1
            # only cores other work leaves idle: on a busy machine a worker only competes
            workers = max(0, min(4, cores - 1, int(cores - _busy_cores(cores) + 0.25)))
        if workers < 1:
            for path, _st, prev in todo:
                yield read_file(adapter, path, prev, self.prices, self.result.skipped)
            return
        tasks, task, task_bytes = [], [], 0
        for path, st, prev in todo:
            task.append((path, prev))
            task_bytes += st.st_size - (prev.offset if prev else 0)
            if task_bytes >= TASK_BYTES:
                tasks.append(task)
                task, task_bytes = [], 0
        tasks.append(task)
        overrides = getattr(self.profile, "prices", None) or {}
        done = 0
        try:
            with _Workers(workers) as pool:
                for reads in pool.map([(tool, t, overrides) for t in tasks]):
                    done += 1
                    for read, skipped in reads:
                        for reason, n in skipped.items():
                            self.result.skip(reason, n)
                        if read is not None:
                            read.reader.prices = self.prices
                        yield read
        except _WorkerFailed:
            pass  # whatever was not read there is read here
        for t in tasks[done:]:
            for path, prev in t:
                yield read_file(adapter, path, prev, self.prices, self.result.skipped)

    def _merge(self, tool: str, adapter, book: Book, batch: list[_Read],
               gone: list[str] = ()) -> None:
        """Count a batch of read files into the ledger, in one transaction."""
        with self._transaction():
            keys: list[int] = []
            for read in batch:
                keys += read.reader.keys()
            book.prefetch(keys)
            for read in batch:
                read.reader.count(book)
            changed = book.write()
            self.db.executemany(
                "INSERT OR REPLACE INTO transcript_files (path, device, inode, size, mtime_ns, "
                "offset, head, context, tool) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*read.state, tool) for read in batch])
            self.db.executemany("DELETE FROM transcript_files WHERE path = ?",
                                [(p,) for p in gone])
            self._ledger(tool, adapter, changed)

    def _ledger(self, tool: str, adapter, changed: list[SessionState]) -> None:
        from aitrack.domain.records import TranscriptSession
        from aitrack.store import ledger

        batch = []
        for s in changed:
            usage = s.ledger_usage()
            metrics = adapter.metrics(s.state)
            if not usage and not metrics:
                continue
            started = s.started_at or s.ended_at or time.time()
            batch.append(TranscriptSession(
                tool, s.tsid, started, s.ended_at or started, cwd=s.cwd,
                project=_project(s.cwd), entrypoint=s.entrypoint, tool_version=s.tool_version,
                usage=usage, metrics=metrics))
        if not batch:
            return
        merged = ledger.record_transcripts(self.db, batch, self.attributes)
        for t, (_, created) in zip(batch, merged, strict=True):
            who = (tool, t.tool_session_id)
            if created:
                self.new_sessions.add(who)
            elif who not in self.new_sessions:
                self.updated_sessions.add(who)


_PROJECTS: dict[str, str | None] = {}


def _project(cwd: str | None) -> str | None:
    """The git work tree's name, else the folder's (as a wrapped run names its project)."""
    if not cwd:
        return None
    if cwd not in _PROJECTS:
        _PROJECTS[cwd] = project_of(cwd) or None
    return _PROJECTS[cwd]


# ---------------------------------------------------------------- entry points


def _since(day: date | datetime | None) -> float | None:
    if day is None:
        return None
    if isinstance(day, datetime):
        return day.timestamp()
    return datetime(day.year, day.month, day.day).timestamp()  # local midnight


def run(db: sqlite3.Connection, profile, env: Mapping[str, str] | None = None,
        tools: Iterable[str] | None = None, since: date | datetime | None = None,
        dry_run: bool = False) -> ImportResult:
    """Import what is new in every transcript of `tools` (default: all) into the ledger.

    Incremental: an unchanged file is not opened, an appended one is read from where the
    last import stopped. `since`: only files written to on or after that day (local time)
    are read; older ones stay for a later import. `dry_run`: count, write nothing.
    """
    started = time.perf_counter()
    result = ImportResult(dry_run=dry_run)
    job = _Import(db, profile, env, result, dry_run)
    with _bulk(db), _dry(db, dry_run):
        for tool in tools or TOOLS:
            adapter = _adapter(tool)
            roots = adapter.roots(env)
            files = [f for root in roots for f in _walk(root, adapter, result)]
            job.tool(tool, files, _since(since), prune_under=roots)
    result.sessions_new = len(job.new_sessions)
    result.sessions_updated = len(job.updated_sessions)
    result.seconds = time.perf_counter() - started
    return result


def import_files(db: sqlite3.Connection, tool: str, paths: Iterable[Path], profile,
                 env: Mapping[str, str] | None = None) -> ImportResult:
    """Import what is new in these files of `tool` (a wrapped run's own transcripts, at its
    exit): the same incremental reading and counting as `run`, nothing else looked at."""
    started = time.perf_counter()
    result = ImportResult()
    job = _Import(db, profile, env, result, dry_run=False)
    files = []
    for path in paths:
        try:
            files.append((str(path), os.stat(path)))
        except FileNotFoundError:
            result.skip("vanished_file")
        except OSError:
            result.skip("unreadable_file")
    job.tool(tool, files)
    result.sessions_new = len(job.new_sessions)
    result.sessions_updated = len(job.updated_sessions)
    result.seconds = time.perf_counter() - started
    return result


def before_report(path: Path, profile, env: Mapping[str, str] | None = None
                  ) -> ImportResult | None:
    """`aitrack report`'s import, quiet: never stops the report, and creates no ledger where
    there is nothing to import. None when it did not run."""
    import sys

    try:
        if not path.exists() and not _any_transcript(env):
            return None
        from aitrack.store import ledger

        db = ledger.connect(path)
        try:
            return run(db, profile, env=env)
        finally:
            db.close()
    except Exception as exc:  # noqa: BLE001 - the report shows what the ledger holds
        print(f"aitrack: new transcripts not imported ({type(exc).__name__}: {exc}); "
              "`aitrack import` says more", file=sys.stderr)
        return None


def _any_transcript(env: Mapping[str, str] | None) -> bool:
    scratch = ImportResult()
    for tool in TOOLS:
        adapter = _adapter(tool)
        for root in adapter.roots(env):
            for _ in _walk(root, adapter, scratch):
                return True
    return False


@contextmanager
def _bulk(db: sqlite3.Connection):
    """Settings for writing many rows at random places of the responses' B-tree (keys are
    hashes): a page cache that holds it (up to BULK_CACHE_KIB), and the WAL checkpointed
    once at the end instead of every 1,000 pages, since each checkpoint copies pages that
    the next batch dirties again."""
    size, every = (db.execute(f"PRAGMA {name}").fetchone()[0]
                   for name in ("cache_size", "wal_autocheckpoint"))
    db.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    db.execute("PRAGMA wal_autocheckpoint = 0")
    try:
        yield
    finally:
        db.execute(f"PRAGMA cache_size = {size}")
        db.execute(f"PRAGMA wal_autocheckpoint = {every}")
        if not db.in_transaction:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")


@contextmanager
def _dry(db: sqlite3.Connection, dry_run: bool):
    """A dry run counts inside one transaction and rolls it back."""
    if not dry_run:
        yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        db.execute("ROLLBACK")


def open_ledger(path: Path, dry_run: bool = False) -> sqlite3.Connection:
    """The ledger to import into; for a dry run without a ledger yet, a throwaway one in
    memory (a dry run creates nothing)."""
    from aitrack.store import ledger

    if dry_run and not path.exists():
        from aitrack.store.migrations import migrate

        db = sqlite3.connect(":memory:", isolation_level=None)
        db.execute("PRAGMA foreign_keys = ON")
        migrate(db)
        return db
    return ledger.connect(path)


def _busy_cores(cores: int) -> float:
    """How many cores other work keeps busy now: CPU use sampled over 50 ms (the load
    average trails by a minute, and a machine just done with other work looks busy)."""
    import psutil

    return cores * psutil.cpu_percent(interval=0.05) / 100
