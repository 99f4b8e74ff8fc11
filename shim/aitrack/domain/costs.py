"""What ledger token counts cost at a price: the estimate every report, the usage metrics
and the status line make.

Its own module, and light (no dataclasses, no price table): `aitrack statusline` runs at
each Claude Code update and prices with rates it keeps in a cache. A price is anything with
the rates `input`, `output`, `cache_read`, `cache_write_5m`, `cache_write_1h` (USD per
million tokens) and `long` (a tier of the same rates with `above`, or None): pricing's Price
and Tier, or the status line's cached rates.
"""

from __future__ import annotations

from collections.abc import Mapping  # already loaded by sqlite3; `typing` is not (~3 ms)

from aitrack.domain import tokens as token_types

PER = 1_000_000


def _part(tokens: Mapping[str, float], name: str, within: float) -> float:
    """A subset figure, never more than the figure it is part of (sources may disagree)."""
    return max(0.0, min(float(tokens.get(name, 0) or 0), within))


def estimate(tokens: Mapping[str, float], price: object) -> float:
    """Cost in USD of ledger token counts (see aitrack/tokens.py).

    Base types: input (uncached), output, cache_read, cache_creation. Subsets price parts of
    them differently: `cache_creation_1h` at the 1-hour write rate (the rest of cache_creation
    at the 5-minute rate), `long_*` at the long-context tier. Without subsets every write is a
    5-minute one and every request a short one. `reasoning` is part of output: never billed
    again.
    """
    amounts = {t: max(0.0, float(tokens.get(t, 0) or 0)) for t in token_types.BASE}
    c1h = _part(tokens, token_types.CACHE_1H, amounts["cache_creation"])
    long: dict[str, float] = {}
    if price.long is not None:
        long = {base: _part(tokens, name, amounts[base])
                for name, base in token_types.LONG.items() if base in amounts}
        long["cache_creation_1h"] = _part(tokens, "long_cache_creation_1h",
                                          min(c1h, long["cache_creation"]))
    short = {t: amounts[t] - long.get(t, 0.0) for t in amounts}
    short_1h = min(c1h - long.get("cache_creation_1h", 0.0), short["cache_creation"])
    cost = _cost(short["input"], short["output"], short["cache_read"],
                 short["cache_creation"] - short_1h, short_1h, price)
    if price.long is not None:
        long_1h = long["cache_creation_1h"]
        cost += _cost(long["input"], long["output"], long["cache_read"],
                      long["cache_creation"] - long_1h, long_1h, price.long)
    return cost / PER


def _cost(inp: float, out: float, read: float, write_5m: float, write_1h: float,
          p: object) -> float:
    return (inp * p.input + out * p.output + read * p.cache_read
            + write_5m * p.cache_write_5m + write_1h * p.cache_write_1h)


