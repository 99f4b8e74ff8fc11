"""Find the real tool, start it, relay signals, and hand back its exit status.

The child inherits the terminal and stdio. aitrack's exit status is the child's, or
128 + N when signal N killed it.
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` wraps it in enums, ~1.5 ms of imports
import os
import sys

SHIM_MARKER = b"aitrack-shim"  # must match shims.SHIM_MARKER; kept here to avoid an import
EXIT_NOT_FOUND = 127
EXIT_NOT_RUNNABLE = 126


def find_real_binary(name: str, override_var: str | None, shim_dir: str,
                     env: dict[str, str] | None = None) -> str | None:
    """The override if set, else the first `name` on PATH that is not an aitrack shim."""
    env = os.environ if env is None else env
    if override_var and env.get(override_var):
        return env[override_var]
    skip_dirs = {_real(shim_dir)} if shim_dir else set()  # realpath("") would be the cwd
    me = _real(sys.argv[0]) if sys.argv and sys.argv[0] else None
    for entry in env.get("PATH", os.defpath).split(os.pathsep):
        if not entry or _real(entry) in skip_dirs:
            continue
        for candidate in _candidates(entry, name, env):
            if _is_runnable(candidate) and _real(candidate) != me and not is_shim(candidate):
                return str(candidate)
    return None


def _candidates(directory: str, name: str, env: dict[str, str]) -> list[str]:
    if sys.platform != "win32":
        return [os.path.join(directory, name)]
    exts = env.get("PATHEXT", ".COM;.EXE;.BAT;.CMD").lower().split(";")
    return [os.path.join(directory, name + ext) for ext in exts if ext]


def _real(path: str) -> str:
    try:
        return os.path.realpath(path)
    except OSError:
        return path


def _is_runnable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def is_shim(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return SHIM_MARKER in fh.read(512)
    except OSError:
        return False


class Child:
    """The wrapped tool. Signal relaying starts before the spawn so none is lost meanwhile."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.proc = None  # Windows: a subprocess.Popen
        self.pending: list[int] = []
        self.previous = _relay_signals(self)

    def start(self, argv: list[str], env: dict[str, str]) -> None:
        """Start in aitrack's process group, so the terminal's signals reach it directly.

        posix_spawn keeps `subprocess` (~6 ms of imports) off the start-up path.
        """
        try:
            if sys.platform == "win32":
                import subprocess  # Windows only: posix_spawn elsewhere (start-up path)

                self.proc = subprocess.Popen(argv, env=env)
                self.pid = self.proc.pid
            else:
                self.pid = os.posix_spawn(argv[0], argv, env)
        except BaseException:
            self.restore()
            raise
        for signum in self.pending:
            self.send(signum)

    def send(self, signum: int) -> None:
        if self.pid is None:
            self.pending.append(signum)
            return
        try:
            os.kill(self.pid, signum)
        except (ProcessLookupError, OSError):
            pass

    def wait(self) -> int:
        """Wait for the child; its exit status, shell-style (128 + N if signal N killed it)."""
        assert self.pid is not None
        try:
            while True:
                try:
                    if self.proc is not None:
                        return exit_status(self.proc.wait())
                    _, status = os.waitpid(self.pid, 0)
                    return exit_status(os.waitstatus_to_exitcode(status))
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
