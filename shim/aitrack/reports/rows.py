"""What a report is made of: rows of Figures (token sums and their cost of record), totals,
and the tools' decisions on tool uses.

Cost of record, per (session, model): the cost the tool reported (Claude's
`claude_code.cost.usage`, source "reported"), else an estimate from the price table
("estimated"), else nothing ("unpriced": cost null, never $0). A row adding up several
(session, model) pairs is "reported", "estimated" or "mixed" when every part is known,
"partial" when some parts are unpriced (cost_usd is then the sum of the known parts, a
lower bound) and "unpriced" when none is known. A row without any usage is "none" ($0).
Estimates price the token subsets too (1-hour cache writes, long-context parts: tokens.py),
which the summaries keep since migration m004.

Contribution figures (lines, commits, pull requests) are per session, not per model: a
model's row or sub-row has none (`Figures.has_contrib` false), only periods and totals do.
Tool decisions (accepted and rejected tool uses) are read per tool and tool name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aitrack.domain import tokens as token_types
from aitrack.domain.pricing import PriceTable, estimate
from aitrack.reports.periods import Options

TOKEN_FIELDS = ("input", "output", "cache_read", "cache_creation", "reasoning")
# what estimates are priced from: the base types and their subsets (never added to totals)
PRICED = (*token_types.BASE, *token_types.SUBSETS)
CONTRIB_FIELDS = ("lines_added", "lines_removed", "commits", "pull_requests")


@dataclass
class Figures:
    """Sums over some (session, model) pairs, and what they cost."""

    sessions: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_FIELDS, 0))
    contrib: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CONTRIB_FIELDS, 0))
    reported: float = 0.0
    estimated: float = 0.0
    n_reported: int = 0
    n_estimated: int = 0
    unpriced: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    has_contrib: bool = True  # False for a model's figures: contributions are per session

    def add(self, other: Figures, sessions: bool = True) -> None:
        if sessions:
            self.sessions += other.sessions
        for k in TOKEN_FIELDS:
            self.tokens[k] += other.tokens[k]
        for k in CONTRIB_FIELDS:
            self.contrib[k] += other.contrib[k]
        self.reported += other.reported
        self.estimated += other.estimated
        self.n_reported += other.n_reported
        self.n_estimated += other.n_estimated
        self.unpriced |= other.unpriced
        self.models |= other.models

    @property
    def total(self) -> int:
        return sum(self.tokens[k] for k in ("input", "output", "cache_read", "cache_creation"))

    @property
    def cost_source(self) -> str:
        known = self.n_reported or self.n_estimated
        if self.unpriced:
            return "partial" if known else "unpriced"
        if self.n_reported and self.n_estimated:
            return "mixed"
        if self.n_reported:
            return "reported"
        return "estimated" if self.n_estimated else "none"

    @property
    def cost_usd(self) -> float | None:
        if self.cost_source == "unpriced":
            return None
        return round(self.reported + self.estimated, 6)

    @property
    def cost_per_commit(self) -> float | None:
        cost = self.cost_usd
        commits = self.contrib["commits"] if self.has_contrib else 0
        return round(cost / commits, 6) if cost is not None and commits else None


@dataclass
class Decisions:
    """Accepted and rejected tool uses of one tool (claude, codex), in all and per tool name."""

    tool: str
    accepted: int = 0
    rejected: int = 0
    by_name: dict[str, tuple[int, int]] = field(default_factory=dict)  # name: (acc., rej.)

    @staticmethod
    def rate(accepted: int, rejected: int) -> float | None:
        decided = accepted + rejected
        return round(accepted / decided, 4) if decided else None

    @property
    def acceptance_rate(self) -> float | None:
        return self.rate(self.accepted, self.rejected)


@dataclass
class Report:
    kind: str
    opts: Options
    rows: list[tuple[str, Figures, list[tuple[str, Figures]]]]  # period, figures, by model
    totals: Figures
    prices_as_of: str | None
    sessions: dict[str, dict] = field(default_factory=dict)  # session report: id -> facts
    hidden: int = 0  # rows left out by --limit (the totals include them)
    source: str = "exact"  # "hourly" when read from the hourly summaries
    decisions: list[Decisions] | None = None  # the model report's tool acceptance
    requested: dict[str, list[str]] = field(default_factory=dict)  # answered -> names asked
    notes: dict[str, list[str]] = field(default_factory=dict)  # session id -> its gaps
    tools: dict[str, list[tuple[str, Figures]]] = field(default_factory=dict)  # --by-tool:
    # a row's label -> its figures per tool


def figures_in(by: dict[str, Figures], key: str) -> Figures:
    """The figures under `key`, new ones when there are none yet."""
    f = by.get(key)
    if f is None:
        f = by[key] = Figures()
    return f


def add_pairs(f: Figures, model: str, pairs: int, sums: list, prices: PriceTable,
              sessions: bool = False) -> None:
    """Add one query row: the sums over `pairs` (session, model) pairs of one model.

    `sums`: input, output, cache_read, cache_creation, reasoning, the reported cost and the
    number of pairs it covers, then the sums of PRICED of the pairs without one.
    """
    inp, out, cr, cc, rs, reported, n_reported, *unreported = sums
    if sessions:
        f.sessions += pairs  # a model's row counts the sessions that used it
    t = f.tokens
    t["input"] += inp or 0
    t["output"] += out or 0
    t["cache_read"] += cr or 0
    t["cache_creation"] += cc or 0
    t["reasoning"] += rs or 0
    f.models.add(model)
    f.reported += reported or 0.0
    f.n_reported += n_reported
    n_estimated = pairs - n_reported
    if n_estimated:
        price = prices.price_for(model)
        if price is None:
            f.unpriced.add(model)
        else:
            tokens = dict(zip(PRICED, (v or 0 for v in unreported), strict=True))
            f.estimated += estimate(tokens, price)
            f.n_estimated += n_estimated

