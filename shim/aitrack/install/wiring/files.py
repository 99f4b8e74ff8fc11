"""Reading and writing the tools' settings files: through a link where that is safe, never
for a file that would hold the agent's key and is not the user's own, never for a read-only
one (the user made it so); written atomically with an exact mode, making (and later removing)
only the directories that were missing, and only over the bytes the plan was made from
(`unchanged`: the tool may rewrite its settings meanwhile). One install or uninstall at a
time (`locked`).
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from aitrack.config.private_files import open_private, private_dir

try:
    import pwd
except ImportError:  # Windows: files are owned by SIDs, not uids
    pwd = None
try:
    import fcntl
except ImportError:  # Windows: msvcrt's byte-range lock instead
    fcntl = None
    import msvcrt

LOCK_WAIT_S = 30.0

SECRET_MODE = 0o600  # a settings file that holds the agent's key


@dataclass
class SettingsFile:
    path: Path  # what the user knows the file as
    target: Path  # where its bytes are (a Claude settings link is written through)
    data: bytes | None  # None: it does not exist
    mode: int | None


def read(mod: ModuleType, path: Path) -> SettingsFile:
    """The file as it is now; `mod.SettingsError` when aitrack must not touch it."""
    target = path
    if path.is_symlink():
        if getattr(mod, "HOLDS_SECRET", False):
            raise mod.SettingsError(
                f"{path} is a symbolic link (to {os.readlink(path)}): aitrack would put the "
                "agent's key in the file it points to, which may be shared or under version "
                "control; replace the link with a copy of the file, then try again")
        target = path.resolve()
    try:
        st = os.stat(target)
        data = target.read_bytes()
    except FileNotFoundError:
        return SettingsFile(path, target, None, None)
    except OSError as exc:
        raise mod.SettingsError(f"cannot read {path}: {exc.strerror or exc}") from None
    if getattr(mod, "HOLDS_SECRET", False) and hasattr(os, "geteuid") and \
            st.st_uid != os.geteuid():
        owner = _user_name(st.st_uid)
        raise mod.SettingsError(
            f"{path} belongs to {owner}, not to you: it would hold the agent's key, so it "
            f"must be yours and private; run `sudo chown $USER {path}`, then try again")
    return SettingsFile(path, target, data, stat.S_IMODE(st.st_mode))


def writable_problem(file: SettingsFile) -> str | None:
    """Why aitrack must not (or cannot) replace this file, or None: a file its owner made
    read-only is the user's choice; a folder it cannot write (a read-only mount) would fail
    half-way."""
    if file.mode is not None and not file.mode & stat.S_IWUSR:
        return (f"{file.path} is read-only (mode {file.mode:04o}): aitrack leaves it as it "
                f"is; to wire it, make it writable (`chmod u+w {file.path}`) and run this again")
    folder = file.target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK):
        return (f"cannot write in {folder} (read-only, or not yours): give yourself write "
                "access to it, then run this again")
    return None


def unchanged(file: SettingsFile) -> bool:
    """The file is still as `file` read it: the same bytes (or still missing) and mode."""
    try:
        return file.target.read_bytes() == file.data and \
            stat.S_IMODE(os.stat(file.target).st_mode) == file.mode
    except FileNotFoundError:
        return file.data is None
    except OSError:
        return False


@contextmanager
def locked(lock: Path) -> Iterator[None]:
    """One install or uninstall at a time: an exclusive lock on `lock` (0600, made as
    needed); TimeoutError after LOCK_WAIT_S."""
    private_dir(lock.parent)
    fd = open_private(lock, os.O_RDWR)
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                else:  # pragma: no cover - Windows
                    msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another `aitrack agent install` or `uninstall` holds "
                                       f"{lock}: wait for it, then run this again") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def decode(mod: ModuleType, data: bytes, path: Path) -> str:
    """A settings file's text: both tools read them as UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise mod.SettingsError(f"{path} is not UTF-8 text: save it as UTF-8, then try "
                                "again") from None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name if pwd is not None else f"uid {uid}"
    except KeyError:
        return f"uid {uid}"


def _missing_dirs(directory: Path) -> list[Path]:
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return list(reversed(missing))


def write(target: Path, data: bytes, mode: int) -> list[str]:
    """Replace `target` with `data` atomically, with exactly `mode`; the directories it
    needed, made 0700, are returned (to remove them again at uninstall)."""
    made = _missing_dirs(target.parent)
    for directory in made:
        os.mkdir(directory, 0o700)
    tmp = target.with_name(f".{target.name}.aitrack-{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), mode)  # exactly, whatever the umask
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return [str(d) for d in made]


def remove_dirs(dirs: list[str]) -> None:
    for directory in reversed(dirs):
        try:
            os.rmdir(directory)  # only when empty: the tool may have put files there since
        except OSError:
            break


def default_mode() -> int:
    """The mode a new file gets from the umask (a settings file that held no key)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def home_relative(path: Path, env: Mapping[str, str]) -> str:
    """`~/...` for a file in the home directory, in messages."""
    home = env.get("HOME")
    if home and str(path).startswith(home.rstrip("/") + "/"):
        return "~/" + str(path)[len(home.rstrip("/")) + 1:]
    return str(path)
