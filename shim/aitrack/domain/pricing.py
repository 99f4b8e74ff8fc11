"""Per-model token prices: the shipped table (prices.toml) under the profile's overrides.

A model name is looked up as given, then after each of these named steps in turn, each applied
to the result of the previous one and the table checked after every step that changed the
name. Nothing else: never a substring, never a guess between two rows.

    lowercase        GPT-5 -> gpt-5
    bedrock ARN      arn:aws:bedrock:REGION:ACCOUNT:inference-profile/ID -> ID
    router prefix    bedrock/, vertex_ai/, anthropic/, openai/, azure/ (one or more)
    bedrock region   us. eu. apac. global. jp. au. ca. us-gov.
    bedrock vendor   anthropic.claude-... -> claude-...
    bedrock version  -v1:0, -v1
    vertex version   @default, @latest, @20250929
    context suffix   claude-opus-5-5[1m] -> claude-opus-5-5
    date suffix      -20250929, -2025-08-07
    latest alias     claude-3-5-haiku-latest -> claude-3-5-haiku
    dotted version   claude-opus-4.6 -> claude-opus-4-6 (Claude names only: OpenAI's have dots)

A fast mode is never billed at the standard price: `-fast` stays part of the name (its own
row, or unpriced), and `speed="fast"` looks up the `-fast` row of the model.

Profile entries are merged key by key over the shipped row of the same name, so
``[prices."claude-opus-5-5"] input = 3.0`` changes only the input price (a row's
long-context tier stays the shipped one: profiles cannot set tiers).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from aitrack.domain.costs import PER, estimate  # noqa: F401 - pricing's API, kept

TABLE = Path(__file__).parent / "prices.toml"
STALE_DAYS = 90
PRICE_KEYS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
FAST = "fast"


def _sub(pattern: str, repl: str = "") -> Callable[[str], str]:
    regex = re.compile(pattern)
    return lambda name: regex.sub(repl, name, count=1)


def _dotted(name: str) -> str:
    return re.sub(r"(?<=\d)\.(?=\d)", "-", name) if name.startswith("claude-") else name


# (name, step); the order matters: prefixes outside in, then suffixes outside in
STEPS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("lowercase", lambda name: name.strip().lower()),
    ("bedrock ARN",
     _sub(r"^arn:aws[\w-]*:bedrock:[^:]*:[^:]*:(?:inference-profile|foundation-model)/")),
    ("router prefix", _sub(r"^(?:(?:bedrock|vertex_ai|anthropic|openai|azure|converse|invoke)/)+")),
    ("bedrock region", _sub(r"^(?:us|eu|apac|global|jp|au|ca|us-gov)\.(?=anthropic\.)")),
    ("bedrock vendor", _sub(r"^anthropic\.")),
    ("bedrock version", _sub(r"-v\d+(?::\d+)?$")),
    ("vertex version", _sub(r"@(?:default|latest|\d{8})$")),
    ("context suffix", _sub(r"\[[0-9a-z]+\]$")),
    ("date suffix", _sub(r"(?:-\d{8}|-\d{4}-\d{2}-\d{2})$")),
    ("latest alias", _sub(r"-latest$")),
    ("dotted version", _dotted),
)


@dataclass(frozen=True)
class Tier:
    """Long-context prices: what a request whose prompt (input + cache read + cache writes)
    is above `above` tokens pays, for all of its tokens. USD per million tokens."""

    above: int
    input: float
    output: float
    cache_read: float
    cache_write_5m: float
    cache_write_1h: float


@dataclass(frozen=True)
class Match:
    """How a model name found its price row."""

    row: str
    rule: str  # the steps that changed the name, "exact" when none did


@dataclass(frozen=True)
class Price:
    """USD per million tokens. A missing cache price is billed at the input price.

    OpenAI rows: `cache_write_5m` is the write price of the default (30-minute) cache.
    """

    input: float
    output: float
    cache_read: float
    cache_write_5m: float
    cache_write_1h: float
    source: str  # "built-in" | "profile" (a profile entry, or a profile override of a row)
    long: Tier | None = None
    row: str = ""
    rule: str = "exact"
    party: str | None = None  # "first-party" | "third-party" for a shipped row
    ref: str | None = None  # where the shipped price comes from
    checked: str | None = None  # when it was last checked, YYYY-MM-DD
    note: str | None = None
    profile_keys: tuple[str, ...] = ()  # the prices a profile set on this row


def stale_line(as_of: str | None, today: date | None = None) -> str | None:
    """One line when the price table is older than STALE_DAYS days, saying how to update."""
    if not as_of:
        return None
    try:
        age = ((today or date.today()) - date.fromisoformat(as_of)).days
    except ValueError:
        return None
    if age <= STALE_DAYS:
        return None
    return (f"The built-in prices are {age} days old (as of {as_of}): install a newer aitrack, "
            'or set current prices with [prices."MODEL"] in your profile.')


def snippet(name: str) -> str:
    """Profile TOML that adds a price row for `name`: valid as pasted (the model then stays
    unpriced, never $0); pricing it takes the model's list prices in place of the comments."""
    lines = [f"[prices.{toml_key(name)}]",
             "# USD per million tokens: uncomment each line and put the model's list price"]
    lines += [f"# {k} = 0.0" for k in PRICE_KEYS]
    return "\n".join(lines) + "\n"


