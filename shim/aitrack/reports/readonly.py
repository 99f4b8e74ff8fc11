"""The ledger as a report opens it: read-only, never created, a damaged one explained in
one line that names the fix; a ledger the user made read-only (file and folder) is read as
it is."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aitrack.config.private_files import not_yours
from aitrack.store import ledger

# SQLite's primary result codes of a damaged ledger: corrupt, not a database (an I/O error,
# a full disk say, is cli.common's to explain)
_UNREADABLE = (11, 26)
_READONLY, _CANTOPEN = 8, 14
START_HINT = ("No sessions in the ledger yet. Start one with `aitrack claude ...` or "
              "`aitrack codex ...` (or `aitrack run -- CMD` for any OTLP tool), "
              "then run `aitrack report` again.")


class LedgerError(Exception):
    """The ledger cannot be read; the message is one line naming the fix."""


def open_ledger(path: Path) -> sqlite3.Connection | None:
    """The ledger, read-only; None when it does not exist yet (never created by a report).

    Raises LedgerError when the path is not a ledger a report can read."""
    if path.is_dir():
        raise LedgerError(f"the ledger path {path} is a directory, not a ledger: move it aside "
                          f"(`mv {path} {path}.old`); the next tracked run starts a new ledger")
    if not path.exists():
        return None
    refused = not_yours(path, path.stat())
    if refused:  # another account's ledger: its figures would be theirs to choose
        raise LedgerError(str(refused))
    with reading(path):
        try:
            return _connect(path)
        except sqlite3.OperationalError as exc:
            if not _write_protected(path, exc):
                raise
        # A WAL ledger in a folder the user made read-only: SQLite cannot create the shared
        # memory file a reader needs. With no write-ahead log left to read, the file is the
        # whole ledger, and nobody (but root) can change it while it stays read-only.
        return _connect(path, immutable=True)


def _connect(path: Path, immutable: bool = False) -> sqlite3.Connection:
    db = ledger.open_readonly(path, immutable=immutable)
    db.execute("PRAGMA query_only = 1")
    db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    return db


def _write_protected(path: Path, exc: sqlite3.OperationalError) -> bool:
    """SQLite refused to open a read-only ledger (read-only, cannot open) whose write-ahead
    log is empty or gone."""
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    wal = path.with_name(path.name + "-wal")
    return code in (_READONLY, _CANTOPEN) and not (wal.exists() and wal.stat().st_size) and (
        not os.access(path.parent, os.W_OK) or not os.access(path, os.W_OK))


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Reads of the ledger at `path`: one that finds it damaged raises LedgerError."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF not in _UNREADABLE:
            raise
        raise LedgerError(f"the ledger {path} cannot be read ({exc}): `aitrack doctor` checks "
                          f"it; if it is damaged, move it aside (`mv {path} {path}.broken`) and "
                          "the next tracked run starts a new one") from None


def is_empty(db: sqlite3.Connection | None) -> bool:
    """No session yet (START_HINT says how to start one)."""
    if db is None:
        return True
    try:
        return db.execute("SELECT 1 FROM sessions LIMIT 1").fetchone() is None
    except sqlite3.OperationalError:  # a ledger the wrapper has not set up yet
        return True
