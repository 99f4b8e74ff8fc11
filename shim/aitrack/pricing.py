"""Per-model token prices: the shipped table (data/prices.toml) under the profile's overrides.

A model name is looked up exactly, then after each of these steps in turn (each applied
to the result of the previous one), never by substring:

1. a provider prefix is dropped: ``anthropic/claude-opus-5-5`` -> ``claude-opus-5-5``
2. a date suffix is dropped: ``-20250929``, ``@20250929``, ``-2025-08-07``
3. a context-size suffix is dropped: ``claude-opus-5-5[1m]`` -> ``claude-opus-5-5``
4. ``-fast`` is dropped (only when the table has no ``-fast`` entry of its own)

Profile entries are merged key by key over the shipped entry of the same name, so
``[prices."claude-opus-5-5"] input = 3.0`` changes only the input price.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TABLE = Path(__file__).parent / "data" / "prices.toml"
PER = 1_000_000

_FAMILY_RULES = (
    re.compile(r"^[A-Za-z0-9_.\-]+/"),  # provider prefix
    re.compile(r"(?:[-@]\d{8}|-\d{4}-\d{2}-\d{2})$"),  # date suffix
    re.compile(r"\[[0-9a-z]+\]$"),  # context-size suffix, e.g. [1m]
    re.compile(r"-fast$"),
)


@dataclass(frozen=True)
class Price:
    """USD per million tokens. A missing cache price is billed at the input price."""

    input: float
    output: float
    cache_read: float
    cache_write_5m: float
    cache_write_1h: float
    source: str  # "built-in" | "profile"


def estimate(tokens: Mapping[str, float], price: Price) -> float:
    """Cost in USD of ledger token counts (input, output, cache_read, cache_creation).

    `reasoning` is part of `output` and not billed again. Cache writes are billed at the
    5-minute rate, the default of Claude Code; the ledger does not split them by TTL.
    """
    return (tokens.get("input", 0) * price.input
            + tokens.get("output", 0) * price.output
            + tokens.get("cache_read", 0) * price.cache_read
            + tokens.get("cache_creation", 0) * price.cache_write_5m) / PER


class PriceTable:
    def __init__(self, builtin: Mapping[str, Mapping[str, float]],
                 overrides: Mapping[str, Mapping[str, float]] | None = None,
                 as_of: str | None = None):
        self.as_of = as_of
        self.entries: dict[str, tuple[dict[str, float], str]] = {
            name: (dict(keys), "built-in") for name, keys in builtin.items()
        }
        for name, keys in (overrides or {}).items():
            base = self.entries.get(name, ({}, "profile"))[0]
            self.entries[name] = ({**base, **keys}, "profile")
        self._cache: dict[str, Price | None] = {}

    def match(self, model: str) -> str | None:
        """The table entry a model name resolves to, following the family rules."""
        name = model
        if name in self.entries:
            return name
        for rule in _FAMILY_RULES:
            name = rule.sub("", name)
            if name in self.entries:
                return name
        return None

    def price_for(self, model: str) -> Price | None:
        """The model's price, or None when it is unknown (its cost is then null, not $0)."""
        if model not in self._cache:
            self._cache[model] = self._price(model)
        return self._cache[model]

    def _price(self, model: str) -> Price | None:
        entry = self.match(model)
        if entry is None:
            return None
        keys, source = self.entries[entry]
        if "input" not in keys or "output" not in keys:
            return None  # a profile entry naming only some prices of a new model
        inp = float(keys["input"])
        return Price(
            input=inp,
            output=float(keys["output"]),
            cache_read=float(keys.get("cache_read", inp)),
            cache_write_5m=float(keys.get("cache_write_5m", inp)),
            cache_write_1h=float(keys.get("cache_write_1h", keys.get("cache_write_5m", inp))),
            source=source,
        )


def builtin() -> tuple[dict[str, dict[str, float]], str | None]:
    data = tomllib.loads(TABLE.read_text(encoding="utf-8"))
    return data.get("models", {}), data.get("as_of")


def load(overrides: Mapping[str, Mapping[str, float]] | None = None) -> PriceTable:
    """The shipped table with the profile's `[prices."MODEL"]` entries winning."""
    models, as_of = builtin()
    return PriceTable(models, overrides, as_of)


_default: PriceTable | None = None


def price_for(model: str) -> Price | None:
    """The built-in price of a model (no profile); see `load()` for the profile's view."""
    global _default
    if _default is None:
        _default = load()
    return _default.price_for(model)
