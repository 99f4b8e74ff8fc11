"""Who holds a loopback TCP port, and who is at the other end of a loopback connection.

The agent's port is trusted by its owner, never by its answer: any local user can bind a
free port (the agent down, or not yet started) and answer like the agent. So before
anything is sent to the port, the OS is asked which account holds the listening socket;
and the agent asks, for each connection it accepts, which account holds the other end
(the key is defence in depth).

- Linux: /proc/net/tcp and tcp6 list every socket of this network namespace with its
  owner's uid and inode; an inode maps to a pid through /proc/PID/fd (this user's
  processes, or every one for root). An orphaned socket (its process closed it: FIN_WAIT2
  after a send-and-close) shows uid 0 and inode 0, so it never counts as anyone's.
- macOS (untested): libproc, as lsof does: this user's processes (proc_listpids), their
  socket descriptors (PROC_PIDLISTFDS) and each one's TCP state and ports
  (PROC_PIDFDSOCKETINFO). Other users' processes are not visible, so a port that accepts
  connections and is held by none of this user's processes is another user's (uid unknown).
- Windows (untested): GetExtendedTcpTable names each socket's owning pid; the pid's token
  user (its SID) is compared with ours. The uid reported is the SID's last part (the RID).

Standard library only, and ctypes only on macOS and Windows: the wrapper asks before it
starts the tool.
"""

from __future__ import annotations

import _socket
import os
import sys

LINUX = sys.platform.startswith("linux")


class Owner:
    """The account holding a socket: `uid` (None where the OS does not name another user's
    account to us), `pid` where visible, and whether it is this user."""

    __slots__ = ("uid", "pid", "mine")

    def __init__(self, uid: int | None, pid: int | None, mine: bool):
        self.uid, self.pid, self.mine = uid, pid, mine

    def __repr__(self) -> str:
        return f"Owner(uid={self.uid}, pid={self.pid}, mine={self.mine})"

    def named(self) -> str:
        """"uid 1001 (pid 4242)", for a one-line message."""
        who = f"uid {self.uid}" if self.uid is not None else "another user"
        return who + (f" (pid {self.pid})" if self.pid is not None else "")


def my_uid() -> int | None:
    """This user's uid (Windows: the RID of the process token's user SID)."""
    if hasattr(os, "geteuid"):
        return os.geteuid()
    sid = _windows().own_sid()  # untested: Windows
    return _windows().rid(sid) if sid else None


def listener_owner(port: int, pids: tuple[int, ...] = (), scan: bool = False
                   ) -> Owner | None:
    """Who holds the socket listening on loopback `port` (bound to 127.0.0.1, ::1 or a
    wildcard address), or None when nothing listens. A foreign holder wins over ours.

    `pids`: processes to look in first for the holder's pid (the agent's); `scan`: look
    through every visible process when those do not hold it (doctor, status)."""
    if LINUX:
        return _linux_listener(port, pids, scan)
    if sys.platform == "darwin":  # untested: macOS
        pid = _darwin().listener_pid(port, pids)
        if pid is not None:
            return Owner(os.geteuid(), pid, True)
        # it accepts connections, but none of this user's processes listens: another user's
        return Owner(None, None, False) if accepts_connections(port) else None
    if sys.platform == "win32":  # untested: Windows
        found = _windows().listener(port)
        return Owner(*found) if found else None
    return None


def peer_is_mine(local: tuple, peer: tuple) -> bool | None:
    """Whether the other end of an accepted loopback connection (`local` is ours, as
    (host, port)) is a socket of this user's; None where this OS cannot tell."""
    if LINUX:
        row = _linux_row(peer, local)
        # an orphan (inode 0: its process closed it) is nobody's, whatever its uid says
        return row is not None and row[2] != 0 and row[1] == os.geteuid()
    if sys.platform == "darwin":
        return _darwin().peer_is_mine(local, peer)
    if sys.platform == "win32":
        return _windows().peer_is_mine(local, peer)
    return None


def server_is_mine(sock) -> bool:
    """Whether the connected client socket `sock` reached a listener of this user's.

    Linux reads the server end of this very connection (in the accept queue it carries
    its listener's uid), so nothing can take the port between the check and the send.
    Elsewhere the listener is asked right after connecting (a smaller window)."""
    local, remote = sock.getsockname()[:2], sock.getpeername()[:2]
    if LINUX:
        row = _linux_row(remote, local)
        return row is not None and row[0] == _TCP_ESTABLISHED and row[1] == os.geteuid()
    owner = listener_owner(remote[1])
    return owner is not None and owner.mine


