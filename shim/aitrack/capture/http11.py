"""A small HTTP/1.1 server for the loopback receiver: one thread per connection, keep-alive.

Why not http.server: importing it (http.client, email, mimetypes...) costs ~45 ms, paid by
every wrapped run before its session can be recorded. OTLP/HTTP clients need little:
request line, headers, a Content-Length or chunked body, a response with Content-Length.

Any local user can connect to a loopback port, so connections are bounded and the tool's
own requests stay served while someone else floods it:
- a connection from a socket that is not this user's is closed at accept (listener.py:
  Linux, and untested, macOS and Windows); an orphaned socket (its sender closed it right
  after sending) is no one's;
- a connection that has not yet been answered anything but 401/403 (the handler checks
  credentials first) is *pending*: it must send its request head within HEAD_TIMEOUT_S,
  and when MAX_PENDING are open (MAX_PENDING_PER_PEER from one peer) the oldest goes,
  preferring one that has sent nothing;
- a connection whose request was authenticated is *trusted* and kept alive up to
  IDLE_TIMEOUT_S between requests; beyond MAX_TRUSTED of them, new ones are answered and
  closed instead of kept alive (a per-user agent serves several tools at once);
- at most MAX_BODIES requests hold a body (read, decompressed, decoded) at once, and each
  must have sent it whole within BODY_TIMEOUT_S of starting it (the reaper cuts it then: a
  body trickled a byte at a time cannot hold a slot).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from aitrack.capture import listener

MAX_LINE = 65536
MAX_HEADERS = 100
MAX_LENGTH_DIGITS = 18  # a Content-Length beyond this is no body anyone sends (and int()
# refuses 4,300 digits and more)
HEAD_TIMEOUT_S = 5.0  # from accept, for a pending connection's request head
IDLE_TIMEOUT_S = 60.0  # a trusted connection between requests
MAX_PENDING = 32
MAX_PENDING_PER_PEER = 16
MAX_TRUSTED = 64
MAX_BODIES = 2
BODY_WAIT_S = 30.0
BODY_TIMEOUT_S = 10.0  # a 16 MiB body over loopback takes milliseconds
REAP_EVERY_S = 0.25
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
    __slots__ = ("method", "path", "version", "headers", "rfile", "wfile", "body_read",
                 "bodies", "holds_body", "connection")

    def __init__(self, method: str, path: str, version: str, headers: dict[str, str],
                 rfile, wfile, bodies: threading.Semaphore | None = None,
                 connection: _Connection | None = None):
        self.method = method
        self.path = path
        self.version = version
        self.headers = headers  # lower-case names
        self.rfile = rfile
        self.wfile = wfile
        self.body_read = False
        self.bodies = bodies  # the server's bound on bodies held at once
        self.holds_body = False
        self.connection = connection  # its deadline bounds reading the body

    def read_body(self, limit: int) -> bytes | None:
        """The raw body; None if it is longer than `limit` (the connection is then closed).

        Waits for one of the server's MAX_BODIES slots first (held until the answer):
        BadRequest(503) if none frees up within BODY_WAIT_S."""
        chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        length = 0 if chunked else _content_length(self.headers.get("content-length", ""))
        if length > limit:
            return None  # before any 100 Continue: the client need not send it at all
        if self.bodies is not None and not self.holds_body:
            if not self.bodies.acquire(timeout=BODY_WAIT_S):
                raise BadRequest(503, "busy receiving other payloads: retry")
            self.holds_body = True
        if self.headers.get("expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self.connection is not None:  # the reaper cuts it past this (see the docstring)
            self.connection.deadline = time.monotonic() + BODY_TIMEOUT_S
        try:
            if chunked:
                body = self._read_chunked(limit)
            else:
                body = self.rfile.read(length)
                if len(body) < length:  # the client stopped sending: answer it, then close
                    raise BadRequest(400, "body shorter than its Content-Length")
        finally:
            if self.connection is not None:
                self.connection.deadline = None
        self.body_read = body is not None
        return body

    def _read_chunked(self, limit: int) -> bytes | None:
        parts, total = [], 0
        while True:
            line = self.rfile.readline(MAX_LINE).split(b";", 1)[0].strip()
            if not line or len(line) > 16 or any(c not in _HEX_DIGITS for c in line):
                raise BadRequest(400, "invalid chunked encoding")  # int() takes "-1", "0x1"
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
    if len(value) > MAX_LENGTH_DIGITS:
        raise BadRequest(400, "invalid Content-Length (too many digits)")
    return int(value)


# handle(request) -> (status, body, content type, extra headers)
Handler = Callable[[Request], tuple[int, bytes, str, dict[str, str]]]


class _Connection:
    """One accepted connection, as the bounds see it."""

    __slots__ = ("sock", "peer", "opened", "deadline", "started", "trusted", "busy")

    def __init__(self, sock: socket.socket, peer) -> None:
        self.sock = sock
        self.peer = peer  # who the per-peer bound counts it against: a uid, else an address
        self.opened = time.monotonic()
        self.deadline: float | None = self.opened + HEAD_TIMEOUT_S
        self.started = False  # a byte of a request has arrived
        self.trusted = False
        self.busy = False  # a request is being handled

    def cut(self) -> None:
        """End it from another thread: its own thread sees EOF and closes it."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Server:
    """Serves `handle` on an already listening socket until `stop`."""

    def __init__(self, sock: socket.socket, handle: Handler):
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.handle = handle
        self.closing = False
        self.inflight = 0
        self.idle = threading.Condition()
        self.lock = threading.Lock()
        self.pending: dict[_Connection, None] = {}  # oldest first
        self.trusted: set[_Connection] = set()
        self.bodies = threading.BoundedSemaphore(MAX_BODIES)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept_loop, name="aitrack-receiver",
                                       daemon=True)
        self.reaper = threading.Thread(target=self._reap_loop, name="aitrack-receiver-reaper",
                                       daemon=True)

    def start(self) -> Server:
        self.thread.start()
        self.reaper.start()
        return self

    def stop(self, drain_s: float) -> None:
        """Stop accepting, then wait (bounded) for requests being handled to finish."""
        self.closing = True
        self.stopped.set()
        try:  # wake accept() with a connection of our own
            socket.create_connection(("127.0.0.1", self.port), 1).close()
        except OSError:
            pass
        self.thread.join(1)
        with self.idle:
            self.idle.wait_for(lambda: self.inflight == 0, timeout=drain_s)
        self.sock.close()

    def connections(self) -> tuple[int, int]:
        """(pending, trusted) connections open now."""
        with self.lock:
            return len(self.pending), len(self.trusted)

    def _accept_loop(self) -> None:
        while not self.closing:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                if self.closing:
                    return
                time.sleep(0.01)  # out of file descriptors, say: let connections end
                continue
            if self.closing:
                conn.close()
                return
            peer = self._peer(conn, addr)
            if peer is None:
                conn.close()  # another user's socket: nothing to say to it
                continue
            connection = _Connection(conn, peer)
            self._admit(connection)
            try:
                threading.Thread(target=self._connection, args=(connection,),
                                 daemon=True).start()
            except RuntimeError:  # no thread to spare: drop this connection, keep serving
                self._forget(connection)
                conn.close()

    def _peer(self, conn: socket.socket, addr):
        """Who a connection counts against, or None to refuse it (not this user's socket).
        Where the OS cannot say, every connection is bounded by its address instead."""
        try:
            mine = listener.peer_is_mine(conn.getsockname()[:2], addr[:2])
        except (OSError, ValueError, IndexError, TypeError, AttributeError):
            # Linux always answers: a failure there is no reason to let it in; the
            # untested macOS and Windows lookups failing leave the bounds, as before them
            mine = False if listener.LINUX else None
        if mine is None:
            return addr[0] if addr else "?"
        return "me" if mine else None

    def _admit(self, new: _Connection) -> None:
        """Register a pending connection, evicting the oldest when a bound is reached."""
        victims = []
        with self.lock:
            same = [c for c in self.pending if c.peer == new.peer]
            for group, bound in ((same, MAX_PENDING_PER_PEER), (list(self.pending), MAX_PENDING)):
                live = [c for c in group if c not in victims]
                while len(live) >= bound:
                    victim = next((c for c in live if not c.started and not c.busy),
                                  next((c for c in live if not c.busy), live[0]))
                    live.remove(victim)
                    victims.append(victim)
            for victim in victims:
                self.pending.pop(victim, None)
            self.pending[new] = None
        for victim in victims:
            victim.cut()

    def _forget(self, connection: _Connection) -> None:
        with self.lock:
            self.pending.pop(connection, None)
            self.trusted.discard(connection)

    def _reap_loop(self) -> None:
        """Cut connections past their deadline: a slow head, or a trusted one idle too long."""
        while not self.stopped.wait(REAP_EVERY_S):
            now = time.monotonic()
            with self.lock:
                late = [c for c in (*self.pending, *self.trusted)
                        if c.deadline is not None and now > c.deadline]
            for connection in late:
                connection.cut()

    def _connection(self, connection: _Connection) -> None:
        conn = connection.sock
        conn.settimeout(IDLE_TIMEOUT_S + HEAD_TIMEOUT_S)  # the reaper cuts sooner
        rfile, wfile = conn.makefile("rb"), conn.makefile("wb", buffering=0)
        try:
            while not self._one_request(connection, rfile, wfile):
                pass
        except (OSError, ConnectionError):
            pass  # the client went away: its problem, never a traceback on the terminal
        finally:
            for f in (rfile, wfile):
                try:
                    f.close()
                except OSError:
                    pass
            _linger(conn)  # still counted meanwhile: a flood of lingering peers is bounded too
            self._forget(connection)
            conn.close()

    def _one_request(self, connection: _Connection, rfile, wfile) -> bool:
        """Serve one request; True when the connection should be closed."""
        line = rfile.readline(MAX_LINE + 1)
        if not line:
            return True
        connection.started = True
        with self.idle:
            self.inflight += 1
        request = None
        try:
            try:
                request = _parse_head(line, rfile, wfile, self.bodies, connection)
            except BadRequest as exc:
                _respond(wfile, exc.status, str(exc).encode(), "text/plain", {}, close=True)
                return True
            connection.deadline, connection.busy = None, True
            try:
                status, body, ctype, headers = self.handle(request)
            except BadRequest as exc:
                status, body, ctype, headers = exc.status, str(exc).encode(), "text/plain", {}
            except Exception:  # noqa: BLE001 - a bug costs this request, never the server
                request.body_read = False  # its body may be half read: close the connection
                status, body, ctype, headers = 500, b"internal error", "text/plain", {}
            if request.holds_body:
                request.holds_body = False
                self.bodies.release()
            close = (not request.body_read or request.version == "HTTP/1.0"
                     or request.headers.get("connection", "").lower() == "close")
            if not close and not self._trust(connection, status):
                close = True
            _respond(wfile, status, body, ctype, headers, close)
            connection.busy = False
            connection.deadline = time.monotonic() + (IDLE_TIMEOUT_S if connection.trusted
                                                      else HEAD_TIMEOUT_S)
            return close
        finally:
            if request is not None and request.holds_body:
                self.bodies.release()
            with self.idle:
                self.inflight -= 1
                self.idle.notify_all()

    def _trust(self, connection: _Connection, status: int) -> bool:
        """Whether a connection may stay open after an answer: it must be trusted (a request
        on it got past the credentials check) and within MAX_TRUSTED."""
        if connection.trusted:
            return True
        if status in (401, 403):
            return False
        with self.lock:
            if len(self.trusted) >= MAX_TRUSTED:
                return False
            self.pending.pop(connection, None)
            self.trusted.add(connection)
            connection.trusted = True
        return True


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


def _parse_head(line: bytes, rfile, wfile, bodies=None,
                connection: _Connection | None = None) -> Request:
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
            return Request(method, path, version, headers, rfile, wfile, bodies, connection)
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
