"""Finding a tool's files, and reading what is new in one since the last import.

What the last import knew of each file is a row of transcript_files (migration m005): an
unchanged file is not opened, an appended one is read on from where the last read ended,
and a rewritten one (its first bytes changed: a compaction) from its start again. A file its
reader reads whole (SOURCE "whole": a SQLite database, a JSON document) is handed to the
reader, which notes in the file's context where it stopped; its change stamp covers a
database's `-wal` file, where new rows sit until a checkpoint.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from aitrack.adapters.reading import BadLine, FileRead, NotRegular, identity, open_regular
from aitrack.store.importing.lines import Lines
from aitrack.store.importing.result import ImportResult

HEAD_BYTES = 4096  # a file whose first bytes changed was rewritten: read it from the start


class Stamp:
    """A file's identity and change stamp: its own stat, or for a file read whole, its
    stat with its `-wal` file's size added and the later of the two times. An empty `-wal`
    holds no rows: a reader's own open leaves one, which must not read as a change."""

    __slots__ = ("st_dev", "st_ino", "st_size", "st_mtime_ns")

    def __init__(self, st: os.stat_result, wal: os.stat_result | None):
        self.st_dev, self.st_ino = st.st_dev, st.st_ino
        self.st_size = st.st_size + (wal.st_size if wal else 0)
        self.st_mtime_ns = max(st.st_mtime_ns, wal.st_mtime_ns if wal else 0)

    @property
    def st_mtime(self) -> float:
        return self.st_mtime_ns / 1e9


def whole(transcripts: ModuleType) -> bool:
    """Whether the tool's reader reads each file itself (the reader contract's SOURCE)."""
    return getattr(transcripts, "SOURCE", "lines") == "whole"


def stamp(transcripts: ModuleType, path: str, st: os.stat_result) -> os.stat_result | Stamp:
    """What tells whether a file changed since the last import."""
    if not whole(transcripts):
        return st
    try:
        wal = os.stat(path + "-wal")
    except OSError:
        wal = None
    if wal is not None and not wal.st_size:
        wal = None
    return Stamp(st, wal)


class FileState:
    """What the last import knew of a file (a row of transcript_files)."""

    __slots__ = ("device", "inode", "size", "mtime_ns", "offset", "head", "_context")

    def __init__(self, device, inode, size, mtime_ns, offset, head, context: str):
        self.device, self.inode, self.size, self.mtime_ns = device, inode, size, mtime_ns
        self.offset, self.head, self._context = offset, head, context

    @property
    def context(self) -> dict:
        return json.loads(self._context)


def walk(root: Path, transcripts: ModuleType, result: ImportResult
         ) -> Iterator[tuple[str, os.stat_result | Stamp]]:
    """Every transcript under `root` with its stamp; unreadable folders skipped and counted.
    A root that is a file is that file; the reader's DEPTH (default: any) bounds how many
    folders deep below a root its files are."""
    try:
        if root.is_file():
            yield str(root), stamp(transcripts, str(root), root.stat())
            return
    except OSError:
        return
    depth = getattr(transcripts, "DEPTH", None)
    stack = [(str(root), 0)]
    while stack:
        folder, level = stack.pop()
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
                    if depth is None or level < depth:
                        stack.append((entry.path, level + 1))
                elif transcripts.is_transcript(entry.name):
                    st = entry.stat()
                    if stat.S_ISREG(st.st_mode):
                        yield entry.path, stamp(transcripts, entry.path, st)
                    else:  # a FIFO, a link to /dev/zero: reading it would block or never end
                        result.skip("not_regular")
            except OSError:
                continue  # gone since the listing


class Read:
    """A file's new lines, parsed by its adapter's Reader, and what reading it found."""

    __slots__ = ("reader", "state", "size", "skipped", "incomplete")

    def __init__(self, reader, state: tuple, size: int, skipped: dict[str, int],
                 incomplete: int):
        self.reader = reader
        self.state = state  # its transcript_files row
        self.size = size  # bytes read
        self.skipped = skipped
        self.incomplete = incomplete


def read_file(transcripts: ModuleType, path: str, prev: FileState | None, prices,
              skipped: dict[str, int]) -> Read | None:
    """Read what is new in one file; None (and the reason in `skipped`) when it cannot be."""
    if whole(transcripts):
        return _read_whole(transcripts, path, prev, prices, skipped)
    try:
        fh = open_regular(path)  # swapped for a FIFO since the walk: still never blocks
    except FileNotFoundError:
        skipped["vanished_file"] = skipped.get("vanished_file", 0) + 1
        return None
    except NotRegular:
        skipped["not_regular"] = skipped.get("not_regular", 0) + 1
        return None
    except OSError:
        skipped["unreadable_file"] = skipped.get("unreadable_file", 0) + 1
        return None
    with fh:
        try:
            st = os.fstat(fh.fileno())
            start = _resume_at(fh, st, prev)
            file = FileRead(Path(path), prev.context if start and prev else {})
            reader = transcripts.Reader(file, prices)
            lines = Lines(transcripts, reader)
            offset = lines.read(fh, start, st)
            head = _head(fh, offset)
            if hasattr(reader, "finish"):
                reader.finish()
        except OSError:
            skipped["unreadable_file"] = skipped.get("unreadable_file", 0) + 1
            return None
        except Exception:  # noqa: BLE001 - a reader's bug costs this file, never the import
            skipped["reader_error"] = skipped.get("reader_error", 0) + 1
            return None
    for reason, n in lines.skipped.items():
        skipped[reason] = skipped.get(reason, 0) + n
    state = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, offset, head,
             json.dumps(file.context, sort_keys=True))
    return Read(reader, state, offset - start, lines.skipped, lines.incomplete)


def _read_whole(transcripts: ModuleType, path: str, prev: FileState | None, prices,
                skipped: dict[str, int]) -> Read | None:
    """A file the reader reads itself (`Reader.query()`), from where it noted it stopped."""
    try:
        st = stamp(transcripts, path, os.stat(path))  # before the read: a later write shows
        file = FileRead(Path(path), prev.context if prev else {})
        reader = transcripts.Reader(file, prices)
        reader.query()
        if hasattr(reader, "finish"):
            reader.finish()
    except FileNotFoundError:
        skipped["vanished_file"] = skipped.get("vanished_file", 0) + 1
        return None
    except OSError:
        skipped["unreadable_file"] = skipped.get("unreadable_file", 0) + 1
        return None
    except BadLine as bad:
        skipped[bad.reason] = skipped.get(bad.reason, 0) + 1
        return None
    state = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, 0, 0,
             json.dumps(file.context, sort_keys=True))
    return Read(reader, state, st.st_size, {}, 0)


def _resume_at(fh, st: os.stat_result, prev: FileState | None) -> int:
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

