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
    """What a datapoint adds to a session: tokens of a type, or another named figure."""

    __slots__ = ("kind", "model", "name", "value")

    def __init__(self, kind: str, model: str, name: str, value: float):
        self.kind = kind  # "tokens" | "metric"
        self.model = model
        self.name = name
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Contribution) and all(
            getattr(self, f) == getattr(other, f) for f in self.__slots__)

    def __repr__(self) -> str:
        return f"Contribution({self.kind!r}, {self.model!r}, {self.name!r}, {self.value!r})"


class TranscriptSession:
    """One tool session as its transcripts tell it, counted once (see aitrack.store.importing).

    `usage`: model -> ledger token type (aitrack.tokens) -> tokens, over the whole session so
    far; `metrics`: model -> name -> value, e.g. Claude Code's own `cost_usd` (cost-state).
    """

    __slots__ = ("tool", "tool_session_id", "started_at", "ended_at", "cwd", "project",
                 "entrypoint", "tool_version", "usage", "metrics")

    def __init__(self, tool: str, tool_session_id: str, started_at: float, ended_at: float,
                 cwd: str | None = None, project: str | None = None,
                 entrypoint: str | None = None, tool_version: str | None = None,
                 usage: dict[str, dict[str, int]] | None = None,
                 metrics: dict[str, dict[str, float]] | None = None):
        self.tool = tool
        self.tool_session_id = tool_session_id
        self.started_at = started_at
        self.ended_at = ended_at
        self.cwd = cwd
        self.project = project
        self.entrypoint = entrypoint
        self.tool_version = tool_version
        self.usage = usage or {}
        self.metrics = metrics or {}
