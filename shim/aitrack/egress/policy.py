"""What leaves the machine: the profile's egress policy, applied before anything is queued.

`[endpoint] forward` names the families sent: `raw` (the tools' own metrics, logs and traces,
as received, attributes enforced) and `normalized` (aitrack's own metric family, built from
the ledger: egress/normalized.py). `[endpoint] drop_attributes` names attributes never sent,
removed at every level (resource, scope, datapoint or log record or span, and exemplars,
span events and links) from both families before a payload is stored in the outbox: what is
on disk to send is what is sent. Names match however they are spelled (case, `.` `_` `-`,
invisible characters: config/attributes.attribute_key), as the enforced attributes do. The
ledger always reads the payload before anything is dropped.

`forward_imported` says whether sessions aitrack knows only from the tools' transcripts
(imported: no telemetry, no wrapper run) are sent in the normalised family too.
"""

from __future__ import annotations

from dataclasses import dataclass

from aitrack.config.attributes import attribute_key
from aitrack.config.schema import FAMILIES


@dataclass(frozen=True)
class Policy:
    forward: frozenset[str]  # the families that leave the machine
    drop: frozenset[str]  # attribute names never sent, as attribute_key spells them
    forward_imported: bool = False
    signals: tuple[str, ...] = ()  # endpoint.signals: what the forwarder sends at all

    @property
    def raw(self) -> bool:
        return "raw" in self.forward

    @property
    def normalized(self) -> bool:
        """aitrack's metrics are queued: the family is forwarded and metrics are sent."""
        return "normalized" in self.forward and "metrics" in self.signals

    def queues_raw(self, signal: str) -> bool:
        return self.raw and signal in self.signals

    def strip(self, request) -> None:
        """Remove the dropped attributes from an OTLP export request, at every level."""
        if not self.drop:
            return
        # protobuf (~20 ms) must not load with the policy, which every wrapped run reads:
        # a request to strip means it is loaded already
        from aitrack.egress import otlp

        # otlp's walkers: the same levels enforce() keeps the profile's attributes at
        for block in otlp._resource_blocks(request):
            otlp._drop(block.resource.attributes, self.drop)
            for scoped in otlp._scoped(block):
                otlp._drop(scoped.scope.attributes, self.drop)
                for item in otlp._items(scoped):
                    otlp._drop(item.attributes, self.drop)
                    for inner in otlp._inner(item):
                        otlp._drop(inner, self.drop)


# nothing leaves the machine (no endpoint)
LOCAL_ONLY = Policy(frozenset(), frozenset())
# what a caller that names no policy gets: both families, nothing dropped
FORWARD_ALL = Policy(frozenset(FAMILIES), frozenset(), signals=("metrics", "logs", "traces"))


def of(profile) -> Policy:
    """The profile's policy; LOCAL_ONLY without an endpoint."""
    endpoint = profile.endpoint
    if endpoint is None:
        return LOCAL_ONLY
    return Policy(frozenset(endpoint.forward),
                  frozenset(attribute_key(n) for n in endpoint.drop_attributes),
                  bool(endpoint.forward_imported), tuple(endpoint.signals))
