"""`aitrack import`: the tools' own transcripts into the ledger, each API response once.

The entry points: `run` (every tool's new transcripts), `import_files` (a wrapped run's own,
at its exit), `before_report` (the report's quiet import) and `open_ledger`. The engine, and
the contract a tool's reader meets, are `aitrack.store.importing`.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

from aitrack.domain.display import MAX_LINE, safe
from aitrack.store import ledger
from aitrack.store.importing import readers
from aitrack.store.importing.files import stamp, walk
from aitrack.store.importing.merge import Import
from aitrack.store.importing.result import ImportResult
from aitrack.store.ledger import summaries
from aitrack.store.migrations import migrate

BULK_CACHE_KIB = 32 << 10  # SQLite page cache while importing

__all__ = ["ImportResult", "before_report", "import_files", "open_ledger", "run"]


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
    first = not dry_run and _empty(db)
    job = Import(db, profile, env, result, held=dry_run or first)
    with _bulk(db), _dry(db, dry_run), _first(db, first):
        for tool in tools or readers.tools():
            transcripts = readers.of(tool)
            if transcripts is None:
                continue
            roots = transcripts.roots(env)
            files = [f for root in roots for f in walk(root, transcripts, result)]
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
    job = Import(db, profile, env, result, held=False)
    transcripts = readers.of(tool)
    if transcripts is None:
        return result
    files = []
    for path in dict.fromkeys(str(p) for p in paths):  # a database holds several sessions
        try:
            files.append((path, stamp(transcripts, path, os.stat(path))))
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
    try:
        if not path.exists() and not _any_transcript(env):
            return None
        db = ledger.connect(path)
        try:
            return run(db, profile, env=env)
        finally:
            db.close()
    except Exception as exc:  # noqa: BLE001 - the report shows what the ledger holds
        print(safe(f"aitrack: new transcripts not imported ({type(exc).__name__}: {exc}); "
                   "`aitrack import` says more", MAX_LINE), file=sys.stderr)
        return None


def open_ledger(path: Path, dry_run: bool = False) -> sqlite3.Connection:
    """The ledger to import into; for a dry run without a ledger yet, a throwaway one in
    memory (a dry run creates nothing)."""
    if dry_run and not path.exists():
        db = sqlite3.connect(":memory:", isolation_level=None)
        db.execute("PRAGMA foreign_keys = ON")
        migrate(db)
        return db
    return ledger.connect(path)


def _any_transcript(env: Mapping[str, str] | None) -> bool:
    scratch = ImportResult()
    for tool in readers.tools():
        transcripts = readers.of(tool)
        for root in transcripts.roots(env):
            for _ in walk(root, transcripts, scratch):
                return True
    return False


def _since(day: date | datetime | None) -> float | None:
    if day is None:
        return None
    if isinstance(day, datetime):
        return day.timestamp()
    return datetime(day.year, day.month, day.day).timestamp()  # local midnight


@contextmanager
def _bulk(db: sqlite3.Connection):
    """Settings for writing many rows at random places of the responses' B-tree (keys are
    hashes): a page cache that holds it (up to BULK_CACHE_KIB), and the WAL checkpointed
    once at the end instead of every 1,000 pages, since each checkpoint copies pages that
    the next batch dirties again. Batches are committed without waiting for the disk
    (synchronous NORMAL: the ledger stays whole on a power loss, the last batches may be
    lost), since what a lost batch counted is read again from its files by the next import
    (their state goes in the same transactions); the checkpoint at the end syncs them all.
    A commit that waited for the disk took 20-36 ms on the test machine under load, and a
    big import commits dozens of batches."""
    size, every, sync = (db.execute(f"PRAGMA {name}").fetchone()[0]
                         for name in ("cache_size", "wal_autocheckpoint", "synchronous"))
    db.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    db.execute("PRAGMA wal_autocheckpoint = 0")
    db.execute("PRAGMA synchronous = NORMAL")
    try:
        yield
    finally:
        db.execute(f"PRAGMA cache_size = {size}")
        db.execute(f"PRAGMA wal_autocheckpoint = {every}")
        db.execute(f"PRAGMA synchronous = {sync}")
        if not db.in_transaction:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")


def _empty(db: sqlite3.Connection) -> bool:
    """Whether the ledger holds no session yet: its first import writes all of it."""
    return db.execute("SELECT 1 FROM sessions LIMIT 1").fetchone() is None


@contextmanager
def _first(db: sqlite3.Connection, first: bool):
    """A first import, into an empty ledger, in one transaction: the summaries computed
    once at its end from the rows instead of by triggers row by row (ledger.summaries:
    12% of a first import's work), and its batches' pages written to the WAL once. Cut
    short, it leaves the ledger empty again: the next import reads everything. It holds
    the write lock throughout (bench/import.py's year: about 5 s, once): other writers,
    such as a receiver spooling telemetry, wait for it (ledger.BUSY_TIMEOUT_MS). Computed
    at every commit of a long import instead, the summaries would cost more than their
    triggers (0.11 s each on the year's ledger)."""
    if not first:
        yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        with summaries.deferred(db):
            yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


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
