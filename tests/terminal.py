"""Terminal UIs driven in tmux, on a tmux server of the test session's own.

The server's socket lives in the session's temporary directory, so a developer's own tmux
sessions are never touched, and the session check (conftest.py) sees the server as the suite's
until `close_server` stops it at the end.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

_socket: Path | None = None


def use_socket(path: Path) -> None:
    """Where the suite's tmux server listens (set once per session by conftest.py)."""
    global _socket
    _socket = path


def _tmux(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    assert _socket is not None, "tests/terminal.py: no tmux socket (conftest sets one)"
    # -f /dev/null: the developer's ~/.tmux.conf changes nothing here
    return subprocess.run(["tmux", "-f", "/dev/null", "-S", str(_socket), *args],
                          capture_output=True, text=True, check=check)


class Terminal:
    """One program in a tmux window of `width` x `height`, started in `cwd` with `env` over
    the server's environment (the test session's)."""

    def __init__(self, name: str, argv: list[str], cwd: Path, env: dict[str, str],
                 width: int = 200, height: int = 50):
        self.name = f"t{os.getpid()}-{name}"
        assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        command = f"cd {shlex.quote(str(cwd))} && exec env {assignments} " + " ".join(
            shlex.quote(a) for a in argv)
        # exit-empty off: the server outlives a closed last session (a new one right after
        # would race its exit); close_server stops it at the session's end
        _tmux("new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
              command, ";", "set-option", "-g", "exit-empty", "off", check=True)

    def screen(self) -> str:
        return _tmux("capture-pane", "-p", "-t", self.name).stdout

    def send(self, *keys: str, literal: bool = False) -> None:
        _tmux("send-keys", "-t", self.name, *(["-l"] if literal else []), *keys, check=True)

    def type(self, text: str) -> None:
        """Text typed as a user would, then Enter."""
        self.send(text, literal=True)
        time.sleep(0.2)
        self.send("Enter")

    def wait_for(self, *texts: str, timeout: float = 30.0) -> str:
        """The screen once any of `texts` shows on it; AssertionError with the screen if none
        does within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if any(t in screen for t in texts):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"none of {texts} on the screen after {timeout:g} s:\n"
                                     f"{screen}")
            time.sleep(0.25)

    def alive(self) -> bool:
        return _tmux("has-session", "-t", self.name).returncode == 0

    def close(self) -> None:
        _tmux("kill-session", "-t", self.name)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def close_server() -> None:
    if _socket is not None and _socket.exists():
        _tmux("kill-server")
