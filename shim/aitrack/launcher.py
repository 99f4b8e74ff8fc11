"""Find the real tool, start it, relay signals, and hand back its exit status.

The child inherits the terminal and stdio. aitrack's exit status is the child's, or
128 + N when signal N killed it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

SHIM_MARKER = b"aitrack-shim"  # must match shims.SHIM_MARKER; kept here to avoid an import
EXIT_NOT_FOUND = 127
EXIT_NOT_RUNNABLE = 126


def find_real_binary(name: str, override_var: str | None, shim_dir: Path,
                     env: dict[str, str] | None = None) -> str | None:
    """The override if set, else the first `name` on PATH that is not an aitrack shim."""
    env = os.environ if env is None else env
    if override_var and env.get(override_var):
        return env[override_var]
    skip_dirs = {_real(shim_dir)}
    me = _real(Path(sys.argv[0])) if sys.argv and sys.argv[0] else None
    for entry in env.get("PATH", os.defpath).split(os.pathsep):
        if not entry or _real(Path(entry)) in skip_dirs:
            continue
        for candidate in _candidates(Path(entry), name, env):
            if _is_runnable(candidate) and _real(candidate) != me and not is_shim(candidate):
                return str(candidate)
    return None


def _candidates(directory: Path, name: str, env: dict[str, str]) -> list[Path]:
    if sys.platform != "win32":
        return [directory / name]
    exts = env.get("PATHEXT", ".COM;.EXE;.BAT;.CMD").lower().split(";")
    return [directory / (name + ext) for ext in exts if ext]


def _real(path: Path) -> str:
    try:
        return os.path.realpath(path)
    except OSError:
        return str(path)


def _is_runnable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def is_shim(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return SHIM_MARKER in fh.read(512)
    except OSError:
        return False


class Child:
    """The wrapped tool. Signal relaying starts before the spawn so none is lost meanwhile."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.pending: list[int] = []
        self.previous = _relay_signals(self)

    def start(self, argv: list[str], env: dict[str, str]) -> None:
        """Start in aitrack's process group, so the terminal's signals reach it directly."""
        try:
            self.proc = subprocess.Popen(argv, env=env)
        except BaseException:
            self.restore()
            raise
        for signum in self.pending:
            self.send(signum)

    def send(self, signum: int) -> None:
        if self.proc is None:
            self.pending.append(signum)
            return
        try:
            self.proc.send_signal(signum)
        except ProcessLookupError:
            pass

    def wait(self) -> int:
        """Wait for the child; its exit status, shell-style (128 + N if signal N killed it)."""
        assert self.proc is not None
        try:
            while True:
                try:
                    return exit_status(self.proc.wait())
                except KeyboardInterrupt:  # Windows: the console sent Ctrl-C to both of us
                    continue
        finally:
            self.restore()

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}


def exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _relay_signals(child: Child) -> dict[int, object]:
    if sys.platform == "win32":  # untested here: console Ctrl-C reaches every process
        return {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
    previous = {}

    def relay(signum: int, _frame) -> None:
        # Keyboard signals already reached the child when we share the terminal's
        # foreground group; relaying them again would send a second Ctrl-C.
        if signum in (signal.SIGINT, signal.SIGWINCH, signal.SIGQUIT) and _foreground():
            return
        child.send(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGWINCH, signal.SIGQUIT,
                signal.SIGUSR1, signal.SIGUSR2):
        previous[sig] = signal.signal(sig, relay)
    return previous


def _foreground() -> bool:
    """True when aitrack's process group owns the controlling terminal."""
    for fd in (0, 1, 2):
        try:
            return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False
