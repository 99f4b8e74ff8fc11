"""OTLP payloads: decode what a child sends, enforce resource attributes, encode for the org.

Everything is held as opentelemetry-proto messages; the outbox stores their protobuf bytes.
OTLP/JSON differs from protobuf's canonical JSON in two ways handled here: trace and span
ids are hex (not base64) and enums are integers.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterator
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.proto.metrics.v1.metrics_pb2 import ScopeMetrics as _ScopeMetrics
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans as _ScopeSpans

from aitrack.config.attributes import RESERVED_PREFIX, attribute_key
from aitrack.domain.records import Point

SIGNALS = ("metrics", "logs", "traces")
JSON = "application/json"
PROTOBUF = "application/x-protobuf"

_REQUEST = {
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
    "traces": trace_service_pb2.ExportTraceServiceRequest,
}
_RESPONSE = {
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
    "traces": trace_service_pb2.ExportTraceServiceResponse,
}
_ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}
_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_MAX_COUNT = 2.0**53  # floats stop being whole numbers there; the ledger sums integers

# The work one payload may cost, well under 100 MB and a second whatever its shape. A tool's
# export holds at most a few thousand records or datapoints with tens of attributes each.
MAX_JSON_OBJECTS = 100_000  # `{` in a JSON body: ~450 bytes of Python each once parsed
MAX_MESSAGES = 250_000  # protobuf submessages: up to ~56 bytes each once parsed
SCAN_ABOVE = 512 * 1024  # smaller protobuf bodies cannot hold enough to matter
MAX_ITEMS = 20_000  # datapoints, log records, spans, span events and links


class MalformedPayload(ValueError):
    """The body is not a valid OTLP export request for its signal and content type."""


class TooMuchWork(MalformedPayload):
    """A payload within the size bound that would still cost too much memory or time to
    decode (a receiver may answer 413 instead of 400)."""


def bound(signal: str, body: bytes, content_type: str) -> None:
    """Refuse, before anything is built from it, a body that would cost too much to decode:
    counted without parsing (JSON) or with a shallow scan (large protobuf)."""
    if content_type != PROTOBUF:
        objects = body.count(b"{")
        if objects > MAX_JSON_OBJECTS:
            raise TooMuchWork(f"payload too complex: {objects} JSON objects, at most "
                              f"{MAX_JSON_OBJECTS} per export; send smaller batches")
    elif len(body) > SCAN_ABOVE:
        messages = _count_messages(body, _REQUEST[signal].DESCRIPTOR, MAX_MESSAGES)
        if messages > MAX_MESSAGES:
            raise TooMuchWork(f"payload too complex: over {MAX_MESSAGES} protobuf messages "
                              "per export; send smaller batches")


def decode(signal: str, body: bytes, content_type: str) -> Message:
    bound(signal, body, content_type)
    request = _REQUEST[signal]()
    try:
        if content_type == PROTOBUF:
            request.ParseFromString(body)
        else:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise MalformedPayload("the JSON body must be an object")
            json_format.ParseDict(_ids(data, _hex_to_b64), request, ignore_unknown_fields=True)
    except MalformedPayload:
        raise
    except (DecodeError, json_format.ParseError, ValueError, TypeError, RecursionError,
            AttributeError, KeyError) as exc:
        raise MalformedPayload(f"invalid OTLP {signal} payload: {_short(exc)}") from None
    items = _count_items(request)
    if items > MAX_ITEMS:
        raise TooMuchWork(f"payload too large: {items} datapoints, log records and spans, at "
                          f"most {MAX_ITEMS} per export; send smaller batches")
    return request


def _count_items(request: Message) -> int:
    """Datapoints, log records, spans and span events/links: counted by container, cheaply."""
    n = 0
    for block in _resource_blocks(request):
        for scoped in _scoped(block):
            if isinstance(scoped, _ScopeMetrics):
                for metric in scoped.metrics:
                    kind = metric.WhichOneof("data")
                    n += len(getattr(metric, kind).data_points) if kind else 0
            elif isinstance(scoped, _ScopeSpans):
                n += len(scoped.spans) + sum(len(s.events) + len(s.links) for s in scoped.spans)
            else:
                n += len(scoped.log_records)
            if n > MAX_ITEMS:
                return n
    return n


_SUBMESSAGES: dict = {}


def _submessages(descriptor) -> dict:
    """Field number -> message descriptor, for the message-typed fields of `descriptor`."""
    if descriptor not in _SUBMESSAGES:
        _SUBMESSAGES[descriptor] = {f.number: f.message_type for f in descriptor.fields
                                    if f.message_type is not None}
    return _SUBMESSAGES[descriptor]


def _count_messages(body: bytes, descriptor, limit: int) -> int:
    """How many submessages a serialized message holds, read from the wire format without
    building any of them (iterative: no recursion); stops once past `limit`. A malformed
    body is left for the parser to name."""
    count, stack = 0, [(0, len(body), descriptor)]
    while stack:
        pos, end, desc = stack.pop()
        sub = _submessages(desc)
        try:
            while pos < end:
                tag, pos = _varint(body, pos)
                wire = tag & 7
                if wire == 0:
                    _, pos = _varint(body, pos)
                elif wire == 1:
                    pos += 8
                elif wire == 5:
                    pos += 4
                elif wire == 2:
                    size, pos = _varint(body, pos)
                    child = sub.get(tag >> 3)
                    if child is not None:
                        count += 1
                        if count > limit:
                            return count
                        stack.append((pos, min(pos + size, end), child))
                    pos += size
                else:
                    break
        except IndexError:
            continue
    return count


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    value, shift = byte & 0x7F, 7
    while True:
        pos += 1
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        if byte < 0x80 or shift > 63:
            return value, pos + 1
        shift += 7


def encode(signal: str, body: bytes, protocol: str) -> tuple[bytes, str]:
    """Stored protobuf bytes in the wire format a profile asks for, with its content type."""
    if protocol == "http/protobuf":
        return body, PROTOBUF
    request = _REQUEST[signal]()
    request.ParseFromString(body)
    return to_json(request), JSON


def to_json(message: Message) -> bytes:
    data = json_format.MessageToDict(message, use_integers_for_enums=True)
    return json.dumps(_ids(data, _b64_to_hex), separators=(",", ":")).encode()


def response(signal: str, content_type: str) -> bytes:
    """An empty (fully successful) export response in the request's content type."""
    empty = _RESPONSE[signal]()
    return b"{}" if content_type == JSON else empty.SerializeToString()


