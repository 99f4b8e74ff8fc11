"""What a tool's file reader works with: the engine's side of the reader contract.

An adapter's reader (see the adapters package) turns its tool's local files into per-response
records and counts them into the import engine's Book (store/importing/). This module holds
what both sides share: why a line is skipped (BadLine), decoding a line with msgspec, the
64-bit identity of a response, what a reader may keep about a file between imports
(FileRead), and the order of a response's figures.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from pathlib import Path

import msgspec

# a response's figures (ledger token types, then 1 for a long-context request) and what they
# add up to: the same shape for every per-request source (domain/tokens.py)
from aitrack.domain.tokens import FIGURES, SUMS, accumulate
from aitrack.domain.tokens import LONG_FIGURES as LONG

__all__ = ["FIGURES", "LINE_LIMIT", "LONG", "SKIP_REASONS", "SUMS", "BadLine", "FileRead",
           "accumulate", "decode", "figure_sums", "identity", "request_number"]

LINE_LIMIT = 8 << 20  # longer lines are skipped (an assistant line is well under 1 MB)

SKIP_REASONS = {
    "not_json": "not JSON",
    "not_utf8": "not UTF-8",
    "line_too_long": f"over {LINE_LIMIT >> 20} MB",
    "bad_record": "unexpected fields",
    "no_session_id": "no session id",
    "unreadable_file": "unreadable file",
    "unreadable_dir": "unreadable folder",
    "vanished_file": "deleted while read",
}


class BadLine(Exception):
    """A line that cannot be counted; `reason` is a key of SKIP_REASONS."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def decode(decoder, raw: bytes):
    """A line decoded by an adapter's msgspec decoder, or BadLine saying why not."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError:
        raise BadLine("bad_record") from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadLine("not_utf8") from None
        raise BadLine("not_json") from None


_blake2b = hashlib.blake2b


def identity(text: str) -> int:
    """A 64-bit key for a response's identity (collisions: ~1e-9 in a million keys)."""
    return int.from_bytes(_blake2b(text.encode(), digest_size=8).digest(), "little",
                          signed=True)


class FileRead:
    """One transcript file being read: what its adapter may know and keep about it."""

    __slots__ = ("path", "context")

    def __init__(self, path: Path, context: dict):
        self.path = path
        self.context = context  # kept between imports (Codex: the file's thread id)


def request_number(identity: str) -> int:
    """The number a response row keeps of its request's id (CRC-32 + 1; 0: no id): how a
    telemetry record of the same request (which names it by that id) finds it."""
    return zlib.crc32(identity.encode()) + 1 if identity else 0


def figure_sums(items: Iterable[tuple[str, str, tuple[int, ...]]]
                ) -> dict[tuple[str, str], list[int]]:
    """(session, model, figures) summed per session and model, in SUMS order: what
    SessionState.add would add up one by one (done where a file is read, for Book.count_many)."""
    sums: dict[tuple[str, str], list[int]] = {}
    for owner, model, figures in items:
        s = sums.get((owner, model))
        if s is None:
            s = sums[owner, model] = [0] * len(SUMS)
        accumulate(s, figures)
    return sums


