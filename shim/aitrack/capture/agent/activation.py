"""The agent's listening socket, when the service manager holds the port from login.

A port held by the user's service manager cannot be taken by another user while the agent
is down (before its first start, after a crash, during a restart): the manager listens on
it from login and hands the socket over when it starts the agent.
- systemd: a `.socket` unit (ListenStream=127.0.0.1:PORT); the agent gets the socket as fd
  3, with LISTEN_PID (its pid) and LISTEN_FDS (how many) set, as sd_listen_fds(3) reads
  them.
- launchd (untested: macOS): the LaunchAgent's `Sockets` entry `Listeners`; the agent asks
  for its descriptors with launch_activate_socket(3).
Elsewhere (Windows, containers, `--no-service`) the agent binds the port itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import sys

SD_LISTEN_FDS_START = 3
LAUNCHD_SOCKET = "Listeners"  # the plist's Sockets key (install/service_files.py says the same)


def inherited() -> socket.socket | None:
    """The listening socket the service manager passed, or None when it passed none."""
    if sys.platform == "darwin":
        fd = _launchd_fd()
    else:
        fd = _systemd_fd()
    if fd is None:
        return None
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(False)
    return sock


def _systemd_fd() -> int | None:
    pid, count = os.environ.pop("LISTEN_PID", ""), os.environ.pop("LISTEN_FDS", "")
    os.environ.pop("LISTEN_FDNAMES", None)  # not for the agent's own children
    if not (pid.isdigit() and int(pid) == os.getpid() and count.isdigit() and int(count) >= 1):
        return None
    return SD_LISTEN_FDS_START


def _launchd_fd() -> int | None:
    """launch_activate_socket(name, &fds, &count) from libSystem (untested: macOS)."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("System") or "/usr/lib/libSystem.B.dylib")
        fds, count = ctypes.POINTER(ctypes.c_int)(), ctypes.c_size_t(0)
        fn = lib.launch_activate_socket
        fn.argtypes = (ctypes.c_char_p, ctypes.POINTER(ctypes.POINTER(ctypes.c_int)),
                       ctypes.POINTER(ctypes.c_size_t))
        fn.restype = ctypes.c_int
        if fn(LAUNCHD_SOCKET.encode(), ctypes.byref(fds), ctypes.byref(count)) != 0:
            return None  # not started by launchd with that socket (ESRCH, ENOENT)
        found = [fds[i] for i in range(count.value)]
        lib.free.argtypes = (ctypes.c_void_p,)
        lib.free(fds)
    except (OSError, AttributeError):
        return None
    return found[0] if found else None


def check(sock: socket.socket, port: int) -> str | None:
    """Why a passed socket cannot be the agent's (not a TCP listener on loopback `port`)."""
    try:
        host, bound = sock.getsockname()[:2]
        listening = sock.getsockopt(socket.SOL_SOCKET, getattr(socket, "SO_ACCEPTCONN", 30))
    except OSError as exc:
        return f"the socket the service manager passed is unusable ({exc})"
    if sock.type != socket.SOCK_STREAM or not listening:
        return "the socket the service manager passed is not a listening TCP socket"
    if bound != port or host not in ("127.0.0.1", "::1"):
        return (f"the service manager passed {host}:{bound}, not 127.0.0.1:{port}: run "
                "`aitrack agent install` again")
    return None
