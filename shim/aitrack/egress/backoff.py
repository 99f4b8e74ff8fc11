"""When to try a batch again: which answers are worth retrying, and how long to wait first.

Exponential backoff with jitter (1, 2, 4... s, capped at 5 min), never sooner than the
endpoint's Retry-After. The background forwarder keeps the schedule in the outbox
(`next_attempt_at`); `aitrack flush` sleeps it out, a few times at most.
"""

from __future__ import annotations

import random
from collections.abc import Callable

RETRYABLE = frozenset({429, 502, 503, 504})
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 300.0
RETRY_AFTER_MAX_S = 3600.0  # a longer Retry-After is capped: the next run tries again anyway


def retry_delay(attempt: int, retry_after: float | None = None,
                rng: Callable[[], float] = random.random) -> float:
    """Seconds before attempt `attempt + 1`: 1, 2, 4... s capped at 5 min, times a jitter
    of 0.5-1; never sooner than Retry-After (plus up to 10% so that clients spread out)."""
    backoff = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempt - 1))
    delay = backoff * (0.5 + 0.5 * rng())
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_MAX_S) * (1 + 0.1 * rng()))
    return delay
