"""OTLP test material: payload builders, a strict raw HTTP/1.1 client, and a sender child.

The raw client speaks to the receiver byte by byte, so a test sees exactly what a client
would: the status line, the headers, a body of exactly Content-Length bytes, or nothing.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

DELTA, CUMULATIVE = 1, 2
JSON, PROTOBUF = "application/json", "application/x-protobuf"


# ------------------------------------------------------------------ payloads (OTLP/JSON)

def attrs(**kv: object) -> list[dict]:
    """OTLP KeyValue list; keys may contain dots when given as a dict via **{...}."""
    out = []
    for k, v in kv.items():
        if isinstance(v, bool):
            out.append({"key": k, "value": {"boolValue": v}})
        elif isinstance(v, int):
            out.append({"key": k, "value": {"intValue": str(v)}})
        elif isinstance(v, float):
            out.append({"key": k, "value": {"doubleValue": v}})
        else:
            out.append({"key": k, "value": {"stringValue": str(v)}})
    return out


def point(value: float | int, start: int = 1_000, time: int = 2_000, **kv: object) -> dict:
    dp = {"attributes": attrs(**kv), "startTimeUnixNano": str(start), "timeUnixNano": str(time)}
    if isinstance(value, int):
        dp["asInt"] = str(value)
    else:
        dp["asDouble"] = value
    return dp


def hist_point(total: float, count: int = 1, start: int = 1_000, time: int = 2_000,
               **kv: object) -> dict:
    return {"attributes": attrs(**kv), "startTimeUnixNano": str(start),
            "timeUnixNano": str(time), "count": str(count), "sum": total}


def sum_metric(name: str, points: list[dict], temporality: int = DELTA) -> dict:
    return {"name": name, "sum": {"aggregationTemporality": temporality, "isMonotonic": True,
                                  "dataPoints": points}}


def histogram(name: str, points: list[dict], temporality: int = DELTA) -> dict:
    return {"name": name, "histogram": {"aggregationTemporality": temporality,
                                        "dataPoints": points}}


def metrics(*items: dict, resource: dict | None = None, scope: str = "test") -> dict:
    return {"resourceMetrics": [{"resource": {"attributes": attrs(**(resource or {}))},
                                 "scopeMetrics": [{"scope": {"name": scope},
                                                   "metrics": list(items)}]}]}


def logs(*records: dict, resource: dict | None = None) -> dict:
    return {"resourceLogs": [{"resource": {"attributes": attrs(**(resource or {}))},
                              "scopeLogs": [{"scope": {"name": "test"},
                                             "logRecords": list(records)}]}]}


def log_record(body: str, **kv: object) -> dict:
    return {"timeUnixNano": "3000", "severityNumber": 9, "body": {"stringValue": body},
            "attributes": attrs(**kv)}


def spans(trace_id: str = "5b8efff798038103d269b633813fc60c",
          span_id: str = "eee19b7ec3c1b174") -> dict:
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [{
        "traceId": trace_id, "spanId": span_id, "name": "turn", "kind": 1,
        "startTimeUnixNano": "1000", "endTimeUnixNano": "2000"}]}]}]}


def encode(signal: str, payload: dict, content_type: str) -> bytes:
    """The payload's bytes in a content type (protobuf through aitrack's own decoder)."""
    body = json.dumps(payload).encode()
    if content_type == JSON:
        return body
    from aitrack.egress import otlp

    return otlp.decode(signal, body, JSON).SerializeToString()


# ------------------------------------------------------------------ a strict raw HTTP client

@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = field(repr=False)


class Conn:
    """One TCP connection to the receiver; requests are written and answers read by hand."""

    def __init__(self, port: int, timeout: float = 30):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.buf = b""

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"",
                length: bool = True) -> Response | None:
        head = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
        if length:
            head.append(f"Content-Length: {len(body)}")
        self.send(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        return self.response()

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def response(self) -> Response | None:
        """The next answer, or None if the server closed without one. Asserts it is well formed."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                assert self.buf == b"", f"truncated response head: {self.buf[:200]!r}"
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        match = re.fullmatch(r"HTTP/1\.1 (\d{3}) [^\r\n]+", lines[0])
        assert match, f"malformed status line {lines[0]!r}"
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(": ")
            assert sep and name and name.strip() == name, f"malformed header {line!r}"
            headers[name.lower()] = value
        if 100 <= int(match.group(1)) < 200:  # interim: no body
            return Response(int(match.group(1)), headers, b"")
        length = int(headers["content-length"])
        while len(self.buf) < length:
            assert self._fill(), "connection closed inside the response body"
        body, self.buf = self.buf[:length], self.buf[length:]
        return Response(int(match.group(1)), headers, body)

    def closed_by_server(self) -> bool:
        """True when the server has closed the connection (EOF, nothing more to read)."""
        try:
            return self.buf == b"" and not self._fill()
        except ConnectionResetError:
            return True