# ---------------------------------------------------------------- Linux
#
# Sockets are asked of the kernel through sock_diag (netlink, as `ss` does): an exact
# lookup of one connection, or the listening sockets only, in ~30 us whatever else is open.
# /proc/net/tcp{,6} says the same but lists every socket: 18 ms to read with 11,000
# TIME_WAIT rows (measured here), paid per connection. It is the fallback where sock_diag
# is missing (a kernel without inet_diag).

_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY = 4, 20
_NLM_F_REQUEST, _NLM_F_DUMP, _NLMSG_ERROR, _NLMSG_DONE = 1, 0x300, 2, 3
_TCP_ESTABLISHED, _TCP_LISTEN, _ALL_STATES = 1, 10, 0xFFF
_IPPROTO_TCP = 6
_diag_works: bool | None = None  # None: not tried yet in this process


class _Row:
    """One socket as the kernel reports it."""

    __slots__ = ("state", "local", "remote", "uid", "inode")

    def __init__(self, state: int, local: tuple, remote: tuple, uid: int, inode: int):
        self.state, self.local, self.remote = state, local, remote
        self.uid, self.inode = uid, inode


def _diag(family: int, states: int, exact: tuple | None = None) -> list[_Row] | None:
    """Sockets of `family` in `states` (a bit per TCP state), or the one whose (local,
    remote) addresses are `exact`; None when sock_diag cannot answer here."""
    global _diag_works
    if _diag_works is False or (exact is not None and not _diag_ready()):
        return None
    sockid = bytes(4) + bytes(32)
    if exact is not None:
        (src, sport), (dst, dport) = exact
        sockid = (sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
                  + _packed(src, family).ljust(16, b"\0") + _packed(dst, family).ljust(16, b"\0"))
    request = (bytes((family, _IPPROTO_TCP, 0, 0)) + states.to_bytes(4, "little") + sockid
               + bytes(4) + b"\xff" * 8)  # any interface; no cookie
    flags = _NLM_F_REQUEST | (0 if exact else _NLM_F_DUMP)
    message = ((16 + len(request)).to_bytes(4, "little")
               + _SOCK_DIAG_BY_FAMILY.to_bytes(2, "little") + flags.to_bytes(2, "little")
               + bytes(8) + request)
    try:
        sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, _NETLINK_SOCK_DIAG)
    except (OSError, AttributeError):
        _diag_works = False
        return None
    try:
        sock.settimeout(1.0)
        sock.sendto(message, (0, 0))
        rows, done = [], False
        while not done:
            data = sock.recv(65536)
            pos = 0
            while pos + 16 <= len(data):
                length = int.from_bytes(data[pos:pos + 4], "little")
                kind = int.from_bytes(data[pos + 4:pos + 6], "little")
                if kind == _NLMSG_DONE:
                    done = True
                    break
                if kind == _NLMSG_ERROR:
                    error = -int.from_bytes(data[pos + 16:pos + 20], "little", signed=True)
                    if exact is None:  # a dump fails only without a handler for TCP
                        _diag_works = False
                        return None
                    return [] if error == 2 else None  # ENOENT: no such socket
                rows.append(_row(data[pos + 16:pos + 16 + 72], family))
                pos += max(16, (length + 3) & ~3)
            done = done or exact is not None
    except OSError:
        return None
    finally:
        sock.close()
    _diag_works = True
    return rows


def _diag_ready() -> bool:
    """Whether sock_diag answers here: an exact lookup's "no such socket" is also what a
    kernel without its TCP handler says, so a dump of listeners tells them apart once."""
    if _diag_works is None:
        _diag(_socket.AF_INET, 1 << _TCP_LISTEN)
    return bool(_diag_works)


def _row(msg: bytes, family: int) -> _Row:
    """A struct inet_diag_msg: state at 1; sport, dport, src, dst from 4; uid and inode
    at 64 and 68."""
    size = 4 if family == _socket.AF_INET else 16
    src = _socket.inet_ntop(family, msg[8:8 + size])
    dst = _socket.inet_ntop(family, msg[24:24 + size])
    return _Row(msg[1], (src, int.from_bytes(msg[4:6], "big")),
                (dst, int.from_bytes(msg[6:8], "big")),
                int.from_bytes(msg[64:68], "little"), int.from_bytes(msg[68:72], "little"))


def _packed(host: str, family: int) -> bytes:
    if family == _socket.AF_INET6 and ":" not in host:
        host = f"::ffff:{host}"  # an IPv4 peer of an IPv6 socket is IPv4-mapped
    return _socket.inet_pton(family, host.split("%", 1)[0])


