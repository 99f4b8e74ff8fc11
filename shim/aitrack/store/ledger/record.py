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
COST = "cost_usd"
_TOTAL_NAMES = frozenset((*TOTALLED, COST))


def split(stated: Mapping[str, Mapping[str, float]]
          ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """What a transcript states of a session, per model: its totals (token types, cost: a
    floor under the requests) and the tool's other figures (Copilot CLI's premium requests,
    opencode's own cost: kept as any source's other figures are)."""
    totals: dict[str, dict[str, float]] = {}
    figures: dict[str, dict[str, float]] = {}
    for model, named in stated.items():
        for name, value in named.items():
            into = totals if name in _TOTAL_NAMES else figures
            into.setdefault(model, {})[name] = value
    return totals, figures


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

    def _add(self, model: str, values: list[int]) -> None:
        sums = self.usage.get(model)
        if sums is None:
            self.usage[model] = list(values)
        else:
            for i, v in enumerate(values):
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
    stated = _statements(totals)
    known = set(aliases) | {(r, a) for a, r in groups if r is not None}
    models = sorted(stated, key=lambda m: (-stated[m][0], m))
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
            learnt = _by_figures(stated[m][1], groups, floating)
            if learnt is not None:
                cover[m] = [k for k in floating if k[0] == learnt]
                floating = [k for k in floating if k[0] != learnt]
                out.learnt.append((m, learnt))
    unexplained = [m for m in models if not cover[m]]
    for m in models:
        if cover[m] or not floating:  # unexplained with nothing it could be: its own name
            _covered(out, m, stated[m], groups, cover[m])
    if unexplained and floating:
        _pool(out, [stated[m] for m in unexplained], groups, floating)
    else:
        for k in floating:
            out._cost(k[0], groups[k].cost if groups[k].costed() else None)
    for k in groups:  # requested under a name no total states: their own costs
        if k not in claimed and k[1] is not None:
            out._cost(k[0], groups[k].cost if groups[k].costed() else None)
    return out


_BASE_AT = tuple(range(len(BASE)))  # the base types' places in SUMS
_INDEX = {name: i for i, name in enumerate(SUMS)}

# a total as settle reads it: its source, the token figures it states as (place in SUMS,
# value) (the base types always, 0 where not given), and its cost
Statement = tuple[str, list[tuple[int, int]], float | None]


def _statements(totals: Totals) -> dict[str, tuple[int, list[Statement], list[float]]]:
    """Per model: the size of its largest total (base types), the totals that state tokens,
    and the costs of those that state only a cost (older cost-state records: the cost of
    all of its model's requests, whatever they are)."""
    out: dict[str, tuple[int, list[Statement], list[float]]] = {}
    for source, by_model in totals.items():
        for model, figures in by_model.items():
            size, tokens, costs = out.get(model, (0, [], []))
            pairs = [(i, int(round(figures.get(t, 0)))) for i, t in enumerate(BASE)]
            pairs += [(_INDEX[n], int(round(v))) for n, v in figures.items()
                      if n in _INDEX and _INDEX[n] >= len(BASE) and v]
            cost = figures.get(COST)
            if any(v for _, v in pairs):
                tokens.append((source, pairs, cost))
                size = max(size, sum(v for _, v in pairs[:len(BASE)]))
            elif cost is not None:
                costs.append(cost)
            out[model] = (size, tokens, costs)
    return out


def _by_figures(stated: list[Statement], groups: Groups,
                floating: list[tuple[str, str | None]]) -> str | None:
    """The one unexplained answered model whose requests add up to a total, type for type
    (base types), or None."""
    sums: dict[str, list[int]] = {}
    for k in floating:
        s = sums.setdefault(k[0], [0] * len(BASE))
        for i in _BASE_AT:
            s[i] += groups[k].sums[i]
    found = {a for _, pairs, _ in stated for a, s in sums.items()
             if s == [v for _, v in pairs[:len(BASE)]]}
    return found.pop() if len(found) == 1 else None


def _covered(out: Record, m: str, statement: tuple[int, list[Statement], list[float]],
             groups: Groups, keys: list[tuple[str, str | None]]) -> None:
    """A total's model with the requests it covers: its remainder, and the cost of both."""
    _, stated, cost_only = statement
    covered = groups[keys[0]].sums if len(keys) == 1 else _summed(groups, keys)
    remainder = [0] * len(SUMS)
    for _, pairs, _ in stated:
        for i, v in pairs:
            if v - covered[i] > remainder[i]:
                remainder[i] = v - covered[i]
    target = max(keys, key=lambda k: (sum(groups[k].sums[:len(BASE)]), k[0]))[0] if keys \
        else m
    out._add(target, remainder)
    if not keys and not any(remainder):
        out.usage.setdefault(target, [0] * len(SUMS))
    # a total stands for all of its model's tokens when it is the largest of them, type for
    # type (those it states): then its cost is the cost of them all
    standing = [cost for _, pairs, cost in stated if cost is not None
                and all(covered[i] + remainder[i] == v for i, v in pairs)]
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


def _pool(out: Record, statements: list[tuple[int, list[Statement], list[float]]],
          groups: Groups, floating: list[tuple[str, str | None]]) -> None:
    """Totals no request is known to answer, pooled with the requests no total is known to
    cover: only what the totals exceed them by counts, on the largest of those requests."""
    requested = _summed(groups, floating)
    pooled: dict[str, list[int]] = {}  # per source: its totals of these models, summed
    for _, stated, _ in statements:
        for source, pairs, _ in stated:
            figures = pooled.setdefault(source, [0] * len(SUMS))
            for i, v in pairs:
                figures[i] += v
    remainder = [0] * len(SUMS)
    for figures in pooled.values():
        for i, v in enumerate(figures):
            remainder[i] = max(remainder[i], v - requested[i])
    target = max(floating, key=lambda k: (sum(groups[k].sums[:len(BASE)]), k[0]))[0]
    out._add(target, remainder)
    for k in floating:
        costed = groups[k].costed() and not any(remainder)
        out._cost(k[0], groups[k].cost if costed else None)


def _summed(groups: Groups, keys: list[tuple[str, str | None]]) -> list[int]:
    out = [0] * len(SUMS)
    for k in keys:
        for i, v in enumerate(groups[k].sums):
            out[i] += v
    return out