def toml_key(name: str) -> str:
    """`name` as a TOML basic-string key, on one line whatever it holds: a backslash, a quote,
    and every character that is not printable (a newline, an escape, a bidi override) are
    escaped, so a hostile model name cannot add lines (an [endpoint]) to a pasted snippet."""
    out = []
    for char in name:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            out.append(f"\\u{code:04X}" if code < 0x10000 else f"\\U{code:08X}")
    return '"' + "".join(out) + '"'


class PriceTable:
    def __init__(self, builtin: Mapping[str, Mapping[str, Any]],
                 overrides: Mapping[str, Mapping[str, float]] | None = None,
                 as_of: str | None = None):
        self.as_of = as_of
        # name -> (keys, source, the price keys a profile set)
        self.entries: dict[str, tuple[dict[str, Any], str, tuple[str, ...]]] = {
            name: (dict(keys), "built-in", ()) for name, keys in builtin.items()
        }
        for name, keys in (overrides or {}).items():
            base = self.entries.get(name, ({}, "profile", ()))[0]
            self.entries[name] = ({**base, **keys}, "profile", tuple(keys))
        self._cache: dict[tuple[str, str | None], Price | None] = {}

    def resolve(self, model: str, speed: str | None = None) -> Match | None:
        """The row a model name resolves to by the named steps, priced or not."""
        fast = speed == FAST
        name, applied = model, []
        candidates = [(name, ())]
        for step, apply in STEPS:
            changed = apply(name)
            if changed != name:
                name = changed
                applied.append(step)
                candidates.append((name, tuple(applied)))
        for candidate, steps in candidates:
            row = candidate + "-fast" if fast and not candidate.endswith("-fast") else candidate
            if row in self.entries:
                rule = " + ".join(steps) if steps else "exact"
                return Match(row, f"{rule} + speed fast" if row != candidate else rule)
        return None

    def canonical(self, model: str, speed: str | None = None) -> str:
        """The name after every step: what a profile row for this model is best called."""
        name = model
        for _, apply in STEPS:
            name = apply(name)
        if speed == FAST and not name.endswith("-fast"):
            name += "-fast"
        return name

    def match(self, model: str, speed: str | None = None) -> str | None:
        """The table row a model name resolves to (kept for callers of the old API)."""
        found = self.resolve(model, speed)
        return found.row if found else None

    def explain(self, model: str, speed: str | None = None) -> Match | None:
        """The matched row and the rule that matched it; None when the model is unpriced."""
        price = self.price_for(model, speed)
        return Match(price.row, price.rule) if price else None

    def price_for(self, model: str, speed: str | None = None) -> Price | None:
        """The model's price, or None when it is unknown (its cost is then null, not $0)."""
        key = (model, speed)
        if key not in self._cache:
            found = self.resolve(model, speed)
            self._cache[key] = self._price(found) if found else None
        return self._cache[key]

    def is_long_context(self, model: str, prompt_tokens: float,
                        speed: str | None = None) -> bool:
        """Whether one request with this prompt (input + cache_read + cache_creation) is
        billed at the model's long-context tier."""
        price = self.price_for(model, speed)
        return bool(price and price.long and prompt_tokens > price.long.above)

    def _price(self, found: Match) -> Price | None:
        keys, source, profile_keys = self.entries[found.row]
        if "input" not in keys or "output" not in keys:
            return None  # a profile entry naming only some prices of a new model
        inp = float(keys["input"])
        write_5m = float(keys.get("cache_write_5m", inp))
        long = keys.get("long")
        return Price(
            input=inp,
            output=float(keys["output"]),
            cache_read=float(keys.get("cache_read", inp)),
            cache_write_5m=write_5m,
            cache_write_1h=float(keys.get("cache_write_1h", write_5m)),
            source=source,
            long=_tier(long) if isinstance(long, Mapping) else None,
            row=found.row,
            rule=found.rule,
            party=keys.get("source"),
            ref=keys.get("ref"),
            checked=keys.get("checked"),
            note=keys.get("note"),
            profile_keys=profile_keys,
        )


def _tier(keys: Mapping[str, Any]) -> Tier:
    inp = float(keys["input"])
    write_5m = float(keys.get("cache_write_5m", inp))
    return Tier(above=int(keys["above"]), input=inp, output=float(keys["output"]),
                cache_read=float(keys.get("cache_read", inp)), cache_write_5m=write_5m,
                cache_write_1h=float(keys.get("cache_write_1h", write_5m)))


def builtin() -> tuple[dict[str, dict[str, Any]], str | None]:
    data = tomllib.loads(TABLE.read_text(encoding="utf-8"))
    return data.get("models", {}), data.get("as_of")


def load(overrides: Mapping[str, Mapping[str, float]] | None = None) -> PriceTable:
    """The shipped table with the profile's `[prices."MODEL"]` entries winning."""
    models, as_of = builtin()
    return PriceTable(models, overrides, as_of)


_default: PriceTable | None = None


def price_for(model: str, speed: str | None = None) -> Price | None:
    """The built-in price of a model (no profile); see `load()` for the profile's view."""
    global _default
    if _default is None:
        _default = load()
    return _default.price_for(model, speed)
