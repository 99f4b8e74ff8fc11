"""The loopback OTLP/HTTP receiver the child sends its telemetry to.

The socket is bound before the child starts (loopback.py); this module is imported and
served once the child is running. Only this run's child gets in: requests must carry the
per-run secret header and a loopback `Host`. A payload gets 200 only once `store` has
durably written it. Answers follow the OTLP/HTTP spec.
"""

from __future__ import annotations

import hmac
import json
import socket
import zlib
from collections.abc import Callable

from aitrack import http11
from aitrack.http11 import BadRequest, Request
from aitrack.loopback import SECRET_HEADER, Listener

MAX_BODY = 16 * 1024 * 1024  # after decompression
PATHS = {f"/v1/{s}": s for s in ("metrics", "logs", "traces")}
JSON, PROTOBUF = "application/json", "application/x-protobuf"
CONTENT_TYPES = (JSON, PROTOBUF)


class StoreUnavailable(Exception):
    """The payload could not be stored; the child should retry (503)."""


# store(signal, request message, raw body bytes) -> None; raises StoreUnavailable
Store = Callable[[str, object, bytes], None]


class Receiver:
    def __init__(self, listener: Listener, store: Store,
                 on_error: Callable[[Exception], None] | None = None):
        self.port = listener.port
        self.secret = listener.secret.encode()
        self.hosts = {f"127.0.0.1:{listener.port}", f"localhost:{listener.port}"}
        self.store = store
        self.on_error = on_error  # told of a payload that failed for a reason of aitrack's own
        self.server = http11.Server(socket.socket(fileno=listener.sock.detach()), self.handle)

    def start(self) -> Receiver:
        self.server.start()
        return self

    def stop(self, drain_s: float = 5.0) -> None:
        """Stop accepting, then wait (bounded) for requests being handled to finish."""
        self.server.stop(drain_s)

    def handle(self, req: Request) -> tuple[int, bytes, str, dict[str, str]]:
        ctype = req.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        reply = ctype if ctype in CONTENT_TYPES else JSON  # errors too, in the request's type
        if req.headers.get("host", "").lower() not in self.hosts:
            return _error(403, "forbidden host", reply)
        if not hmac.compare_digest(req.headers.get(SECRET_HEADER, "").encode(), self.secret):
            return _error(401, "missing or wrong aitrack session key", reply)
        signal = PATHS.get(req.path.split("?", 1)[0])
        if signal is None:
            return _error(404, "unknown path: use /v1/metrics, /v1/logs or /v1/traces", reply)
        if req.method != "POST":
            return _error(405, "only POST is supported", reply, {"Allow": "POST"})
        if ctype not in CONTENT_TYPES:
            return _error(415, f"unsupported content type {ctype!r}")
        encoding = req.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            return _error(415, f"unsupported content encoding {encoding!r}", ctype)
        try:
            return self._export(signal, req, ctype, encoding)
        except BadRequest as exc:  # framing, size and gzip errors
            return _error(exc.status, str(exc), ctype)

    def _export(self, signal: str, req: Request, ctype: str,
                encoding: str) -> tuple[int, bytes, str, dict[str, str]]:
        raw = req.read_body(MAX_BODY)
        if raw is None:
            return _error(413, "body over 16 MiB", ctype)
        body = _gunzip(raw) if encoding == "gzip" else raw
        from aitrack import otlp  # protobuf: loaded with the first payload, not at start-up

        try:
            request = otlp.decode(signal, body, ctype)
            self.store(signal, request, body)
        except otlp.MalformedPayload as exc:
            return _error(400, str(exc), ctype)
        except StoreUnavailable as exc:
            return _error(503, str(exc), ctype, {"Retry-After": "1"})
        except Exception as exc:  # noqa: BLE001 - a bug in aitrack costs one payload, not the run
            if self.on_error is not None:
                self.on_error(exc)
            return _error(500, f"aitrack could not record this payload ({type(exc).__name__})",
                          ctype)
        return 200, otlp.response(signal, ctype), ctype, {}


def _gunzip(raw: bytes) -> bytes:
    """Every gzip member of `raw`, decompressed; never more than MAX_BODY bytes of output."""
    parts, size = [], 0
    while True:
        inflater = zlib.decompressobj(wbits=31)
        try:
            part = inflater.decompress(raw, MAX_BODY + 1 - size)
        except zlib.error:
            raise BadRequest(400, "invalid gzip body") from None
        size += len(part)
        if size > MAX_BODY or inflater.unconsumed_tail:
            raise BadRequest(413, "body over 16 MiB after decompression")
        if not inflater.eof:  # a cut-off body must not be taken for a shorter payload
            raise BadRequest(400, "truncated gzip body")
        parts.append(part)
        raw = inflater.unused_data
        if not raw:
            return b"".join(parts)


def _error(status: int, message: str, ctype: str = JSON,
           headers: dict[str, str] | None = None) -> tuple[int, bytes, str, dict[str, str]]:
    """An OTLP error answer: a google.rpc.Status carrying `message`, in `ctype`."""
    body = json.dumps({"message": message}).encode() if ctype == JSON else _status_pb(message)
    return status, body, ctype, headers or {}


def _status_pb(message: str) -> bytes:
    """google.rpc.Status{message} encoded by hand (field 2, length-delimited): no extra import."""
    data = message.encode()
    n, length = len(data), bytearray()
    while n > 0x7F:
        length.append(n & 0x7F | 0x80)
        n >>= 7
    length.append(n)
    return b"\x12" + bytes(length) + data
