"""HTTPS POSTs to the org endpoint: gzip, verified TLS, proxies, one bounded exchange.

`post` never raises for network, TLS or HTTP trouble: it returns an `Answer` whose `error`
is one line that never contains the token (an endpoint echoing the token back has it
masked). TLS is verified against the system trust store plus `endpoint.ca_bundle`; there
is no switch to turn verification off. Plain http:// is refused before any byte is sent
unless the host is a loopback address. HTTPS_PROXY/NO_PROXY (and the platform's proxy
settings) are honoured with a CONNECT tunnel; loopback hosts never go through a proxy.
Redirects are not followed: the auth header must never go to another URL.

Every request has a total deadline (endpoint.timeout_s, or the caller's sooner one), kept
by deadlines.py whatever stage the request is in.

Connections are kept alive per thread, so a backlog costs one TLS handshake, not one per
request. Imported by the forwarder (after the spawn, and only when the profile has an
endpoint), the agent and `aitrack flush`: ssl never loads on the wrapper's start-up path.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import socket
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import SplitResult, unquote, urlsplit

from aitrack import __version__
from aitrack.config.keychain import header_value_problem, mask
from aitrack.config.profile import Endpoint
from aitrack.config.urls import is_loopback_host, url_problem
from aitrack.egress import deadlines
from aitrack.egress.deadlines import Cuttable

MAX_ANSWER = 64 * 1024  # what is kept of an answer's body; a longer one closes the connection
SEND_CHUNK = 64 * 1024
GZIP_LEVEL = 6
USER_AGENT = f"aitrack/{__version__}"
_STALE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
          http.client.RemoteDisconnected, http.client.BadStatusLine)


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (refused, unreachable, timeout, TLS failure)
    error: str | None  # one line; None on 2xx
    retry_after: float | None = None  # seconds, from Retry-After
    body: bytes = b""
    elapsed_s: float = 0.0
    content_type: str = ""
    fatal: bool = False  # retrying cannot help until the profile or the token changes
    sent_bytes: int = 0  # the compressed body's size


class _Refused(Exception):
    """Not sent, and retrying will not help: a one-line reason."""


def post(endpoint: Endpoint, url: str, body: bytes, content_type: str,
         token: str | None, deadline: float | None = None) -> Answer:
    """One POST; `deadline` (time.monotonic()): end sooner than endpoint.timeout_s."""
    started = time.monotonic()
    ends = started + endpoint.timeout_s if deadline is None else \
        min(deadline, started + endpoint.timeout_s)

    def answer(status, error, **kw) -> Answer:
        if error and token:
            error = mask(error, [token])
        return Answer(status, error, elapsed_s=time.monotonic() - started, **kw)

    try:
        target = _target(url)
        if token is not None and header_value_problem(token):
            raise _Refused("the token in the keychain is not a valid HTTP header value: "
                           "run `aitrack token set`")
        ours = {"content-type", "content-encoding", "content-length", "host", "user-agent",
                endpoint.auth_header.lower()}
        headers = {k: v for k, v in endpoint.headers.items() if k.lower() not in ours}
        headers.update({"Content-Type": content_type, "Content-Encoding": "gzip",
                        "User-Agent": USER_AGENT})
        if token:  # UTF-8 bytes: http.client would send str as Latin-1 or refuse it
            headers[endpoint.auth_header] = endpoint.auth_value(token).encode()
        payload = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        headers["Content-Length"] = str(len(payload))
        status, reply_headers, data = _exchange(endpoint, target, headers, payload, ends)
    except _Refused as exc:
        return answer(None, str(exc), fatal=True)
    except Exception as exc:  # noqa: BLE001 - post never raises: every failure is an Answer
        # an untrusted certificate stays untrusted until the profile changes: no retrying
        return answer(None, _describe(exc, url, endpoint),
                      fatal=isinstance(exc, ssl.SSLCertVerificationError))
    kw = {"body": data, "content_type": reply_headers.get("content-type", ""),
          "sent_bytes": len(payload)}
    if 200 <= status < 300:
        return answer(status, None, **kw)
    return answer(status, _http_error(status, reply_headers, data, [token]),
                  retry_after=retry_after(reply_headers.get("retry-after")), **kw)


def connect_ahead(endpoint: Endpoint, urls: list[str]) -> None:
    """Open this thread's connections to the endpoint before there is anything to send.

    TCP and the TLS handshake only; no request, no token. Failures are left for `post` to
    report.
    """
    for url in dict.fromkeys(urls):
        try:
            target = _target(url)
            key, make = _connection_factory(endpoint, target)
            if key in _pool():
                continue
            conn = make()
            try:
                with deadlines.guard(conn, time.monotonic() + endpoint.timeout_s):
                    conn.connect()
            except BaseException:
                conn.close()
                raise
            _pool()[key] = conn
        except Exception:  # noqa: BLE001 - post will say what is wrong
            continue


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


# ---------------------------------------------------------------- the exchange


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str


def _target(url: str) -> _Target:
    # the profile's own rule, checked again here: no byte leaves for a URL it refuses
    problem = url_problem(url)
    if problem:
        raise _Refused(f"refused to send to {url}: {problem}; fix the endpoint in the profile")
    parts: SplitResult = urlsplit(url)
    host, port = parts.hostname, parts.port
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def _exchange(endpoint: Endpoint, target: _Target, headers: dict[str, str], payload: bytes,
              deadline: float) -> tuple[int, dict[str, str], bytes]:
    key, make = _connection_factory(endpoint, target)
    pool = _pool()
    conn = pool.pop(key, None)
    reused = conn is not None and conn.sock is not None
    if conn is None:
        conn = make()
    try:
        try:
            result, keep = _request(conn, target, headers, payload, deadline)
        except _STALE:
            if not reused:
                raise
            conn.close()  # the endpoint closed an idle keep-alive connection: once more, fresh
            conn = make()
            result, keep = _request(conn, target, headers, payload, deadline)
    except BaseException:
        conn.close()
        raise
    if keep:
        pool[key] = conn
    else:
        conn.close()
    return result


def _request(conn: Cuttable, target: _Target, headers: dict[str, str],
             payload: bytes, deadline: float) -> tuple[tuple[int, dict[str, str], bytes], bool]:
    with deadlines.guard(conn, deadline):
        return _request_now(conn, target, headers, payload, deadline)


def _request_now(conn: Cuttable, target: _Target, headers: dict[str, str],
                 payload: bytes, deadline: float
                 ) -> tuple[tuple[int, dict[str, str], bytes], bool]:
    if conn.sock is None:
        conn.timeout = _remaining(deadline)
        conn.connect()
    conn.putrequest("POST", target.path, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    view = memoryview(payload)
    for start in range(0, len(view), SEND_CHUNK):
        conn.sock.settimeout(_remaining(deadline))
        conn.send(view[start:start + SEND_CHUNK])
    conn.sock.settimeout(_remaining(deadline))
    response = conn.getresponse()
    data = response.read(MAX_ANSWER)
    complete = response.isclosed() or not response.read(1)
    reply_headers = {k.lower(): v for k, v in response.getheaders()}
    keep = complete and not response.will_close
    return (response.status, reply_headers, data), keep


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise deadlines.Deadline()
    return left


_local = threading.local()
_contexts: dict[str | None, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def _pool() -> dict:
    if not hasattr(_local, "pool"):
        _local.pool = {}
    return _local.pool


def close_connections() -> None:
    """Close this thread's kept-alive connections."""
    for conn in _pool().values():
        conn.close()
    _pool().clear()


