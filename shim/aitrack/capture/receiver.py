"""The loopback OTLP/HTTP receiver the tools send their telemetry to.

Two wirings of the same server: a per-run receiver, bound before the wrapped child starts
(loopback.py) and served once it runs, and the per-user agent on its fixed port. Only the
sender that holds the secret gets in: requests must carry it in a header (compared in
constant time) and a loopback `Host`; the agent also takes an export without it when the
OS names this user's own socket at the other end (tools that cannot send a header). A
payload is answered 200 once it is durably in the inbox (intake.py): decoding and counting
come after, so the sender is never kept waiting by them. Answers follow the OTLP/HTTP spec.
"""

from __future__ import annotations

import hmac
import json
import re
import socket
import zlib
from collections.abc import Callable

from aitrack.capture import http11
from aitrack.capture.http11 import BadRequest, Request
from aitrack.capture.intake import Delivery, StoreUnavailable
from aitrack.capture.loopback import SECRET_HEADER

MAX_BODY = 16 * 1024 * 1024  # after decompression
MAX_GZIP_MEMBERS = 64  # a sender compresses its body once; many members are an attack
GZIP_CHUNK = 64 * 1024
PATHS = {f"/v1/{s}": s for s in ("metrics", "logs", "traces")}
STATUS_PATH = "/aitrack/status"
RUN_PATHS = ("/aitrack/run/start", "/aitrack/run/end")  # the agent: what a wrapper knows
RUN_HEADER = "x-aitrack-run"  # the agent: which wrapper run a sender belongs to
JSON, PROTOBUF = "application/json", "application/x-protobuf"
CONTENT_TYPES = (JSON, PROTOBUF)
_RUN_ID = re.compile(r"[0-9a-f]{32}")

Answer = tuple[int, bytes, str, dict[str, str]]


class Receiver:
    """Serves one listening loopback socket; `deliver` stores a payload durably or raises
    StoreUnavailable (503)."""

    def __init__(self, sock: socket.socket, secret: str, deliver: Callable[[Delivery], None],
                 run_id: str | None = None, status: Callable[[], dict] | None = None,
                 runs: Callable[[str, dict], dict] | None = None,
                 kept: Callable[[str, bytes], bool] | None = None, also: tuple[str, ...] = (),
                 own_peers: bool = False):
        self.port = sock.getsockname()[1]
        self.secret = secret.encode()
        self.keys = (self.secret, *(k.encode() for k in also))  # the agent: session keys too
        self.hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        self.deliver = deliver
        self.run_id = run_id  # a per-run receiver's own run; None: the agent (header says)
        self.status = status  # the agent's GET /aitrack/status
        self.runs = runs  # the agent's POST /aitrack/run/start|end, from wrapped runs
        # which payloads are kept: one that nothing counts and nothing forwards (traces, unless
        # the profile forwards them or they are a tool's usage) is answered as received, and
        # not written to disk
        self.kept = kept or (lambda signal, body: True)
        # the agent: an export without a key is taken when the OS names this user at the
        # other end (tools with no header setting: Gemini CLI, Qwen Code); the key is defence
        # in depth, the peer's account the credential
        self.own_peers = own_peers
        self.server = http11.Server(sock, self.handle)

    def start(self) -> Receiver:
        self.server.start()
        return self

    def stop(self, drain_s: float = 5.0) -> None:
        """Stop accepting, then wait (bounded) for requests being handled to finish."""
        self.server.stop(drain_s)

    def handle(self, req: Request) -> Answer:
        ctype = req.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        reply = ctype if ctype in CONTENT_TYPES else JSON  # errors too, in the request's type
        if req.headers.get("host", "").lower() not in self.hosts:
            return _error(403, "forbidden host", reply)
        path = req.path.split("?", 1)[0]
        sent = req.headers.get(SECRET_HEADER, "").encode()
        if not sum(hmac.compare_digest(sent, key) for key in self.keys) and not (  # each one
                not sent and path in PATHS and self._own_peer(req)):
            return _error(401, "missing or wrong aitrack key", reply)
        if path == STATUS_PATH and self.status is not None and req.method == "GET":
            return 200, json.dumps(self.status()).encode(), JSON, {}
        if path in RUN_PATHS and self.runs is not None and req.method == "POST":
            return self._run_event(path, req)
        signal = PATHS.get(path)
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

    def _own_peer(self, req: Request) -> bool:
        """The OS said this connection's other end is this user's own socket (never where
        it cannot say: macOS and Windows lookups that fail, other systems)."""
        return self.own_peers and req.connection is not None and req.connection.peer == "me"

    def _export(self, signal: str, req: Request, ctype: str, encoding: str) -> Answer:
        raw = req.read_body(MAX_BODY)
        if raw is None:
            return _error(413, "body over 16 MiB", ctype)
        body = _gunzip(raw) if encoding == "gzip" else raw
        # protobuf (~20 ms): loaded with the first payload, not with every wrapped run
        from aitrack.egress import otlp

        try:
            _check(signal, body, ctype)
            if self.kept(signal, body):
                self.deliver(Delivery(signal, ctype, body, self._run_of(req)))
        except otlp.MalformedPayload as exc:
            return _error(400, str(exc), ctype)
        except StoreUnavailable as exc:
            return _error(503, str(exc), ctype, {"Retry-After": "1"})
        return 200, otlp.response(signal, ctype), ctype, {}

    def _run_event(self, path: str, req: Request) -> Answer:
        body = req.read_body(64 * 1024)
        try:
            data = json.loads(body) if body is not None else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return _error(400, "a run event is a JSON object")
        try:
            return 200, json.dumps(self.runs(path, data)).encode(), JSON, {}
        except (KeyError, TypeError, ValueError) as exc:
            return _error(400, f"bad run event: {type(exc).__name__}: {exc}")

    def _run_of(self, req: Request) -> str | None:
        if self.run_id is not None:
            return self.run_id
        claimed = req.headers.get(RUN_HEADER, "")
        return claimed if _RUN_ID.fullmatch(claimed) else None


