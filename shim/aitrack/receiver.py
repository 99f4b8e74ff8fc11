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
    def __init__(self, listener: Listener, store: Store):
        self.port = listener.port
        self.secret = listener.secret.encode()
        self.hosts = {f"127.0.0.1:{listener.port}", f"localhost:{listener.port}"}
        self.store = store
        self.server = http11.Server(socket.socket(fileno=listener.sock.detach()), self.handle)

    def start(self) -> Receiver:
        self.server.start()
        return self

    def stop(self, drain_s: float = 5.0) -> None:
        """Stop accepting, then wait (bounded) for requests being handled to finish."""
        self.server.stop(drain_s)

    def handle(self, req: Request) -> tuple[int, bytes, str, dict[str, str]]:
        if req.headers.get("host", "").lower() not in self.hosts:
            return _error(403, "forbidden host")
        if not hmac.compare_digest(req.headers.get(SECRET_HEADER, "").encode(), self.secret):
            return _error(401, "missing or wrong aitrack session key")
        signal = PATHS.get(req.path.split("?", 1)[0])
        if signal is None:
            return _error(404, "unknown path: use /v1/metrics, /v1/logs or /v1/traces")
        if req.method != "POST":
            return _error(405, "only POST is supported", headers={"Allow": "POST"})
        ctype = req.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype not in CONTENT_TYPES:
            return _error(415, f"unsupported content type {ctype!r}")
        encoding = req.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            return _error(415, f"unsupported content encoding {encoding!r}")
        raw = req.read_body(MAX_BODY)
        if raw is None:
            return _error(413, "body over 16 MiB")
        body = _gunzip(raw) if encoding == "gzip" else raw
        from aitrack import otlp  # protobuf: loaded with the first payload, not at start-up

        try:
            request = otlp.decode(signal, body, ctype)
            self.store(signal, request, body)
        except otlp.MalformedPayload as exc:
            return _error(400, str(exc), ctype)
        except StoreUnavailable as exc:
            return _error(503, str(exc), ctype, {"Retry-After": "1"})
        return 200, otlp.response(signal, ctype), ctype, {}


def _gunzip(raw: bytes) -> bytes:
    try:
        inflater = zlib.decompressobj(wbits=31)
        body = inflater.decompress(raw, MAX_BODY + 1)
    except zlib.error:
        raise BadRequest(400, "invalid gzip body") from None
    if len(body) > MAX_BODY or inflater.unconsumed_tail:
        raise BadRequest(413, "body over 16 MiB after decompression")
    return body


def _error(status: int, message: str, ctype: str = JSON,
           headers: dict[str, str] | None = None) -> tuple[int, bytes, str, dict[str, str]]:
    body = json.dumps({"message": message}).encode() if ctype == JSON else b""
    return status, body, ctype, headers or {}
