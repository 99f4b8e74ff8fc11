"""A line file's new bytes split into whole lines, and the few that can count handed to its
reader.

Most lines of a transcript carry nothing to count (prompts, tool results): only the lines
holding one of the reader's MARKERS are parsed, found by searching the bytes, never by
decoding every line. A line longer than LINE_LIMIT is never held whole.
"""

from __future__ import annotations

import os
import time
from types import ModuleType

from aitrack.adapters.reading import LINE_LIMIT, BadLine

CHUNK = 1 << 20  # bytes read at a time
HEAD_LINES = 8  # lines of a file read from its start that are always parsed (its start time)
IDLE_S = 600.0  # a last line without its newline is read once the file is this old


class Lines:
    """Splits a file's bytes into whole lines and hands its Reader those that can count."""

    def __init__(self, transcripts: ModuleType, reader):
        self.markers = transcripts.MARKERS
        self.last_markers = getattr(transcripts, "LAST_MARKERS", ())
        self.reader = reader
        self.skipped: dict[str, int] = {}
        self.incomplete = 0
        self.heads = 0

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def read(self, fh, start: int, st: os.stat_result) -> int:
        """Read from `start` up to the size the file had when opened (`st`); the offset
        after the last whole line. What the tool writes meanwhile waits for the next import.
        A line over the limit is never held whole: its pieces are dropped as they come."""
        fh.seek(start)
        left = st.st_size - start
        self.heads = HEAD_LINES if start == 0 else 0
        at = start  # the file offset of the next block
        pos = start  # the offset where the unfinished line starts
        pending: list[bytes] = []  # its pieces so far
        size = 0
        dropping = False  # it is over the limit
        while left > 0 and (block := fh.read(min(CHUNK, left))):
            left -= len(block)
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
        lines: dict[int, int] = {}  # start -> end (its newline) of each line to parse
        for marker in self.markers:
            i = find(marker, begin, end)
            while i >= 0:
                e = find(b"\n", i, end)
                lines[rfind(b"\n", begin, i) + 1 or begin] = e
                i = find(marker, e, end)
        for marker in self.last_markers:
            i = rfind(marker, begin, end)
            if i >= 0:
                lines[rfind(b"\n", begin, i) + 1 or begin] = find(b"\n", i, end)
        s = begin
        head_end = 0
        while self.heads and s < end:
            head_end = find(b"\n", s, end)
            lines[s] = head_end
            s = head_end = head_end + 1
            self.heads -= 1
        line = self.reader.line
        # one marker's lines come in order; several markers' (or a file's first lines) not
        order = lines if len(self.markers) == 1 and not head_end and not self.last_markers \
            else sorted(lines)
        for s in order:
            e = lines[s]
            if e - s > LINE_LIMIT:
                self.skip("line_too_long")
                continue
            raw = buf[s:e]
            if raw[-1:] == b"\r":
                raw = raw[:-1]
            if s < head_end and not raw.strip():  # a marker's line is never blank
                continue
            try:
                line(raw, s < head_end)
            except BadLine as bad:
                self.skip(bad.reason)
