"""The loopback OTLP/HTTP receiver the child sends its telemetry to.

The socket is bound before the child starts (cheap); the HTTP machinery is imported and
served after the child is running. Only this run's child gets in: requests must carry the
per-run secret header and a loopback `Host`. A payload gets 200 only once `store` has
durably written it.
"""

from __future__ import annotations

import hmac
import socket
import threading
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aitrack.loopback import SECRET_HEADER, Listener

MAX_BODY = 16 * 1024 * 1024  # after decompression
PATHS = {f"/v1/{s}": s for s in ("metrics", "logs", "traces")}
JSON, PROTOBUF = "application/json", "application/x-protobuf"
CONTENT_TYPES = (JSON, PROTOBUF)


class StoreUnavailable(Exception):
    """The payload could not be stored; the child should retry (503)."""


# store(signal, request message, raw body bytes) -> None; raises StoreUnavailable
Store = Callable[[str, object, bytes], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, listener: Listener, store: Store):
        super().__init__(("127.0.0.1", listener.port), _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = socket.socket(fileno=listener.sock.detach())
        self.listener = listener
        self.store = store
        self.hosts = {f"127.0.0.1:{listener.port}", f"localhost:{listener.port}"}
        self.inflight = 0
        self.idle = threading.Condition()

    def handle_error(self, request, client_address) -> None:
        pass  # a broken client connection is the client's problem; never print tracebacks


class Receiver:
    def __init__(self, listener: Listener, store: Store):
        self.server = _Server(listener, store)
        self.thread = threading.Thread(target=self.server.serve_forever, name="aitrack-receiver",
                                       kwargs={"poll_interval": 0.5}, daemon=True)

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self, drain_s: float = 5.0) -> None:
        """Stop accepting, then wait (bounded) for requests being handled to finish."""
        stopper = threading.Thread(target=self.server.shutdown, daemon=True)
        stopper.start()
        while stopper.is_alive():
            self._wake()
            stopper.join(0.01)
        with self.server.idle:
            self.server.idle.wait_for(lambda: self.server.inflight == 0, timeout=drain_s)
        self.server.server_close()


    def _wake(self) -> None:
        """Connect once, so the serving loop returns from select() without waiting a poll."""
        try:
            socket.create_connection(("127.0.0.1", self.server.listener.port), 0.2).close()
        except OSError:
            pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format, *args) -> None:  # noqa: A002 - stdlib signature
        pass  # the terminal belongs to the child

    def do_POST(self) -> None:
        with self.server.idle:
            self.server.inflight += 1
        try:
            self._post()
        finally:
            with self.server.idle:
                self.server.inflight -= 1
                self.server.idle.notify_all()

    def _post(self) -> None:
        if not self._admitted():
            return
        signal = PATHS.get(self.path.split("?", 1)[0])
        if signal is None:
            return self._fail(404, "unknown path: use /v1/metrics, /v1/logs or /v1/traces")
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype not in CONTENT_TYPES:
            return self._fail(415, f"unsupported content type {ctype!r}")
        body = self._body()
        if body is None:
            return
        from aitrack import otlp  # protobuf: loaded with the first payload, not at start-up

        try:
            request = otlp.decode(signal, body, ctype)
            self.server.store(signal, request, body)
        except otlp.MalformedPayload as exc:
            return self._fail(400, str(exc), ctype)
        except StoreUnavailable as exc:
            return self._fail(503, str(exc), ctype, {"Retry-After": "1"})
        self._reply(200, otlp.response(signal, ctype), ctype)

    def _admitted(self) -> bool:
        if (self.headers.get("Host") or "").lower() not in self.server.hosts:
            self._fail(403, "forbidden host")
            return False
        given = (self.headers.get(SECRET_HEADER) or "").encode()
        if not hmac.compare_digest(given, self.server.listener.secret.encode()):
            self._fail(401, "missing or wrong aitrack session key")
            return False
        return True

    def _body(self) -> bytes | None:
        """The decompressed body, or None after answering 4xx."""
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            raw = self._read_chunked()
        else:
            try:
                length = int(self.headers.get("Content-Length") or "")
            except ValueError:
                self._fail(411, "Content-Length required")
                return None
            if length < 0 or length > MAX_BODY:
                self._fail(413, "body over 16 MiB")
                return None
            raw = self.rfile.read(length)
        if raw is None:
            self._fail(413, "body over 16 MiB")
            return None
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding == "identity":
            return raw
        if encoding != "gzip":
            self._fail(415, f"unsupported content encoding {encoding!r}")
            return None
        try:
            inflater = zlib.decompressobj(wbits=31)
            body = inflater.decompress(raw, MAX_BODY + 1)
        except zlib.error:
            self._fail(400, "invalid gzip body")
            return None
        if len(body) > MAX_BODY or inflater.unconsumed_tail:
            self._fail(413, "body over 16 MiB after decompression")
            return None
        return body

    def _read_chunked(self) -> bytes | None:
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                return b"\x00invalid"  # rejected by the decoder as malformed
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                self.close_connection = True
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _fail(self, status: int, message: str, ctype: str = JSON,
              headers: dict[str, str] | None = None) -> None:
        if status not in (400, 503):
            self.close_connection = True  # the body may not have been read
        import json

        body = json.dumps({"message": message}).encode() if ctype == JSON else b""
        self._reply(status, body, ctype, headers)

    def _reply(self, status: int, body: bytes, ctype: str,
               headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _method_not_allowed(self) -> None:
        if not self._admitted():
            return
        if self.path.split("?", 1)[0] not in PATHS:
            return self._fail(404, "unknown path")
        self._fail(405, "only POST is supported")

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _method_not_allowed