def otlp_headers(port: int, secret: str, content_type: str = JSON, gzipped: bool = False,
                 **extra: str) -> dict[str, str]:
    headers = {"Host": f"127.0.0.1:{port}", "x-aitrack-key": secret,
               "Content-Type": content_type}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    headers.update(extra)
    return headers


def post(port: int, secret: str, path: str, body: bytes, content_type: str = JSON,
         gzipped: bool = False, **extra: str) -> Response:
    with Conn(port) as conn:
        answer = conn.request("POST", path, otlp_headers(port, secret, content_type, gzipped,
                                                         **extra),
                              gzip.compress(body) if gzipped else body)
    assert answer is not None, "the receiver closed the connection without an answer"
    return answer


# ------------------------------------------------------------------ a child that sends OTLP

SENDER = textwrap.dedent("""\
    #!{python}
    # A fake tool: posts the payloads listed in $OTLP_SEND to the receiver aitrack gave it
    # (claude/run: OTEL_EXPORTER_OTLP_*; codex: the -c otel.* overrides), then exits.
    import gzip, json, os, re, sys, urllib.request

    def codex_endpoints():
        out = {{}}
        for arg in sys.argv[1:]:
            m = re.match(r'otel\\.(metrics_exporter|exporter|trace_exporter)='
                         r'.*endpoint="([^"]+)".*headers=\\{{"([^"]+)"="([^"]+)"\\}}', arg)
            if m:
                out[m.group(2).rsplit("/", 1)[1]] = (m.group(2), m.group(3), m.group(4))
        return out

    def endpoint(signal):
        if "OTEL_EXPORTER_OTLP_ENDPOINT" in os.environ:
            key, value = os.environ["OTEL_EXPORTER_OTLP_HEADERS"].split("=", 1)
            return os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] + "/v1/" + signal, key, value
        return codex_endpoints()[signal]

    with open(os.environ["OTLP_SEND"]) as fh:
        plan = json.load(fh)
    for item in plan:
        url, key, value = endpoint(item["signal"])
        with open(item["file"], "rb") as fh:
            body = fh.read()
        headers = {{"Content-Type": item["content_type"], key: value}}
        if item.get("gzip"):
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        status = urllib.request.urlopen(urllib.request.Request(url, data=body,
                                                               headers=headers)).status
        if status != 200:
            sys.exit(f"receiver answered {{status}}")
    sys.exit(int(os.environ.get("EXIT_WITH", "0")))
    """)


def sender(directory: Path) -> Path:
    """An executable fake tool (also usable as claude/codex) that sends a plan of payloads."""
    path = directory / "otlp-sender"
    path.write_text(SENDER.format(python=sys.executable))
    path.chmod(0o755)
    return path


def plan(directory: Path, items: list[tuple], content_type: str = JSON,
         gzipped: bool = False) -> Path:
    """Write payloads and the plan the sender reads. An item is (signal, JSON dict or raw
    bytes), optionally with a third element, a dict overriding "gzip" for that item."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for n, (signal, payload, *options) in enumerate(items):
        body = payload if isinstance(payload, bytes) else encode(signal, payload, content_type)
        path = directory / f"{n:03d}-{signal}.bin"
        path.write_bytes(body)
        entries.append({"signal": signal, "file": str(path), "content_type": content_type,
                        "gzip": gzipped, **(options[0] if options else {})})
    out = directory / "plan.json"
    out.write_text(json.dumps(entries))
    return out
