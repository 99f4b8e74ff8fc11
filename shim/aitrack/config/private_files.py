"""Files only their owner may read: the ledger, the caches, the logs, the agent's secret.

They hold a user's email, working directories and payloads, so they are 0600 files in 0700
directories, whatever the umask: created with that mode in the open call (no moment where
another user could open them), and an existing file or directory that group or others may
use loses those bits when aitrack next opens it. Making private only ever removes: a ledger
the user made read-only (0444 in a 0555 folder) stays read-only. Links are never followed
for a file aitrack creates (O_NOFOLLOW): a `ledger.db` or `forwarder.log` that is a
symbolic link is refused, never written through.

What another account made or may change is refused, as ssh refuses such files (NotYours,
one line naming the fix): a folder or file of aitrack's that is not the user's (another
account made the agent's folder first, and could swap the headers helper Claude Code runs),
and a folder on the way to it that others may write to (they could rename aitrack's folder
and put their own in place), unless it is sticky like /tmp. The way is checked up to the
user's home directory, or to / outside it.

Modes, owners and O_NOFOLLOW are POSIX; on Windows the user's profile directory already
keeps other users out, and these calls only create and open (untested: Windows).
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

try:
    import pwd
except ImportError:  # Windows: no uids (see the module docstring)
    pwd = None

FILE_MODE = 0o600
DIR_MODE = 0o700
POSIX = sys.platform != "win32"
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class LinkRefused(OSError):
    """A file aitrack creates is a symbolic link: refused, with the fix in the message."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class NotYours(PermissionError):
    """A folder or file of aitrack's that another account made or may change: refused, with
    the fix in the message (see the module docstring)."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name if pwd is not None else f"uid {uid}"
    except KeyError:
        return f"uid {uid}"


def not_yours(path: os.PathLike | str, st: os.stat_result) -> NotYours | None:
    """Why aitrack must not use a file or folder of its own it found like `st` (not the
    user's), or None."""
    if not POSIX or st.st_uid == os.geteuid():
        return None
    return NotYours(errno.EPERM, f"{path} belongs to {_owner(st.st_uid)}, not to you: "
                                 "another account could change what aitrack reads or runs "
                                 f"from it; move it aside (`sudo mv {path} {path}.suspect`) "
                                 "and run this again", str(path))


def check_way(path: os.PathLike | str) -> None:
    """NotYours when a folder on the way to `path` (its existing parents, up to the home
    directory or /) is another account's (root's aside) or writable by others without
    the sticky bit."""
    if not POSIX:
        return
    me, home = os.geteuid(), _home()
    folder = Path(os.path.abspath(path)).parent
    while True:
        try:
            st = os.stat(folder)
        except OSError:
            st = None
        if st is not None:
            if st.st_uid not in (me, 0):
                raise not_yours(folder, st)
            mode = stat.S_IMODE(st.st_mode)
            if mode & 0o022 and not mode & stat.S_ISVTX:
                raise NotYours(errno.EPERM, f"{folder} is writable by other accounts (mode "
                                            f"{mode:04o}): they could put their own files "
                                            f"in place of aitrack's; run `chmod go-w "
                                            f"{folder}` (or choose another folder), then run "
                                            "this again", str(folder))
        if str(folder) == home or folder == folder.parent:
            return
        folder = folder.parent


def _home() -> str | None:
    try:
        return os.path.abspath(pwd.getpwuid(os.geteuid()).pw_dir) if pwd is not None else None
    except KeyError:
        return None


def private_dir(path: os.PathLike | str) -> Path:
    """`path` as a 0700 directory: created (with any missing parents, 0700 too) or, when it
    already exists and is ours, tightened. Returns it as a Path."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    if probe == path:  # it exists: it must be ours (its mode is tightened below)
        refused = not_yours(path, os.stat(path))
        if refused:
            raise refused
        check_way(path)
    else:
        check_way(probe / "x")  # the existing part of the way, `probe` itself included
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:  # another aitrack made it meanwhile: tightened below
            continue
        _exact_mode(directory, DIR_MODE)  # the umask may have taken more than group/other
    if not missing or missing[0] != path:
        tighten(path, DIR_MODE)
    return path


def open_private(path: os.PathLike | str, flags: int, *, create: bool = True) -> int:
    """An fd of `path`, created 0600 when `create` and missing, never through a symbolic
    link. An existing file of ours that others could read is tightened to 0600."""
    flags |= NOFOLLOW | CLOEXEC | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except OSError as exc:
        if NOFOLLOW and os.path.islink(path):
            raise LinkRefused(exc.errno, f"{path} is a symbolic link: aitrack does not write "
                                         "through links; remove it (`rm` it, not its target)",
                              str(path)) from None
        raise
    if POSIX:
        try:
            st = os.fstat(fd)
            refused = not_yours(path, st)
            if refused:
                raise refused
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
                os.fchmod(fd, stat.S_IMODE(st.st_mode) & ~0o077)
        except OSError:
            os.close(fd)
            raise
    return fd


def read_private(path: os.PathLike | str, limit: int = 1 << 20) -> bytes:
    """A private file's bytes (at most `limit`): never through a link, never another
    account's (NotYours)."""
    fd = open_private(path, os.O_RDONLY, create=False)
    with os.fdopen(fd, "rb") as fh:
        return fh.read(limit)


def write_private(path: os.PathLike | str, data: bytes) -> None:
    """Replace `path` with `data` atomically: a new 0600 file renamed over it (a link at
    `path` is replaced, never followed). The directory is made private first."""
    path = Path(path)
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_EXCL)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def database_uri(path: os.PathLike | str) -> str:
    """Make a SQLite database private before SQLite opens it, and the URI to open it with.

    The file is created 0600 here (SQLite would make it 0644, and gives its -wal and -shm
    files the database file's mode); none of the three may be a link; `nofollow=1` has
    SQLite refuse a link swapped in meanwhile.
    """
    import sqlite3  # the ledger only: a start-up cache miss loads this module before the tool

    path = Path(path).absolute()
    private_dir(path.parent)
    if os.path.islink(path):
        raise LinkRefused(40, f"{path} is a symbolic link: aitrack does not write through "
                              "links; remove it (`rm` it, not its target)", str(path))
    if os.path.exists(path):
        # Never open and close an existing database here: closing any descriptor of a file
        # drops every POSIX lock this process holds on it, those of its open connections
        # too, and another process could then delete the WAL under them (SQLite's
        # documented hazard). Its owner is checked and its mode tightened by path instead.
        _refuse_others(path)
        tighten(path)
    else:
        try:
            os.close(open_private(path, os.O_RDWR | os.O_EXCL))
        except FileExistsError:  # another process created it meanwhile
            tighten(path)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + suffix)
        if os.path.islink(companion):
            raise LinkRefused(40, f"{companion} is a symbolic link: aitrack does not write "
                                  "through links; remove it (`rm` it, not its target)",
                              str(companion))
        _refuse_others(companion)
        tighten(companion)
    nofollow = "?nofollow=1" if sqlite3.sqlite_version_info >= (3, 31) else ""
    return path.as_uri() + nofollow


def _refuse_others(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    refused = not_yours(path, st)
    if refused:
        raise refused


def tighten(path: os.PathLike | str, mode: int = FILE_MODE) -> bool:
    """Take group's and others' bits from an existing file or directory of ours (`mode`, 0600
    or 0700, is what aitrack creates; never more is given back: a read-only file stays so).
    A link is left alone. True when something was changed."""
    if not POSIX:
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    current = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid() or not current & ~mode & 0o077:
        return False
    try:
        os.chmod(path, current & ~0o077)
    except OSError:
        return False
    return True


def loose(path: os.PathLike | str) -> bool:
    """True when group or others may use `path` (an existing file or directory)."""
    if not POSIX:
        return False
    try:
        return bool(os.stat(path).st_mode & 0o077)
    except OSError:
        return False


def _exact_mode(path: Path, mode: int) -> None:
    if POSIX:
        try:
            if stat.S_IMODE(os.lstat(path).st_mode) != mode:
                os.chmod(path, mode)
        except OSError:
            pass
