"""Connections with a total deadline: a watchdog cuts each request's connection when its
deadline passes, whatever stage it is in (connecting, TLS, a proxy's tunnel, sending, the
answer's head or body).

Each socket operation's own timeout is not enough: a peer that sends a byte just inside it,
again and again, held `aitrack flush --timeout 5` for 199 s (47 s here for one request).
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Deadline(Exception):
    """A request's deadline passed: its connection was cut."""


class Cuttable:
    """A connection the watchdog can cut at any stage: it keeps a duplicate of its socket's
    descriptor (shutting it down ends the socket, whatever wraps it: TLS, a tunnel)."""

    handle: socket.socket | None = None

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self._create_connection = self._connect  # http.client's hook for the raw socket

    def _connect(self, address, timeout, source_address=None) -> socket.socket:
        sock = socket.create_connection(address, timeout, source_address)
        if self.handle is not None:  # a connection http.client dropped without close()
            self.handle.close()
        self.handle = sock.dup()
        return sock

    def cut(self) -> None:
        try:
            if self.handle is not None:
                self.handle.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        super().close()
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class HTTP(Cuttable, http.client.HTTPConnection):
    pass


class HTTPS(Cuttable, http.client.HTTPSConnection):
    pass


class _Watchdog:
    """One thread that cuts each guarded connection when its deadline passes."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.due: dict[object, tuple[float, Cuttable]] = {}
        self.thread: threading.Thread | None = None

    @contextmanager
    def guard(self, conn: Cuttable, deadline: float) -> Iterator[None]:
        """Cut `conn` at `deadline`; Deadline when that happened (whatever else failed)."""
        key = object()
        with self.lock:
            self.due[key] = (deadline, conn)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="aitrack-deadlines",
                                               daemon=True)
                self.thread.start()
            self.lock.notify()
        try:
            yield
        finally:
            with self.lock:
                cut = self.due.pop(key, None) is None
            if cut:
                raise Deadline()  # not the OSError the cut caused: the deadline is the why

    def _run(self) -> None:
        with self.lock:
            while True:
                now = time.monotonic()
                for key in [k for k, (at, _) in self.due.items() if at <= now]:
                    self.due.pop(key)[1].cut()
                soonest = min((at for at, _ in self.due.values()), default=None)
                self.lock.wait(None if soonest is None else soonest - now)


_WATCHDOG = _Watchdog()


def guard(conn: Cuttable, deadline: float):
    """Cut `conn` at `deadline` (time.monotonic()); Deadline when that happened."""
    return _WATCHDOG.guard(conn, deadline)