def enforce(request: Message, attributes: dict[str, str]) -> None:
    """The enforced `attributes` hold at every level a backend may read them.

    Keys match however they are spelled (`attribute_key`: `User.Id`, `user_id` and
    `user.id` + U+200B are `user.id`), and `aitrack.*` keys are aitrack's alone: a client's
    are dropped. Every resource carries exactly these values; scopes, datapoints (and their
    exemplars), log records, spans, span events and span links lose any colliding key rather
    than gaining one, so no level below the resource can contradict it.
    """
    keys = frozenset(attribute_key(k) for k in attributes)
    for block in _resource_blocks(request):
        _drop(block.resource.attributes, keys, always=True, reserved_too=True)
        block.resource.attributes.extend(
            KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()
        )
        for scoped in _scoped(block):
            _drop(scoped.scope.attributes, keys, reserved_too=True)
            for item in _items(scoped):
                _drop(item.attributes, keys, reserved_too=True)
                for inner in _inner(item):
                    _drop(inner, keys, reserved_too=True)


enforce_resource = enforce  # the name the receiver path has always called


def _drop(kvs, keys: frozenset[str], always: bool = False, reserved_too: bool = False) -> None:
    """Remove the KeyValues whose key is one of `keys` (as attribute_key spells them), and
    with `reserved_too` those only aitrack may set; rewriting only when needed."""
    def gone(kv) -> bool:
        key = attribute_key(kv.key)
        return key in keys or (reserved_too and key.startswith(RESERVED_PREFIX))

    if always or any(gone(kv) for kv in kvs):
        kept = [kv for kv in kvs if not gone(kv)]
        del kvs[:]
        kvs.extend(kept)


def _scoped(block) -> list:
    for field in ("scope_metrics", "scope_logs", "scope_spans"):
        if block.DESCRIPTOR.fields_by_name.get(field):
            return getattr(block, field)
    return []


