"""The receiver's socket and per-run secret: bound before the child starts, and cheap.

`_socket` is the C module under `socket`; importing `socket` itself costs ~5 ms on the
start-up path. The receiver wraps the bound socket in a `socket.socket` once the child runs.
"""

from __future__ import annotations

import _socket
import os

from aitrack.capture import listener

SECRET_HEADER = "x-aitrack-key"


class Listener:
    __slots__ = ("sock", "port", "secret")

    def __init__(self, sock, port: int, secret: str):
        self.sock = sock  # a bound, listening, non-inheritable _socket.socket
        self.port = port
        self.secret = secret

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.sock.close()


def bind() -> Listener:
    """Reserve a random loopback port; connections queue until the receiver serves them."""
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return Listener(sock, sock.getsockname()[1], os.urandom(24).hex())


def post(port: int, path: str, secret: str, body: bytes, timeout: float = 2.0
         ) -> tuple[int, bytes] | None:
    """POST a JSON body to this user's agent with the secret header: (status, body); None
    when nothing was sent (nothing listens, or what listens is not this user's: checked
    once connected, before a byte goes out), (0, b"") when it was sent but no answer came.
    A few lines of HTTP/1.1 instead of http.client (~10 ms of imports): the wrapper talks to
    the agent on its start-up and exit paths."""
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{SECRET_HEADER}: {secret}\r\nConnection: close\r\n\r\n")
    try:
        sock.connect(("127.0.0.1", port))
        if not listener.server_is_mine(sock):
            sock.close()
            return None
        sock.sendall(head.encode("latin-1") + body)
    except OSError:
        sock.close()
        return None
    answer = []
    try:
        while chunk := sock.recv(65536):
            answer.append(chunk)
    except OSError:
        return 0, b""
    finally:
        sock.close()
    status_line, _, rest = b"".join(answer).partition(b"\r\n")
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return 0, b""
    return int(parts[1]), rest.partition(b"\r\n\r\n")[2]


def to_json(value) -> bytes:
    """Plain data (dict, list, str, int, float, bool, None) as JSON, ASCII only, without
    importing json (~6 ms with `re`, on the wrapper's exit path). The agent reads it with
    json.loads; a property test checks the two agree."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("ascii")


def _encode(value, out: list[str]) -> None:
    if value is None or value is True or value is False:
        out.append({None: "null", True: "true", False: "false"}[value])
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} is not a JSON number")
        out.append(float.__repr__(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"a JSON object's keys are strings, not {type(key).__name__}")
            out.append(("," if i else "") + _string(key) + ":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not plain data")


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string(text: str) -> str:
    chars = []
    for c in text:
        code = ord(c)
        if c in _ESCAPES:
            chars.append(_ESCAPES[c])
        elif 0x20 <= code < 0x7F:
            chars.append(c)
        elif code <= 0xFFFF:  # control characters, non-ASCII, lone surrogates
            chars.append(f"\\u{code:04x}")
        else:  # a surrogate pair
            code -= 0x10000
            chars.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    return '"' + "".join(chars) + '"'
