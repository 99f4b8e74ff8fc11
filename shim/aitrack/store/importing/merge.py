"""One import: which of a tool's files to read, and their counts merged into the ledger.

Files are read in the reader's order (here, or by worker processes), counted into the Book
in batches of about BATCH_BYTES of input (smaller ones while the workers have not answered
yet), and merged inside a write transaction committed every BATCH_BYTES or so: the rows
and sessions of the import's own tables, each file's new state, and the sessions whose
figures changed into the ledger (`ledger.record_transcripts`).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import ModuleType

from aitrack.config.identity import resource_attributes
from aitrack.domain import pricing
from aitrack.domain.projects import project_of
from aitrack.domain.records import TranscriptSession
from aitrack.store import ledger
from aitrack.store.importing import readers
from aitrack.store.importing.book import Book, SessionState
from aitrack.store.importing.files import FileState, Read, read_file
from aitrack.store.importing.result import ImportResult

BATCH_BYTES = 48 << 20  # input merged per transaction
# While worker processes read, a batch is merged as soon as the next answer is not there
# yet, once it holds this much: the merge works while they read, instead of waiting for
# BATCH_BYTES of answers first (a quarter of a 200 MB import), and the last batch, merged
# after the last read, is small.
WAIT_BATCH_BYTES = 8 << 20
PARALLEL_BYTES = 64 << 20  # more new input than this may be read by worker processes


_WAIT = Read(None, (), 0, {}, 0)  # from _reads: the workers have not answered yet


class Import:
    """One import into `db`: the tools' files handed to `tool`, one tool at a time."""

    def __init__(self, db: sqlite3.Connection, profile, env: Mapping[str, str] | None,
                 result: ImportResult, held: bool):
        self.db = db
        self.profile = profile
        self.env = env
        self.result = result
        self.held = held  # the caller holds the transaction (a dry run, a first import)
        self._prices = None
        self._attributes = None
        self.new_sessions: set[tuple[str, str]] = set()
        self.updated_sessions: set[tuple[str, str]] = set()

    @property
    def prices(self):
        """The price table (for long-context tiers), loaded once it is needed."""
        if self._prices is None:
            self._prices = pricing.load(self._price_overrides())
        return self._prices

    def _price_overrides(self) -> dict:
        return getattr(self.profile, "prices", None) or {}

    @property
    def attributes(self) -> dict[str, str]:
        """The resource attributes of the sessions the import creates."""
        if self._attributes is None:
            self._attributes = resource_attributes(self.profile)
        return self._attributes

    @contextmanager
    def _transaction(self):
        """The write transaction a merge goes in: begun by the first merge (taken up front,
        so concurrent writers queue), held across merges until `_commit`."""
        if not self.held and not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
        yield

    def _commit(self) -> None:
        if not self.held and self.db.in_transaction:
            self.db.execute("COMMIT")

    def _rollback(self) -> None:
        if not self.held and self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def tool(self, tool: str, files: list[tuple[str, os.stat_result]],
             since: float | None = None, prune_under: list[Path] | None = None) -> None:
        """Read what is new in these files of `tool` and merge it; `prune_under`: the roots
        walked, under which files no longer there are forgotten."""
        transcripts = readers.of(tool)
        if transcripts is None:
            return
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
            todo.append((path, st, FileState(*prev) if prev is not None else None))
        todo.sort(key=lambda item: transcripts.order(item[0], item[1]))
        gone = []
        if prune_under is not None:
            seen = {p for p, _ in files}
            gone = [p for p in states if p not in seen and any(
                Path(p).is_relative_to(root) for root in prune_under)]
        if not todo and not gone:
            return
        try:
            self._merge_all(tool, transcripts, todo, gone)
        except BaseException:
            self._rollback()  # what the batches since the last commit counted
            raise

    def _merge_all(self, tool: str, transcripts: ModuleType, todo: list, gone: list[str]
                   ) -> None:
        """The files read, merged in batches: one of BATCH_BYTES, or while worker processes
        have not answered yet, what they answered so far; committed every BATCH_BYTES (each
        commit writes the pages the batches dirtied to the WAL: a page of the responses'
        B-tree is written once per commit, not once per batch)."""
        book = Book(self.db, tool, self.result)
        batch: list[Read] = []
        size = held = 0
        for read in self._reads(tool, transcripts, todo):
            if read is _WAIT:
                if size < WAIT_BATCH_BYTES:
                    continue
            elif read is None:
                continue
            else:
                self.result.files_read += 1
                self.result.bytes += read.size
                self.result.incomplete += read.incomplete
                batch.append(read)
                size += read.size
                if size < BATCH_BYTES:
                    continue
            self._merge(tool, transcripts, book, batch)
            batch, size, held = [], 0, held + size
            if held >= BATCH_BYTES:
                self._commit()
                held = 0
        self._merge(tool, transcripts, book, batch, gone)
        self._commit()

    def _reads(self, tool: str, transcripts: ModuleType, todo: list) -> Iterator[Read | None]:
        """The files read, in order: here, or (much to read, cores to spare) by worker
        processes while this one merges what they read before; _WAIT when they have not
        answered yet (None: a file that could not be read)."""
        new_bytes = sum(st.st_size - (prev.offset if prev else 0) for _, st, prev in todo)
        if new_bytes >= PARALLEL_BYTES and getattr(transcripts, "PARALLEL", True):
            yield from self._reads_by_workers(tool, transcripts, todo)
        else:
            yield from self._reads_here(transcripts, [(path, prev) for path, _, prev in todo])

    def _reads_here(self, transcripts: ModuleType, files: list[tuple[str, FileState | None]]
                    ) -> Iterator[Read | None]:
        for path, prev in files:
            yield read_file(transcripts, path, prev, self.prices, self.result.skipped)

    def _read_task(self, transcripts: ModuleType, task: list[tuple[str, FileState | None]]
                   ) -> list[tuple[Read | None, dict[str, int]]]:
        """A workers' task read here instead, answered as they answer."""
        out = []
        for path, prev in task:
            skipped: dict[str, int] = {}
            out.append((read_file(transcripts, path, prev, self.prices, skipped), skipped))
        return out

    def _reads_by_workers(self, tool: str, transcripts: ModuleType, todo: list
                          ) -> Iterator[Read | None]:
        # Imported here, not at the top: the process pool's modules (multiprocessing,
        # concurrent.futures, psutil) take 18 ms to import (fastest of 30), next to the 22 ms
        # for the rest of store and the readers, and only an import this big uses them.
        from aitrack.store.importing import workers

        n = workers.how_many()
        tasks = workers.tasks(todo)
        done = 0
        if n > 0:
            try:
                with workers.Workers(n, tool, self._price_overrides()) as pool:
                    for reads in pool.map(tasks, partial(self._read_task, transcripts)):
                        if reads is None:
                            yield _WAIT
                            continue
                        done += 1
                        for read, skipped in reads:
                            for reason, count in skipped.items():
                                self.result.skip(reason, count)
                            if read is not None:
                                read.reader.prices = self.prices
                            yield read
            except workers.WorkerFailed:
                pass  # whatever was not read there is read here
        for task in tasks[done:]:
            yield from self._reads_here(transcripts, task)

    def _merge(self, tool: str, transcripts: ModuleType, book: Book, batch: list[Read],
               gone: list[str] = ()) -> None:
        """Count a batch of read files into the ledger, inside the import's transaction."""
        with self._transaction():
            keys: list[int] = []
            for read in batch:
                keys += read.reader.keys()
            book.prefetch(keys)
            counted = []
            for read in batch:
                try:
                    read.reader.count(book)
                except Exception:  # noqa: BLE001 - a reader's bug costs its file, not the batch
                    # what it counted before stands (keyed: a later import adds nothing
                    # twice); its state is not kept, so the file is read again next time
                    self.result.skip("reader_error")
                    continue
                counted.append(read)
            changed = book.write()
            self.db.executemany(
                "INSERT OR REPLACE INTO transcript_files (path, device, inode, size, mtime_ns, "
                "offset, head, context, tool) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*read.state, tool) for read in counted])
            self.db.executemany("DELETE FROM transcript_files WHERE path = ?",
                                [(p,) for p in gone])
            self._ledger(tool, transcripts, book, changed)
            book.last = []  # the batch's rows: not held while the next batch is read

    def _ledger(self, tool: str, transcripts: ModuleType, book: Book,
                changed: list[SessionState]) -> None:
        """The sessions whose figures changed, merged into the ledger's."""
        totals = getattr(transcripts, "totals", None) or transcripts.metrics
        notes = getattr(transcripts, "notes", None)
        batch = []
        for s in changed:
            usage = s.ledger_usage()
            stated = totals(s.state)
            if not usage and not stated:
                continue
            started = s.started_at or s.ended_at or time.time()
            batch.append(TranscriptSession(
                tool, s.tsid, started, s.ended_at or started, cwd=s.cwd,
                project=_project(s.cwd), entrypoint=s.entrypoint, tool_version=s.tool_version,
                usage=usage, totals=stated, requested=s.state.get("requested"),
                notes=notes(s.state) if notes else None))
        if not batch:
            return
        merged = ledger.record_transcripts(self.db, batch, self.attributes,
                                           lambda _, tsid: book.responses_of(tsid))
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
