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

from aitrack.records import Point

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


class MalformedPayload(ValueError):
    """The body is not a valid OTLP export request for its signal and content type."""


def decode(signal: str, body: bytes, content_type: str) -> Message:
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
    return request


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


def enforce_resource(request: Message, attributes: dict[str, str]) -> None:
    """Write `attributes` into every resource, replacing what the child sent for those keys."""
    for block in _resource_blocks(request):
        kept = [kv for kv in block.resource.attributes if kv.key not in attributes]
        del block.resource.attributes[:]
        block.resource.attributes.extend(kept)
        block.resource.attributes.extend(
            KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()
        )


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


def attribute_sets(request: Message) -> Iterator[dict[str, str]]:
    """The attributes of every datapoint or log record (where tools put their session ids)."""
    if hasattr(request, "resource_logs"):
        for rl in request.resource_logs:
            for sl in rl.scope_logs:
                for record in sl.log_records:
                    yield {kv.key: _scalar(kv.value) for kv in record.attributes}
    else:
        for point in points(request):
            yield point.attrs


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