def _check(signal: str, body: bytes, ctype: str) -> None:
    """Refuse what is not a payload at all, before answering; the full decode comes after.

    Protobuf parses in C, so it is parsed whole. JSON is checked by msgspec without building
    any object: the whole document's syntax and a top-level object, in under a millisecond
    for a megabyte (json.loads takes 10-20 ms, which the sender would wait for)."""
    from aitrack.egress import otlp  # protobuf: with the first payload (see _export)

    if ctype == PROTOBUF:
        otlp.decode(signal, body, ctype)  # bounded too: otlp.bound first
        return
    import msgspec  # ~20 ms: only a run whose tool sends OTLP/JSON needs it

    otlp.bound(signal, body, ctype)  # what decoding it later would cost, counted first
    try:
        msgspec.json.decode(body, type=dict[str, msgspec.Raw])
    except msgspec.ValidationError:
        raise otlp.MalformedPayload("the JSON body must be an object") from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise otlp.MalformedPayload(f"invalid OTLP {signal} payload: {exc}") from None


def _gunzip(raw: bytes) -> bytes:
    """Every gzip member of `raw`, decompressed: never more than MAX_BODY bytes of output nor
    MAX_GZIP_MEMBERS members, in time linear in `raw` (it is fed in chunks, so what follows
    a member is never copied whole: 4 MiB of empty members once took 18 s)."""
    if not raw:
        raise BadRequest(400, "truncated gzip body")
    view, pos, parts, size, members = memoryview(raw), 0, [], 0, 0
    while pos < len(raw):
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise BadRequest(400, f"more than {MAX_GZIP_MEMBERS} gzip members in one body")
        inflater = zlib.decompressobj(wbits=31)
        while not inflater.eof:
            if pos >= len(raw):  # a cut-off body must not be taken for a shorter payload
                raise BadRequest(400, "truncated gzip body")
            chunk = view[pos:pos + GZIP_CHUNK]
            try:
                part = inflater.decompress(chunk, MAX_BODY + 1 - size)
            except zlib.error:
                raise BadRequest(400, "invalid gzip body") from None
            size += len(part)
            if size > MAX_BODY or inflater.unconsumed_tail:
                raise BadRequest(413, "body over 16 MiB after decompression")
            parts.append(part)
            pos += len(chunk) - len(inflater.unused_data)
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
