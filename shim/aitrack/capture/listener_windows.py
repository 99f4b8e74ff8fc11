"""listener.py on Windows (untested here): sockets' owning pids, and each pid's user.

GetExtendedTcpTable(TCP_TABLE_OWNER_PID_ALL) lists every TCP socket with its owning pid
(MIB_TCPROW_OWNER_PID: state, local address and port, remote address and port, pid, each a
DWORD, ports in network order in their first two bytes; MIB_TCP6ROW_OWNER_PID: local
address (16 bytes), scope, port, remote address, scope, port, state, pid). A pid's user is
its process token's user SID (OpenProcess, OpenProcessToken, GetTokenInformation
TokenUser), compared with this process's own as bytes. A process whose token we may not
open (another user's, a service's) is not this user's. What stands for a uid is the SID's
relative identifier (its last sub-authority), as the per-user port rule uses it.
"""

from __future__ import annotations

import _socket
import ctypes
from ctypes import wintypes

AF_INET, AF_INET6 = 2, 23
TCP_TABLE_OWNER_PID_ALL = 5
MIB_TCP_STATE_LISTEN = 2
ERROR_INSUFFICIENT_BUFFER = 122
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
TOKEN_QUERY = 0x0008
TOKEN_USER = 1
LOOPBACK_OR_ANY = {AF_INET: (bytes([127, 0, 0, 1]), bytes(4)),
                   AF_INET6: (bytes(15) + b"\x01", bytes(16))}

_iphlpapi = ctypes.WinDLL("iphlpapi")  # type: ignore[attr-defined]
_advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)  # type: ignore[attr-defined]
_kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
_iphlpapi.GetExtendedTcpTable.argtypes = (ctypes.c_void_p, ctypes.POINTER(wintypes.DWORD),
                                          wintypes.BOOL, wintypes.ULONG, ctypes.c_int,
                                          wintypes.ULONG)
_iphlpapi.GetExtendedTcpTable.restype = wintypes.DWORD
_kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
_kernel32.OpenProcess.restype = wintypes.HANDLE
_kernel32.GetCurrentProcess.restype = wintypes.HANDLE
_kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
_advapi32.OpenProcessToken.argtypes = (wintypes.HANDLE, wintypes.DWORD,
                                       ctypes.POINTER(wintypes.HANDLE))
_advapi32.GetTokenInformation.argtypes = (wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p,
                                          wintypes.DWORD, ctypes.POINTER(wintypes.DWORD))
_advapi32.GetLengthSid.argtypes = (ctypes.c_void_p,)
_advapi32.GetLengthSid.restype = wintypes.DWORD

_own: bytes | None = None


def _table(family: int) -> list[tuple[int, bytes, int, bytes, int, int]]:
    """(state, local address, local port, remote address, remote port, pid) per socket."""
    size = wintypes.DWORD(0)
    _iphlpapi.GetExtendedTcpTable(None, ctypes.byref(size), False, family,
                                  TCP_TABLE_OWNER_PID_ALL, 0)
    for _ in range(4):  # the table may grow between the two calls
        buf = ctypes.create_string_buffer(size.value + 4096)
        size = wintypes.DWORD(len(buf))
        rc = _iphlpapi.GetExtendedTcpTable(buf, ctypes.byref(size), False, family,
                                           TCP_TABLE_OWNER_PID_ALL, 0)
        if rc == 0:
            break
        if rc != ERROR_INSUFFICIENT_BUFFER:
            return []
    else:
        return []
    raw, rows = buf.raw, []

    def dword(at: int) -> int:
        return int.from_bytes(raw[at:at + 4], "little")

    def port(at: int) -> int:
        return int.from_bytes(raw[at:at + 2], "big")

    for i in range(dword(0)):
        if family == AF_INET:
            at = 4 + i * 24
            rows.append((dword(at), raw[at + 4:at + 8], port(at + 8), raw[at + 12:at + 16],
                         port(at + 16), dword(at + 20)))
        else:
            at = 4 + i * 56
            rows.append((dword(at + 48), raw[at:at + 16], port(at + 20),
                         raw[at + 24:at + 40], port(at + 44), dword(at + 52)))
    return rows


def _token_sid(token) -> bytes | None:
    size = wintypes.DWORD(0)
    _advapi32.GetTokenInformation(token, TOKEN_USER, None, 0, ctypes.byref(size))
    buf = ctypes.create_string_buffer(max(size.value, 64))
    if not _advapi32.GetTokenInformation(token, TOKEN_USER, buf, len(buf), ctypes.byref(size)):
        return None
    sid = ctypes.cast(buf, ctypes.POINTER(ctypes.c_void_p))[0]  # TOKEN_USER.User.Sid
    return ctypes.string_at(sid, _advapi32.GetLengthSid(sid))


def _sid_of_process(handle) -> bytes | None:
    token = wintypes.HANDLE()
    if not _advapi32.OpenProcessToken(handle, TOKEN_QUERY, ctypes.byref(token)):
        return None
    try:
        return _token_sid(token)
    finally:
        _kernel32.CloseHandle(token)


def sid_of(pid: int) -> bytes | None:
    """The user SID of process `pid`, or None when we may not look (not this user's)."""
    handle = _kernel32.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        return None
    try:
        return _sid_of_process(handle)
    finally:
        _kernel32.CloseHandle(handle)


def own_sid() -> bytes | None:
    global _own
    if _own is None:
        _own = _sid_of_process(_kernel32.GetCurrentProcess())
    return _own


def rid(sid: bytes) -> int:
    """A SID's relative identifier: its last sub-authority (1001 for a first local user)."""
    return int.from_bytes(sid[-4:], "little")


def _who(pid: int) -> tuple[int | None, int, bool]:
    sid = sid_of(pid)
    return (rid(sid) if sid else None, pid, sid is not None and sid == own_sid())


def listener(port: int) -> tuple[int | None, int, bool] | None:
    """(uid, pid, mine) of the socket listening on loopback `port`: a foreign one first."""
    found = None
    for family in (AF_INET, AF_INET6):
        for state, laddr, lport, _r, _rp, pid in _table(family):
            if state != MIB_TCP_STATE_LISTEN or lport != port \
                    or laddr not in LOOPBACK_OR_ANY[family]:
                continue
            who = _who(pid)
            if not who[2]:
                return who
            found = found or who
    return found


def peer_is_mine(local: tuple, peer: tuple) -> bool | None:
    """The process holding the socket at `peer`, connected to `local`, is this user's."""
    try:
        family = AF_INET6 if ":" in peer[0] else AF_INET
        sys_family = _socket.AF_INET6 if family == AF_INET6 else _socket.AF_INET
        paddr = _socket.inet_pton(sys_family, peer[0].split("%", 1)[0])
        laddr = _socket.inet_pton(sys_family, local[0].split("%", 1)[0])
        rows = _table(family)
    except (OSError, ValueError):
        return None
    for _state, addr, port, raddr, rport, pid in rows:
        if addr == paddr and port == peer[1] and raddr == laddr and rport == local[1]:
            return _who(pid)[2]
    return False
