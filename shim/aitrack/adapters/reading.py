"""What a tool's file reader works with: the engine's side of the reader contract.

An adapter's reader (see the adapters package) turns its tool's local files into per-response
records and counts them into the import engine's Book (store/importing/). This module holds
what both sides share: why a line is skipped (BadLine), decoding a line with msgspec, the
64-bit identity of a response, what a reader may keep about a file between imports
(FileRead), whether a request paid its model's long-context tier (long_context), the order
of a response's figures, and which figures and dates are plausible.

Plausible: a transcript is a file anyone can write (a hostile repository's session, a
damaged disk). A count beyond 2^63-1 or a float of 1e300 once rolled back a whole import,
2^63-1 tokens priced at $2.6e14, a date of 0001-01-01 crashed the report. So a request
counts at most MAX_REQUEST_TOKENS, a cost at most MAX_COST_USD, a date falls in 2020..a day
from now; other lines are skipped and counted by reason.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import msgspec

# a response's figures (ledger token types, then 1 for a long-context request) and what they
# add up to: the same shape for every per-request source (domain/tokens.py)
from aitrack.domain.tokens import FIGURES, SUMS, accumulate, request_number
from aitrack.domain.tokens import LONG_FIGURES as LONG

__all__ = ["FIGURES", "LINE_LIMIT", "LONG", "SKIP_REASONS", "SUMS", "BadLine", "FileRead",
           "accumulate", "decode", "figure_sums", "identity", "request_number"]

LINE_LIMIT = 8 << 20  # longer lines are skipped (an assistant line is well under 1 MB)
MAX_REQUEST_TOKENS = 10**9  # one request: context windows hold a few million tokens
MAX_TOTAL_TOKENS = 10**15  # a thread's running total (Codex): far past any real one, < 2^53
MAX_COST_USD = 10_000.0  # one session's cost of one model
EARLIEST = 1577836800.0  # 2020-01-01T00:00:00Z: older than any of these tools
AHEAD_S = 86400.0  # a clock a day fast is still a clock

SKIP_REASONS = {
    "not_json": "not JSON",
    "not_utf8": "not UTF-8",
    "line_too_long": f"over {LINE_LIMIT >> 20} MB",
    "bad_record": "unexpected fields",
    "no_session_id": "no session id",
    "unreadable_file": "unreadable file",
    "not_regular": "not a regular file (a FIFO, a device)",
    "unreadable_dir": "unreadable folder",
    "vanished_file": "deleted while read",
    "out_of_range": "a number beyond any count",
    "implausible_tokens": "over 1e9 tokens in one request",
    "implausible_cost": "costs over $10,000",
    "implausible_date": "dated before 2020 or in the future",
    "reader_error": "files aitrack failed to read (a bug: please report it)",
}


_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # POSIX: opening a FIFO nobody writes to waits
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class NotRegular(OSError):
    """A FIFO, a device or a socket where a tool's file was expected (a link to /dev/zero
    in a transcript folder): never read, it could block or give bytes for ever."""


def open_regular(path: str | os.PathLike):
    """A tool's file opened for reading, binary, if it is a regular file (or a link to one);
    NotRegular otherwise. Opened without blocking, so a FIFO cannot hold it up; callers
    read at most the size it had then (os.fstat of the handle)."""
    fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(f"{path} is not a regular file")
        if _NONBLOCK:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class BadLine(Exception):
    """A line that cannot be counted; `reason` is a key of SKIP_REASONS."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def decode(decoder, raw: bytes):
    """A line decoded by an adapter's msgspec decoder, or BadLine saying why not."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        # 1e400: past what a float holds (a number msgspec cannot give is never a count)
        raise BadLine("out_of_range" if str(exc).startswith("Number out of range")
                      else "bad_record") from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadLine("not_utf8") from None
        raise BadLine("not_json") from None


def tokens(value: int | float | None, limit: int = MAX_REQUEST_TOKENS) -> int:
    """A transcript's token figure as an int: None is 0; one beyond `limit` either way (or
    not a number: 1e400 decodes to infinity) is BadLine("implausible_tokens"). A negative
    one is returned as it is: its reader decides."""
    if value is None:
        return 0
    if not -limit <= value <= limit:  # NaN fails too
        raise BadLine("implausible_tokens")
    return int(value)


def cost_usd(value: int | float) -> float:
    """A transcript's cost figure, or BadLine("implausible_cost")."""
    if not 0 <= value <= MAX_COST_USD:
        raise BadLine("implausible_cost")
    return float(value)


class Dates:
    """Which transcript times are plausible: from 2020 to a day from now (when the reader
    was made). Most are checked as text: ISO dates sort as text."""

    __slots__ = ("latest", "latest_day")

    def __init__(self, now: float | None = None):
        self.latest = (time.time() if now is None else now) + AHEAD_S
        self.latest_day = time.strftime("%Y-%m-%d", time.gmtime(self.latest))

    def check(self, stamp: str | None) -> None:
        """Nothing, or BadLine("implausible_date") for a time outside the range, or one
        that is no ISO time at all."""
        if not stamp or ("2020-01-01" <= stamp[:10] < self.latest_day
                         and stamp[4:5] == "-" and stamp[7:8] == "-"):
            return
        try:
            at = datetime.fromisoformat(stamp).timestamp()
        except (ValueError, OverflowError, OSError):
            at = math.nan
        if not EARLIEST <= at <= self.latest:
            raise BadLine("implausible_date")


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


def long_context(prices, tiered: dict[str, bool], model: str, prompt: int) -> int:
    """1 when a request whose prompt (input, cache reads and writes) is `prompt` tokens pays
    `model`'s long-context tier, else 0; `tiered` caches, per model, whether it has a tier
    at all (most have none: one price-table lookup per model, not per request)."""
    has = tiered.get(model)
    if has is None:
        has = tiered[model] = bool(prices is not None and
                                   prices.is_long_context(model, float("inf")))
    return 1 if has and prices.is_long_context(model, prompt) else 0


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