def _items(scoped) -> Iterator:
    """What carries attributes inside a scope: datapoints, log records or spans."""
    if isinstance(scoped, _ScopeMetrics):
        for metric in scoped.metrics:
            kind = metric.WhichOneof("data")
            if kind:
                yield from getattr(metric, kind).data_points
    elif isinstance(scoped, _ScopeSpans):
        yield from scoped.spans
    else:
        yield from scoped.log_records


def _inner(item) -> Iterator:
    """Attribute lists nested in an item: a span's events and links, a datapoint's exemplars."""
    fields = item.DESCRIPTOR.fields_by_name
    if "events" in fields:
        yield from (event.attributes for event in item.events)
        yield from (link.attributes for link in item.links)
    if "exemplars" in fields:
        yield from (exemplar.filtered_attributes for exemplar in item.exemplars)


def resource_value(request: Message, key: str) -> str | None:
    for block in _resource_blocks(request):
        for kv in block.resource.attributes:
            if kv.key == key:
                return _scalar(kv.value)
    return None


def points(request: Message) -> Iterator[Point]:
    """Every sum/gauge/histogram datapoint of a metrics request, as the ledger sees it."""
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                yield from _metric_points(metric)


def log_records(request: Message) -> Iterator[tuple[dict[str, str], int]]:
    """Every log record of a logs request: its attributes and its time (unix ns, 0 if none)."""
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                yield ({kv.key: _scalar(kv.value) for kv in record.attributes},
                       record.time_unix_nano or record.observed_time_unix_nano)


def spans(request: Message) -> Iterator[tuple[dict[str, str], int]]:
    """Every span of a traces request: its attributes and its start (unix ns, 0 if none)."""
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                yield ({kv.key: _scalar(kv.value) for kv in span.attributes},
                       span.start_time_unix_nano)


def resource_attributes(request: Message) -> dict[str, str]:
    """The first resource's attributes (a tool's export has one resource)."""
    for block in _resource_blocks(request):
        return {kv.key: _scalar(kv.value) for kv in block.resource.attributes}
    return {}


def _metric_points(metric) -> Iterator[Point]:
    kind = metric.WhichOneof("data")
    if kind in ("sum", "gauge"):
        data = getattr(metric, kind)
        cumulative = kind == "sum" and data.aggregation_temporality == _CUMULATIVE
        values = ((dp, dp.as_int if dp.WhichOneof("value") == "as_int" else dp.as_double)
                  for dp in data.data_points)
    elif kind in ("histogram", "exponential_histogram"):
        data = getattr(metric, kind)
        cumulative = data.aggregation_temporality == _CUMULATIVE
        values = ((dp, dp.sum) for dp in data.data_points)
    else:
        return
    for dp, value in values:
        if math.isfinite(value) and abs(value) < _MAX_COUNT:  # NaN, inf, 1e300: not a count
            yield _point(metric.name, dp, float(value), cumulative)


def _point(name: str, dp, value: float, cumulative: bool) -> Point:
    attrs = {kv.key: _scalar(kv.value) for kv in dp.attributes}
    series = name + "\x1f" + "\x1f".join(f"{k}={v}" for k, v in sorted(attrs.items()))
    return Point(name, attrs, value, cumulative, dp.start_time_unix_nano, series)


def _resource_blocks(request: Message):
    for field in ("resource_metrics", "resource_logs", "resource_spans"):
        if request.DESCRIPTOR.fields_by_name.get(field):
            yield from getattr(request, field)


def _scalar(value: AnyValue) -> str:
    which = value.WhichOneof("value")
    if which is None:
        return ""
    v = getattr(value, which)
    if which in ("string_value", "int_value", "double_value"):
        return str(v)
    if which == "bool_value":
        return "true" if v else "false"
    return json_format.MessageToJson(value, indent=None)


def _ids(node: Any, convert) -> Any:
    if isinstance(node, dict):
        return {k: convert(v) if k in _ID_KEYS and isinstance(v, str) else _ids(v, convert)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_ids(v, convert) for v in node]
    return node


def _hex_to_b64(value: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError:
        raise MalformedPayload(f"trace/span id is not hex: {value[:40]!r}") from None


def _b64_to_hex(value: str) -> str:
    try:
        return base64.b64decode(value).hex()
    except binascii.Error:
        return value


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."
