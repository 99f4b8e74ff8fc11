"""Records that cross from the adapters to the ledger.

Plain slotted classes rather than dataclasses: adapters are imported on the start-up path
of `aitrack claude`, where importing `dataclasses` alone costs about 10 ms.
"""

from __future__ import annotations


class Point:
    """One metric datapoint, as the tool sent it."""

    __slots__ = ("metric", "attrs", "value", "cumulative", "start_time", "series")

    def __init__(self, metric: str, attrs: dict[str, str], value: float, cumulative: bool,
                 start_time: int, series: str):
        self.metric = metric
        self.attrs = attrs
        self.value = value
        self.cumulative = cumulative
        self.start_time = start_time
        self.series = series  # metric name + attributes: identifies a cumulative series

    def __repr__(self) -> str:
        return (f"Point({self.metric!r}, {self.attrs!r}, {self.value!r}, "
                f"cumulative={self.cumulative})")


class Contribution:
    """What a datapoint adds to a session's totals: tokens of a type, or another named figure.

    "tokens" (and a "metric" named cost_usd) add to a session total that one source keeps
    without telling its requests apart (Claude Code's metrics): a floor under the session's
    requests, never added to them (store/ledger/settle.py). Other metrics (lines, commits) and
    "decision"s are figures of their own."""

    __slots__ = ("kind", "model", "name", "value")

    def __init__(self, kind: str, model: str, name: str, value: float):
        self.kind = kind  # "tokens" | "metric" | "decision"
        self.model = model
        self.name = name
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Contribution) and all(
            getattr(self, f) == getattr(other, f) for f in self.__slots__)

    def __repr__(self) -> str:
        return f"Contribution({self.kind!r}, {self.model!r}, {self.name!r}, {self.value!r})"


class Request:
    """One billed request, as one per-request source saw it (a telemetry event, a transcript
    line): the unit the ledger counts once, whichever sources saw it.

    `identity`: the request's own id as the source gives it (Claude's request id), None when
    it gives none; sources then meet on session, time and figures. `model`: the model that
    answered (the only one a source names when it knows no other); `requested`: the name
    asked for, when the source says and it differs. `figures`: domain.tokens.FIGURES order,
    then 1 for a long-context request. `cost`: the tool's own cost of it, when it says.
    """

    __slots__ = ("identity", "at", "model", "requested", "figures", "cost")

    def __init__(self, identity: str | None, at: float | None, model: str,
                 figures: tuple[int, ...], requested: str | None = None,
                 cost: float | None = None):
        self.identity = identity or None
        self.at = at
        self.model = model
        self.requested = requested if requested and requested != model else None
        self.figures = figures
        self.cost = cost

    def __repr__(self) -> str:
        return (f"Request({self.identity!r}, {self.at!r}, {self.model!r}, {self.figures!r}, "
                f"requested={self.requested!r}, cost={self.cost!r})")


class TranscriptSession:
    """One tool session as its transcripts tell it, counted once (see aitrack.store.importing).

    `usage`: model -> ledger token type (aitrack.tokens) -> tokens, the sum of its requests
    over the whole session so far, by the model that answered; `requested`: answered model ->
    the name requested, where they differ; `totals`: model (as requested) -> name -> value,
    the session totals its transcripts state besides its requests (Claude Code's cost-state:
    tokens and `cost_usd`), a floor under them; `notes`: what its files cannot show (a kind
    -> one line for `report session`: a gap that only telemetry fills).
    """

    __slots__ = ("tool", "tool_session_id", "started_at", "ended_at", "cwd", "project",
                 "entrypoint", "tool_version", "usage", "totals", "requested", "notes")

    def __init__(self, tool: str, tool_session_id: str, started_at: float, ended_at: float,
                 cwd: str | None = None, project: str | None = None,
                 entrypoint: str | None = None, tool_version: str | None = None,
                 usage: dict[str, dict[str, int]] | None = None,
                 totals: dict[str, dict[str, float]] | None = None,
                 requested: dict[str, str] | None = None, notes: dict[str, str] | None = None):
        self.tool = tool
        self.tool_session_id = tool_session_id
        self.started_at = started_at
        self.ended_at = ended_at
        self.cwd = cwd
        self.project = project
        self.entrypoint = entrypoint
        self.tool_version = tool_version
        self.usage = usage or {}
        self.totals = totals or {}
        self.requested = requested or {}
        self.notes = notes or {}
