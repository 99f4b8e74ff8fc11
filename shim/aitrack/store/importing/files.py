"""Finding a tool's files, and reading what is new in one since the last import.

What the last import knew of each file is a row of transcript_files (migration m005): an
unchanged file is not opened, an appended one is read on from where the last read ended,
and a rewritten one (its first bytes changed: a compaction) from its start again.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from aitrack.adapters.reading import FileRead, NotRegular, identity, open_regular
from aitrack.store.importing.lines import Lines
from aitrack.store.importing.result import ImportResult

HEAD_BYTES = 4096  # a file whose first bytes changed was rewritten: read it from the start


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
         ) -> Iterator[tuple[str, os.stat_result]]:
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
                elif transcripts.is_transcript(entry.name):
                    st = entry.stat()
                    if stat.S_ISREG(st.st_mode):
                        yield entry.path, st
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
            # a database source (the package docstring) will branch here: queried, not split
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

