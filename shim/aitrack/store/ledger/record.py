"""A session's figure of record, computed: its requests, each once, and what its totals add.

A session's sources tell the ledger two kinds of things:
- requests, each once whichever sources saw it (store/ledger/requests.py), grouped here by
  the model that answered and the name it was requested under (None: no source said);
- totals: what a source states for the whole session without telling its requests apart
  (Claude Code's metrics, its transcripts' `cost-state`), per model as that source names it.

The figure of record, per model that answered and token type, is the sum of its requests
plus each total's remainder: what the total saw beyond the requests it covers (a title
request only telemetry saw, when the transcript's cost-state is the only other source). A
total never adds a request twice and never takes one away: it is a floor, and of several
totals of one model the largest remainder stands (they may have seen the same requests).

Which requests a total covers: those requested under its model name; those whose requested
name no source gave that answered under that name or under a name learnt as its alias
(model_aliases: from requests that named both). A total that no request is known to answer
(asked for under one name, answered under another, before any source named both) is matched
on figures: equal, type for type, to the requests of exactly one unexplained answered model,
it is that model's, and the alias is learnt. Otherwise it is pooled with the unexplained
requests, and only what it exceeds them by counts, on the largest of them: never a request
twice, where the same requests may be behind both.

Cost of record per model that answered: the tool's own where it covers exactly the tokens of
record (a total standing for all of its model's tokens, or requests each with its cost);
otherwise none, and reports price the tokens from the table. So tokens and cost never
disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aitrack.domain.tokens import BASE, SUMS

TOTALLED = SUMS  # the token types a total can state (most state the base ones only)
_AT = tuple(range(len(SUMS)))
COST = "cost_usd"


class Group:
    """The requests of a session that answered under one model and were asked for under one
    name: their figures summed (SUMS order), how many, and the reported cost of those that
    had one."""

    __slots__ = ("sums", "n", "cost", "n_cost")

    def __init__(self, sums: Iterable[int], n: int = 1, cost: float = 0.0, n_cost: int = 0):
        self.sums = list(sums)
        self.n = n
        self.cost = cost
        self.n_cost = n_cost

    def costed(self) -> bool:
        """Whether every request of the group came with its cost."""
        return self.n_cost >= self.n

    def __repr__(self) -> str:
        return f"Group({self.sums!r}, n={self.n}, cost={self.cost!r}, n_cost={self.n_cost})"


Groups = Mapping[tuple[str, str | None], Group]  # (answered, requested) -> Group
Totals = Mapping[str, Mapping[str, Mapping[str, float]]]  # source -> model -> name -> value


class Record:
    """A session's figures of record: usage per answered model (SUMS names), cost per
    answered model (None: not the tool's own, the report estimates it), and the aliases
    learnt from its figures."""

    __slots__ = ("usage", "cost", "learnt")

    def __init__(self) -> None:
        self.usage: dict[str, list[int]] = {}
        self.cost: dict[str, float | None] = {}
        self.learnt: list[tuple[str, str]] = []

    def tokens(self) -> dict[str, dict[str, int]]:
        return {model: {n: v for n, v in zip(SUMS, sums, strict=True) if v}
                for model, sums in self.usage.items() if any(sums)}

    def _add(self, model: str, values: Iterable[int], at: tuple[int, ...] | None = None):
        sums = self.usage.get(model)
        if sums is None:
            sums = self.usage[model] = [0] * len(SUMS)
        for i, v in zip(at or range(len(SUMS)), values, strict=False):
            sums[i] += v

    def _cost(self, model: str, part: float | None) -> None:
        if model in self.cost and self.cost[model] is None:
            return
        self.cost[model] = None if part is None else self.cost.get(model, 0.0) + part


def settle(groups: Groups, totals: Totals,
           aliases: Iterable[tuple[str, str]] = ()) -> Record:
    """The figure of record of one session (see the module docstring)."""
    out = Record()
    for (answered, _), g in groups.items():
        out._add(answered, g.sums)
    if not totals:  # most sessions: requests only
        for (answered, _), g in groups.items():
            out._cost(answered, g.cost if g.costed() else None)
        return out
    known = set(aliases) | {(r, a) for a, r in groups if r is not None}
    models = sorted({m for by_model in totals.values() for m in by_model},
                    key=lambda m: (-_size(totals, m), m))
    claimed: set[tuple[str, str | None]] = set()
    cover: dict[str, list[tuple[str, str | None]]] = {}
    for m in models:
        keys = [k for k in groups if k not in claimed and (
            k[1] == m or (k[1] is None and (k[0] == m or (m, k[0]) in known)))]
        cover[m] = keys
        claimed.update(keys)
    floating = [k for k in groups if k not in claimed and k[1] is None]
    for m in models:
        if not cover[m] and floating:
            learnt = _by_figures(m, totals, groups, floating)
            if learnt is not None:
                cover[m] = [k for k in floating if k[0] == learnt]
                floating = [k for k in floating if k[0] != learnt]
                out.learnt.append((m, learnt))
    unexplained = [m for m in models if not cover[m]]
    for m in models:
        if cover[m]:
            _covered(out, m, totals, groups, cover[m])
    pooled = unexplained if floating else []
    for m in unexplained:
        if not floating:  # nothing it could be: all of it counts, under its own name
            _covered(out, m, totals, groups, [])
    if pooled:
        _pool(out, pooled, totals, groups, floating)
    else:
        for k in floating:
            out._cost(k[0], groups[k].cost if groups[k].costed() else None)
    for k in groups:  # requested under a name no total states: their own costs
        if k not in claimed and k[1] is not None:
            out._cost(k[0], groups[k].cost if groups[k].costed() else None)
    return out


def _size(totals: Totals, model: str) -> float:
    return max(sum(by_model.get(model, {}).get(t, 0) for t in BASE)
               for by_model in totals.values())


def _states_tokens(figures: Mapping[str, float]) -> bool:
    """Whether a total states tokens; one that states only a cost (older cost-state
    records) covers whatever requests its model had."""
    return any(figures.get(t) for t in TOTALLED)


def _base(g: Group) -> tuple[int, ...]:
    return tuple(g.sums[i] for i in _AT)


def _stated(totals: Totals, model: str, tokens: bool = True
            ) -> list[tuple[tuple[float, ...], float | None]]:
    """Each source's total of a model that states tokens (`tokens`; else those that state
    only a cost): its token figures (TOTALLED order) and cost."""
    return [(tuple(by_model[model].get(t, 0) for t in TOTALLED), by_model[model].get(COST))
            for by_model in totals.values()
            if model in by_model and _states_tokens(by_model[model]) == tokens]


def _by_figures(m: str, totals: Totals, groups: Groups,
                floating: list[tuple[str, str | None]]) -> str | None:
    """The one unexplained answered model whose requests add up to a total of `m`, type for
    type (base types), or None."""
    sums: dict[str, list[int]] = {}
    for k in floating:
        s = sums.setdefault(k[0], [0] * len(TOTALLED))
        for i, v in enumerate(_base(groups[k])):
            s[i] += v
    found = {a for figures, _ in _stated(totals, m) for a, s in sums.items()
             if any(figures[:4]) and tuple(s[:4]) == tuple(int(round(v)) for v in figures[:4])}
    return found.pop() if len(found) == 1 else None


def _covered(out: Record, m: str, totals: Totals, groups: Groups,
             keys: list[tuple[str, str | None]]) -> None:
    """A total's model with the requests it covers: its remainder, and the cost of both."""
    covered = [0] * len(TOTALLED)
    for k in keys:
        for i, v in enumerate(_base(groups[k])):
            covered[i] += v
    stated = _stated(totals, m)
    remainder = [max([0, *(int(round(f[i])) - covered[i] for f, _ in stated)])
                 for i in range(len(TOTALLED))]
    cost_only = [cost for _, cost in _stated(totals, m, tokens=False) if cost is not None]
    target = max(keys, key=lambda k: (sum(_base(groups[k])), k[0]))[0] if keys else m
    out._add(target, remainder, _AT)
    if not keys and not any(remainder):
        out.usage.setdefault(target, [0] * len(SUMS))
    # a total stands for all of its model's tokens when it is the largest of them, type for
    # type: then its cost is the cost of them all
    record = [c + r for c, r in zip(covered, remainder, strict=True)]
    standing = [cost for figures, cost in stated if cost is not None
                and all(int(round(f)) == v for f, v in zip(figures, record, strict=True))]
    if cost_only and not standing:  # an older cost-state: the cost of all of them
        standing = cost_only[:1]
    if standing and len({k[0] for k in keys}) <= 1:  # one answered model: its cost is that
        out._cost(target, standing[0])
    elif not any(remainder) and all(groups[k].costed() for k in keys):
        for k in keys:
            out._cost(k[0], groups[k].cost)
    else:
        out._cost(target, None)
        for k in keys:
            out._cost(k[0], None)


def _pool(out: Record, models: list[str], totals: Totals, groups: Groups,
          floating: list[tuple[str, str | None]]) -> None:
    """Totals no request is known to answer, pooled with the requests no total is known to
    cover: only what the totals exceed them by counts, on the largest of those requests."""
    requested = [0] * len(TOTALLED)
    for k in floating:
        for i, v in enumerate(_base(groups[k])):
            requested[i] += v
    remainder = [0] * len(TOTALLED)
    for by_model in totals.values():
        pooled = [sum(by_model.get(m, {}).get(t, 0) for m in models) for t in TOTALLED]
        for i in range(len(TOTALLED)):
            remainder[i] = max(remainder[i], int(round(pooled[i])) - requested[i])
    target = max(floating, key=lambda k: (sum(_base(groups[k])), k[0]))[0]
    out._add(target, remainder, _AT)
    for k in floating:
        costed = groups[k].costed() and not any(remainder)
        out._cost(k[0], groups[k].cost if costed else None)
