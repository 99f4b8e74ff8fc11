"""Token types of the ledger, the same for every tool.

Base types do not overlap and add up to a session's total: `input` (uncached input),
`cache_read`, `cache_creation` (every cache write) and `output` (all output).
`reasoning` is the part of output spent on reasoning: shown, never added again.

Subset types are parts of a base type that are priced differently; like `reasoning` they are
never added to a total. Only sources with one request's figures can fill them (transcripts,
per-request log events), aggregates cannot:
- `cache_creation_1h`: cache writes with a 1-hour TTL (Anthropic bills them above 5-minute ones);
- `long_*`: the parts of each base type that came from long-context requests, those whose prompt
  (input + cache_read + cache_creation) is over the model's long-context threshold.
"""

from __future__ import annotations

import zlib

BASE = ("input", "output", "cache_read", "cache_creation")
REASONING = "reasoning"
CACHE_1H = "cache_creation_1h"
LONG = {"long_input": "input", "long_output": "output", "long_cache_read": "cache_read",
        "long_cache_creation": "cache_creation", "long_cache_creation_1h": CACHE_1H}
SUBSETS = (CACHE_1H, *LONG)
ALL = (*BASE, REASONING, *SUBSETS)

# One request's figures, as every per-request source keeps them: the ledger token types, then
# 1 for a long-context request (whose base figures then also fill the long_* parts).
FIGURES = ("input", "output", "cache_read", "cache_creation", "cache_creation_1h", "reasoning")
# a request's long-context parts, in FIGURES order (reasoning has none)
LONG_FIGURES = ("long_input", "long_output", "long_cache_read", "long_cache_creation",
                "long_cache_creation_1h")
SUMS = (*FIGURES, *LONG_FIGURES)  # what requests add up to, per session and model


def total(tokens: dict[str, float]) -> float:
    """A session's total: the base types only."""
    return sum(tokens.get(t, 0) for t in BASE)


def prompt(tokens: dict[str, float]) -> float:
    """The size of one request's prompt, as long-context tiers measure it."""
    return tokens.get("input", 0) + tokens.get("cache_read", 0) + tokens.get("cache_creation", 0)


def request(tokens: dict[str, int], model: str = "", prices=None) -> dict[str, int]:
    """One request's ledger figures: its base, reasoning and 1h figures, plus the `long_*`
    copies when the price table (`prices`, a PriceTable or None) says the request was a
    long-context one for `model`. Zeros dropped."""
    out = {t: int(tokens.get(t, 0)) for t in (*BASE, REASONING, CACHE_1H) if tokens.get(t)}
    if prices is not None and prices.is_long_context(model, prompt(tokens)):
        out.update({long: out[base] for long, base in LONG.items() if out.get(base)})
    return out


def accumulate(sums: list[int], figures: tuple[int, ...]) -> None:
    """A request's figures (FIGURES order and its long flag) added to sums in SUMS order (a
    long-context one's twice: its long_* parts too)."""
    inp, out, read, write, one_h, reasoning, long = figures
    sums[0] += inp
    sums[1] += out
    sums[2] += read
    sums[3] += write
    sums[4] += one_h
    sums[5] += reasoning
    if long:
        sums[6] += inp
        sums[7] += out
        sums[8] += read
        sums[9] += write
        sums[10] += one_h


def count(value: str | None) -> int:
    """A token count as a log attribute carries it ("1234", "1234.0"); 0 when it is none."""
    try:
        return max(0, int(float(value))) if value else 0
    except ValueError:
        return 0


def request_number(identity: str) -> int:
    """The number a response row keeps of its request's id (CRC-32 + 1; 0: no id): how a
    telemetry record of the same request (which names it by that id) finds it."""
    return zlib.crc32(identity.encode()) + 1 if identity else 0
