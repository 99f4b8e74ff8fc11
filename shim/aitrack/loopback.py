"""The receiver's socket and per-run secret: bound before the child starts, and cheap.

`_socket` is the C module under `socket`; importing `socket` itself costs ~5 ms on the
start-up path. The receiver wraps the bound socket in a `socket.socket` once the child runs.
"""

from __future__ import annotations

import _socket
import os

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
