"""The receiver's socket and per-run secret: bound before the child starts, and cheap."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Listener:
    SECRET_HEADER = "x-aitrack-key"

    sock: socket.socket
    port: int
    secret: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def signal_url(self, signal: str) -> str:
        return f"{self.base_url}/v1/{signal}"


def bind() -> Listener:
    """Reserve a random loopback port; connections queue until the receiver serves them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return Listener(sock, sock.getsockname()[1], os.urandom(24).hex())