def _linux_row(own: tuple, other: tuple) -> tuple[int, int, int] | None:
    """(state, uid, inode) of the socket whose local address is `own` and remote address
    `other`, both (host, port); None when there is none (TIME_WAIT is no one's)."""
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            rows = _diag(family, _ALL_STATES, (own, other))
        except (OSError, ValueError):
            continue
        if rows is None:
            rows = _proc_rows(family, own, other)
        for row in rows:
            if row.state != 6:  # TCP_TIME_WAIT: a closed connection's leftover
                return row.state, row.uid, row.inode
    return None


def _linux_listener(port: int, pids: tuple[int, ...], scan: bool) -> Owner | None:
    me, found = os.geteuid(), None
    for family in (_socket.AF_INET, _socket.AF_INET6):
        rows = _diag(family, 1 << _TCP_LISTEN)
        if rows is None:
            rows = _proc_rows(family, None, None, listening=port)
        for row in rows:
            if row.local[1] != port or row.local[0] not in _REACHABLE:
                continue
            owner = Owner(row.uid, _linux_pid(row.inode, pids, scan), row.uid == me)
            if not owner.mine:
                return owner  # another user's: whatever else listens too
            found = found or owner
    return found


# the local addresses of listeners a connection to 127.0.0.1 (or ::1) can reach
_REACHABLE = frozenset(("127.0.0.1", "0.0.0.0", "::1", "::", "::ffff:127.0.0.1",
                        "::ffff:0.0.0.0"))


def _proc_rows(family: int, own: tuple | None, other: tuple | None,
               listening: int | None = None) -> list[_Row]:
    """The fallback: rows of /proc/net/tcp or tcp6 for one connection, or the listeners
    on port `listening`."""
    table = "/proc/net/tcp" if family == _socket.AF_INET else "/proc/net/tcp6"
    try:
        with open(table) as fh:
            text = fh.read()
        if listening is not None:
            needle = f":{listening:04X} "
        else:
            needle = (f"{_hex(own[0], family)}:{own[1]:04X} "
                      f"{_hex(other[0], family)}:{other[1]:04X} ")
    except (OSError, ValueError):
        return []
    rows, start = [], 0
    while (i := text.find(needle, start)) >= 0:
        start = i + len(needle)
        fields = text[text.rfind("\n", 0, i) + 1:text.find("\n", i)].split()
        if len(fields) < 10 or not fields[7].isdigit() or not fields[9].isdigit():
            continue
        state = int(fields[3], 16)
        if listening is not None and (state != _TCP_LISTEN
                                      or not fields[1].endswith(needle[:-1])):
            continue
        local, remote = _unhex(fields[1], family), _unhex(fields[2], family)
        rows.append(_Row(state, local, remote, int(fields[7]), int(fields[9])))
    return rows


def _hex(host: str, family: int) -> str:
    """An address as /proc/net/tcp(6) prints it: 32-bit words in host byte order."""
    packed = _packed(host, family)
    return "".join(f"{int.from_bytes(packed[i:i + 4], sys.byteorder):08X}"
                   for i in range(0, len(packed), 4))


def _unhex(field: str, family: int) -> tuple[str, int]:
    address, _, port = field.partition(":")
    packed = b"".join(int(address[i:i + 8], 16).to_bytes(4, sys.byteorder)
                      for i in range(0, len(address), 8))
    return _socket.inet_ntop(family, packed), int(port, 16)


def _linux_pid(inode: int, pids: tuple[int, ...], scan: bool) -> int | None:
    """The pid of a process holding socket `inode`, where this user may look."""
    if inode == 0:
        return None
    link = f"socket:[{inode}]"
    candidates: list = list(pids)
    if scan:
        try:
            candidates += [int(p) for p in os.listdir("/proc") if p.isdigit()]
        except OSError:
            pass
    for pid in dict.fromkeys(candidates):
        try:
            fds = os.scandir(f"/proc/{pid}/fd")
        except OSError:  # gone, or another user's
            continue
        with fds:
            for fd in fds:
                try:
                    if os.readlink(fd.path) == link:
                        return int(pid)
                except OSError:
                    continue
    return None


# ---------------------------------------------------------------- macOS and Windows


def _darwin():
    from aitrack.capture import listener_darwin  # macOS only (ctypes, libproc): when asked

    return listener_darwin


def _windows():
    from aitrack.capture import listener_windows  # Windows only (ctypes, iphlpapi): when asked

    return listener_windows


def accepts_connections(port: int, timeout: float = 0.2) -> bool:
    """Something accepts connections on 127.0.0.1:`port` (a connect sends no data)."""
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        sock.close()
