"""When something happened, as the tools write it: ISO 8601 text, to unix seconds.

Every tool stamps its telemetry records and file lines this way (`2026-12-05T16:34:02.123Z`,
an offset, or none: local time). A stamp that is not text or not a date is no time at all:
the line still counts, dated by what else its file says.
"""

from __future__ import annotations

from datetime import datetime


def epoch(stamp: object) -> float | None:
    """`stamp` in unix seconds; None when it is missing or not an ISO 8601 date."""
    if not stamp or not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):  # not a date; a year the OS cannot place
        return None