def _tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """The system trust store, plus the profile's CA bundle when it names one."""
    with _contexts_lock:
        if ca_bundle not in _contexts:
            context = ssl.create_default_context()
            if ca_bundle:
                try:
                    context.load_verify_locations(cafile=ca_bundle)
                except (OSError, ssl.SSLError) as exc:
                    reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) \
                        or type(exc).__name__
                    raise _Refused(f"cannot load endpoint.ca_bundle {ca_bundle} ({reason}): "
                                   "point it at a readable PEM file") from None
            _contexts[ca_bundle] = context
        return _contexts[ca_bundle]


def _connection_factory(endpoint: Endpoint, target: _Target):
    proxy = None if is_loopback_host(target.host) else _proxy_for(target)
    context = _tls_context(endpoint.ca_bundle) if target.scheme == "https" else None
    key = (target.scheme, target.host, target.port, proxy, endpoint.ca_bundle)

    def make() -> Cuttable:
        timeout = endpoint.timeout_s
        if context is None:
            return deadlines.HTTP(target.host, target.port, timeout=timeout)
        if proxy is None:
            return deadlines.HTTPS(target.host, target.port, timeout=timeout, context=context)
        proxy_host, proxy_port, auth = proxy
        conn = deadlines.HTTPS(proxy_host, proxy_port, timeout=timeout, context=context)
        conn.set_tunnel(target.host, target.port,
                        headers={"Proxy-Authorization": auth} if auth else None)
        return conn

    return key, make


