"""A small HTTP/1.1 server for the loopback receiver: one thread per connection, keep-alive.

Why not http.server: importing it (http.client, email, mimetypes...) costs ~45 ms, paid by
every wrapped run before its session can be recorded. OTLP/HTTP clients need little:
request line, headers, a Content-Length or chunked body, a response with Content-Length.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

MAX_LINE = 65536
MAX_HEADERS = 100
IDLE_TIMEOUT_S = 60.0
LINGER_S = 2.0
REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           503: "Service Unavailable", 505: "HTTP Version Not Supported"}


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Request:
    __slots__ = ("method", "path", "version", "headers", "rfile", "wfile", "body_read")

    def __init__(self, method: str, path: str, version: str, headers: dict[str, str],
                 rfile, wfile):
        self.method = method
        self.path = path
        self.version = version
        self.headers = headers  # lower-case names
        self.rfile = rfile
        self.wfile = wfile
        self.body_read = False

    def read_body(self, limit: int) -> bytes | None:
        """The raw body; None if it is longer than `limit` (the connection is then closed)."""
        chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        length = 0 if chunked else _content_length(self.headers.get("content-length", ""))
        if length > limit:
            return None  # before any 100 Continue: the client need not send it at all
        if self.headers.get("expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if chunked:
            body = self._read_chunked(limit)
        else:
            body = self.rfile.read(length)
            if len(body) < length:  # the client stopped sending: answer it, then close
                raise BadRequest(400, "body shorter than its Content-Length")
        self.body_read = body is not None
        return body

    def _read_chunked(self, limit: int) -> bytes | None:
        parts, total = [], 0
        while True:
            line = self.rfile.readline(MAX_LINE).split(b";", 1)[0].strip()
            if not line or any(c not in _HEX_DIGITS for c in line):  # int() takes "-1", "0x1"
                raise BadRequest(400, "invalid chunked encoding")
            size = int(line, 16)
            if size == 0:
                return self._skip_trailers(parts)
            total += size
            if total > limit:
                return None
            part = self.rfile.read(size)
            if len(part) < size or self.rfile.readline(MAX_LINE) not in (b"\r\n", b"\n"):
                raise BadRequest(400, "invalid chunked encoding")
            parts.append(part)

    def _skip_trailers(self, parts: list[bytes]) -> bytes:
        for _ in range(MAX_HEADERS + 1):
            if self.rfile.readline(MAX_LINE) in (b"\r\n", b"\n", b""):
                return b"".join(parts)
        raise BadRequest(431, "too many trailers")


_HEX_DIGITS = b"0123456789abcdefABCDEF"


def _content_length(value: str) -> int:
    if not value:
        raise BadRequest(411, "Content-Length required")
    if not (value.isascii() and value.isdigit()):  # int() would take "+1", "1_0"
        raise BadRequest(400, "invalid Content-Length")
    return int(value)


# handle(request) -> (status, body, content type, extra headers)
Handler = Callable[[Request], tuple[int, bytes, str, dict[str, str]]]


class Server:
    """Serves `handle` on an already listening socket until `stop`."""

    def __init__(self, sock: socket.socket, handle: Handler):
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.handle = handle
        self.closing = False
        self.inflight = 0
        self.idle = threading.Condition()
        self.thread = threading.Thread(target=self._accept_loop, name="aitrack-receiver",
                                       daemon=True)

    def start(self) -> Server:
        self.thread.start()
        return self

    def stop(self, drain_s: float) -> None:
        """Stop accepting, then wait (bounded) for requests being handled to finish."""
        self.closing = True
        try:  # wake accept() with a connection of our own
            socket.create_connection(("127.0.0.1", self.port), 1).close()
        except OSError:
            pass
        self.thread.join(1)
        with self.idle:
            self.idle.wait_for(lambda: self.inflight == 0, timeout=drain_s)
        self.sock.close()

    def _accept_loop(self) -> None:
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                if self.closing:
                    return
                continue
            if self.closing:
                conn.close()
                return
            try:
                threading.Thread(target=self._connection, args=(conn,), daemon=True).start()
            except RuntimeError:  # no thread to spare: drop this connection, keep serving
                conn.close()

    def _connection(self, conn: socket.socket) -> None:
        conn.settimeout(IDLE_TIMEOUT_S)
        rfile, wfile = conn.makefile("rb"), conn.makefile("wb", buffering=0)
        try:
            while not self._one_request(rfile, wfile):
                pass
        except (OSError, ConnectionError):
            pass  # the client went away: its problem, never a traceback on the terminal
        finally:
            for f in (rfile, wfile):
                f.close()
            _linger(conn)
            conn.close()

    def _one_request(self, rfile, wfile) -> bool:
        """Serve one request; True when the connection should be closed."""
        line = rfile.readline(MAX_LINE + 1)
        if not line:
            return True
        with self.idle:
            self.inflight += 1
        try:
            try:
                request = _parse_head(line, rfile, wfile)
            except BadRequest as exc:
                _respond(wfile, exc.status, str(exc).encode(), "text/plain", {}, close=True)
                return True
            try:
                status, body, ctype, headers = self.handle(request)
            except BadRequest as exc:
                status, body, ctype, headers = exc.status, str(exc).encode(), "text/plain", {}
            except Exception:  # noqa: BLE001 - a bug costs this request, never the server
                request.body_read = False  # its body may be half read: close the connection
                status, body, ctype, headers = 500, b"internal error", "text/plain", {}
            close = (not request.body_read or request.version == "HTTP/1.0"
                     or request.headers.get("connection", "").lower() == "close")
            _respond(wfile, status, body, ctype, headers, close)
            return close
        finally:
            with self.idle:
                self.inflight -= 1
                self.idle.notify_all()


def _linger(conn: socket.socket) -> None:
    """Read what the client still sends before closing: closing with unread data makes the
    kernel reset the connection, and a client still writing a body it was refused (401, 413)
    would see "connection reset" and retry instead of reading its answer."""
    try:
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(LINGER_S)
        deadline = time.monotonic() + LINGER_S
        while conn.recv(65536) and time.monotonic() < deadline:
            pass
    except OSError:
        pass


def _parse_head(line: bytes, rfile, wfile) -> Request:
    if len(line) > MAX_LINE:
        raise BadRequest(400, "request line too long")
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise BadRequest(400, "malformed request line")
    method, path, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest(505, "only HTTP/1.x is supported")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        raw = rfile.readline(MAX_LINE + 1)
        if raw in (b"\r\n", b"\n", b""):
            return Request(method, path, version, headers, rfile, wfile)
        if len(raw) > MAX_LINE:
            raise BadRequest(431, "header line too long")
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep or not name.strip() or name != name.strip():
            raise BadRequest(400, "malformed header")
        headers[name.lower()] = value.strip()
    raise BadRequest(431, "too many headers")


def _respond(wfile, status: int, body: bytes, ctype: str, headers: dict[str, str],
             close: bool) -> None:
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
            f"Content-Type: {ctype}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    if close:
        head.append("Connection: close")
    wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
