"""Opening the ledger and writing to it: many aitrack processes at once.

WAL, a busy timeout and `BEGIN IMMEDIATE` let many aitrack runs write at once. Every opening
(read-only ones too: `open_readonly`) is a `Connection`, whose errors about a damaged
ledger are sqlite3 errors whatever the damage.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from aitrack.config.private_files import database_uri
from aitrack.store.migrations import migrate

BUSY_TIMEOUT_MS = 30_000
IN_LIMIT = 500  # values per `IN (...)` list: well under SQLite's limit on parameters
SQLITE_CORRUPT = 11


def in_chunks(values: Sequence) -> Iterator[tuple[Sequence, str]]:
    """`values` IN_LIMIT at a time, each chunk with its `?,?,...` for an `IN (...)` list."""
    for i in range(0, len(values), IN_LIMIT):
        chunk = values[i:i + IN_LIMIT]
        yield chunk, ",".join("?" * len(chunk))


class Connection(sqlite3.Connection):
    """The ledger's connections. SQLite's message about a damaged schema quotes its text;
    when a damaged page made that text other than UTF-8, Python raised UnicodeDecodeError
    decoding the message instead of the error it is: here it is SQLITE_CORRUPT again, which
    every command explains in one line with the fix."""

    def execute(self, *args) -> sqlite3.Cursor:
        try:
            return super().execute(*args)
        except UnicodeDecodeError as exc:
            raise damaged(exc) from None

    def executemany(self, *args) -> sqlite3.Cursor:
        try:
            return super().executemany(*args)
        except UnicodeDecodeError as exc:
            raise damaged(exc) from None

    def executescript(self, *args) -> sqlite3.Cursor:
        try:
            return super().executescript(*args)
        except UnicodeDecodeError as exc:
            raise damaged(exc) from None


def damaged(exc: UnicodeDecodeError) -> sqlite3.DatabaseError:
    error = sqlite3.DatabaseError(f"database disk image is malformed (its schema is not "
                                  f"UTF-8 text at byte {exc.start} of SQLite's message)")
    error.sqlite_errorcode, error.sqlite_errorname = SQLITE_CORRUPT, "SQLITE_CORRUPT"
    return error


def open_readonly(path: Path, timeout: float = 5.0, immutable: bool = False
                  ) -> sqlite3.Connection:
    """The ledger at `path`, read-only: never created nor migrated. `immutable`: a ledger
    nobody can change (its folder read-only, no write-ahead log left), read without the
    shared-memory file SQLite cannot create there."""
    query = "mode=ro&immutable=1" if immutable else "mode=ro"
    return sqlite3.connect(f"{Path(path).absolute().as_uri()}?{query}", uri=True,
                           timeout=timeout, factory=Connection)


def connect(path: Path) -> sqlite3.Connection:
    """The ledger at `path`, created and migrated as needed."""
    # 0600 in a 0700 directory whatever the umask, and never through a symbolic link
    db = sqlite3.connect(database_uri(path), uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                         isolation_level=None, check_same_thread=False, factory=Connection)
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