def _proxy_for(target: _Target) -> tuple[str, int, str | None] | None:
    """(host, port, Proxy-Authorization) from HTTPS_PROXY and the like, unless NO_PROXY says no."""
    url = urllib.request.getproxies().get(target.scheme)
    if not url:
        return None
    if urllib.request.proxy_bypass(target.host) or \
            urllib.request.proxy_bypass(f"{target.host}:{target.port}"):
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise _Refused(f"the {target.scheme} proxy must be an http:// URL (host:port), got "
                       f"{parts.scheme}://{parts.hostname}: fix HTTPS_PROXY")
    auth = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(pair.encode()).decode()
    return parts.hostname, parts.port or 8080, auth


# ---------------------------------------------------------------- one-line errors


def _describe(exc: BaseException, url: str, endpoint: Endpoint) -> str:
    host = urlsplit(url).hostname
    if isinstance(exc, deadlines.Deadline | TimeoutError | socket.timeout):
        return f"no answer from {host} within {endpoint.timeout_s:g} s (endpoint.timeout_s)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"cannot verify the TLS certificate of {host} ({exc.verify_message}): if your "
                "org uses its own CA, set endpoint.ca_bundle to its PEM file")
    if isinstance(exc, ssl.SSLError):
        return f"TLS with {host} failed ({exc.reason or type(exc).__name__})"
    if isinstance(exc, ConnectionRefusedError):
        return f"{host} refused the connection (is the endpoint up?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {host} ({exc.strerror}): check the network or the endpoint URL"
    if isinstance(exc, http.client.HTTPException):
        return f"{host} sent no valid HTTP answer ({type(exc).__name__})"
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        return f"network error talking to {host} ({reason})"
    return f"sending to {host} failed ({type(exc).__name__})"


def _http_error(status: int, headers: dict[str, str], body: bytes,
                secrets: list[str | None] = ()) -> str:
    reason = http.client.responses.get(status, "")
    text = _answer_text(headers.get("content-type", ""), body, secrets)
    where = f" to {headers['location']}" if 300 <= status < 400 and "location" in headers else ""
    return f"HTTP {status} {reason}{where}" + (f": {text}" if text else "")


def _answer_text(content_type: str, body: bytes, secrets: list[str | None] = ()) -> str:
    """The endpoint's message, one line, short: JSON `message`/`error` when there is one.
    Secrets it echoes are masked before it is cut short (a cut could leave a prefix)."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace")
    if "json" in content_type:
        try:
            data = json.loads(text)
            if isinstance(data, dict):
                text = str(data.get("message") or data.get("error") or text)
        except ValueError:
            pass
    elif "protobuf" in content_type:
        text = _status_message(body) or ""
    line = mask(" ".join(text.split()), secrets)
    return line if len(line) <= 300 else line[:300] + "..."


def _status_message(body: bytes) -> str | None:
    """google.rpc.Status.message (field 2, a string) of a protobuf error answer.

    Read by hand: googleapis-common-protos is not one of aitrack's dependencies.
    """
    i = 0
    try:
        while i < len(body):
            key, i = _varint(body, i)
            field, wire = key >> 3, key & 7
            if wire == 0:
                _, i = _varint(body, i)
            elif wire == 2:
                size, i = _varint(body, i)
                if field == 2:
                    return body[i:i + size].decode("utf-8", "replace")
                i += size
            elif wire in (1, 5):
                i += 8 if wire == 1 else 4
            else:
                return None
    except IndexError:
        return None
    return None


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80 or shift > 63:
            return value, i
