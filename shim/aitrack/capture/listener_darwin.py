"""listener.py on macOS (untested here): this user's TCP sockets through libproc.

The calls lsof makes: proc_listpids(PROC_UID_ONLY, uid) for this user's processes,
proc_pidinfo(PROC_PIDLISTFDS) for each one's descriptors, proc_pidfdinfo
(PROC_PIDFDSOCKETINFO) for each socket's kind, TCP state and ports. The kernel answers
these for the caller's own processes only, so another user's socket is known by its
absence: a port that accepts connections while none of this user's processes listens on
it is another user's. Offsets are XNU's `bsd/sys/proc_info.h` (unchanged since 10.5):
`struct socket_fdinfo` is a 24-byte proc_fileinfo, then socket_info, whose soi_kind is
232 bytes in and soi_proto 240; for TCP, soi_proto is an in_sockinfo (insi_fport at 0,
insi_lport at 4, ports as ints in network order) followed by tcpsi_state at 80.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

PROC_UID_ONLY = 4
PROC_PIDLISTFDS = 1
PROC_FDINFO_SIZE = 8  # struct proc_fdinfo { int32 proc_fd; uint32 proc_fdtype; }
PROX_FDTYPE_SOCKET = 2
PROC_PIDFDSOCKETINFO = 3
SOCKET_FDINFO_SIZE = 792
SOI_KIND = 24 + 232
SOI_PROTO = 24 + 240
INSI_FPORT, INSI_LPORT = SOI_PROTO, SOI_PROTO + 4
TCPSI_STATE = SOI_PROTO + 80
SOCKINFO_TCP = 2
TSI_S_LISTEN, TSI_S_ESTABLISHED = 1, 4

_libproc = None
_recent: list[int] = []  # pids that held a peer lately (a tool reconnects): looked at first


def _lib():
    global _libproc
    if _libproc is None:
        _libproc = ctypes.CDLL(ctypes.util.find_library("proc") or "/usr/lib/libproc.dylib",
                               use_errno=True)
        for name, args in (("proc_listpids", (ctypes.c_uint32, ctypes.c_uint32,
                                              ctypes.c_void_p, ctypes.c_int)),
                           ("proc_pidinfo", (ctypes.c_int, ctypes.c_int, ctypes.c_uint64,
                                             ctypes.c_void_p, ctypes.c_int)),
                           ("proc_pidfdinfo", (ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                               ctypes.c_void_p, ctypes.c_int))):
            getattr(_libproc, name).argtypes = args
            getattr(_libproc, name).restype = ctypes.c_int
    return _libproc


def _my_pids() -> list[int]:
    lib = _lib()
    size = lib.proc_listpids(PROC_UID_ONLY, os.geteuid(), None, 0)
    if size <= 0:
        return []
    buf = (ctypes.c_int * (size // 4 + 64))()
    size = lib.proc_listpids(PROC_UID_ONLY, os.geteuid(), buf, ctypes.sizeof(buf))
    return [p for p in buf[:max(size, 0) // 4] if p > 0]


def _tcp_sockets(pid: int):
    """(state, local port, remote port) of each TCP socket `pid` holds."""
    lib = _lib()
    size = lib.proc_pidinfo(pid, PROC_PIDLISTFDS, 0, None, 0)
    if size <= 0:
        return
    fds = (ctypes.c_uint32 * ((size + 64 * PROC_FDINFO_SIZE) // 4))()
    size = lib.proc_pidinfo(pid, PROC_PIDLISTFDS, 0, fds, ctypes.sizeof(fds))
    info = ctypes.create_string_buffer(SOCKET_FDINFO_SIZE)
    for i in range(0, max(size, 0) // 4, 2):
        if fds[i + 1] != PROX_FDTYPE_SOCKET:
            continue
        got = lib.proc_pidfdinfo(pid, fds[i], PROC_PIDFDSOCKETINFO, info, SOCKET_FDINFO_SIZE)
        raw = info.raw
        if got != SOCKET_FDINFO_SIZE or int.from_bytes(raw[SOI_KIND:SOI_KIND + 4],
                                                       "little") != SOCKINFO_TCP:
            continue
        yield (int.from_bytes(raw[TCPSI_STATE:TCPSI_STATE + 4], "little"),
               int.from_bytes(raw[INSI_LPORT:INSI_LPORT + 2], "big"),
               int.from_bytes(raw[INSI_FPORT:INSI_FPORT + 2], "big"))


def _holder(match, first: tuple[int, ...] = ()) -> int | None:
    """The first of this user's pids holding a TCP socket `match(state, lport, fport)`."""
    pids = list(dict.fromkeys([*first, *_my_pids()]))
    for pid in pids:
        if any(match(*s) for s in _tcp_sockets(pid)):
            return pid
    return None


def listener_pid(port: int, pids: tuple[int, ...] = ()) -> int | None:
    """The pid of this user's process listening on TCP `port`, if one does."""
    return _holder(lambda state, lport, _f: state == TSI_S_LISTEN and lport == port, pids)


def peer_is_mine(local: tuple, peer: tuple) -> bool | None:
    """A process of this user's holds the socket at `peer` connected to `local`."""
    try:
        pid = _holder(lambda state, lport, fport: lport == peer[1] and fport == local[1],
                      tuple(_recent))
    except OSError:
        return None
    if pid is not None and pid not in _recent:
        _recent[:] = [pid, *_recent[:7]]
    return pid is not None
