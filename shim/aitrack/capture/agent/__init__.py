"""The per-user agent: one loopback receiver that the tools' own settings point at.

It sees every run from every front end (terminal, IDE extensions, desktop apps, Codex's
background server), not only the runs that go through `aitrack claude|codex`. It is built
from the same parts as a wrapped run's receiver: the receiver (secret header, loopback
Host), the inbox and its processor (durable before 200, then attributes enforced, ledgered
and queued), the outbox and the forwarder. Only its lifetime and wiring differ: it listens
on a fixed port (`[agent] port`) for as long as the user is logged in, and its secret is a
per-user one kept in a 0600 file in a 0700 directory, never in an argument.

This package's own module is the agent as other processes see it: its secret, URL and pid
file, probing its port, starting it detached, stopping it, its status. The running agent is
`server.py`; the process that decodes what it received is `worker.py`.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from aitrack.capture.loopback import SECRET_HEADER, is_listening
from aitrack.capture.receiver import RUN_HEADER, STATUS_PATH
from aitrack.config.paths import Paths
from aitrack.config.private_files import (
    open_private,
    private_dir,
    read_private,
    tighten,
    write_private,
)
from aitrack.config.profile import Profile

DEFAULT_PORT = 47318
START_WAIT_S = 5.0
__all__ = ["DEFAULT_PORT", "RUN_HEADER", "SECRET_HEADER", "AgentError", "agent_dir",
           "ensure_secret", "is_listening", "probe", "secret_file", "spawn_detached",
           "start_detached", "status", "stop", "url"]


class AgentError(Exception):
    """One line for the user: what is wrong with the agent and how to fix it."""


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def agent_dir(paths: Paths) -> Path:
    return paths.state_dir / "agent"


def secret_file(paths: Paths) -> Path:
    return agent_dir(paths) / "secret"


def pid_file(paths: Paths) -> Path:
    return agent_dir(paths) / "agent.json"


def read_secret(paths: Paths) -> str | None:
    try:
        return read_private(secret_file(paths)).decode("ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def ensure_secret(paths: Paths) -> str:
    """The per-user secret, made once (0600 in a 0700 directory)."""
    private_dir(agent_dir(paths))
    secret = read_secret(paths)
    if secret:
        tighten(secret_file(paths))
        return secret
    secret = os.urandom(24).hex()
    write_private(secret_file(paths), secret.encode())
    return secret


def probe(port: int, secret: str | None, timeout: float = 1.0) -> str:
    """"free" (nothing listens), "agent" (this user's aitrack agent answers its status with
    this secret) or "other" (something else holds the port)."""
    if not is_listening(port, timeout):
        return "free"
    if secret is None:
        return "other"
    return "agent" if _status_of(port, secret, timeout) is not None else "other"


def _status_of(port: int, secret: str, timeout: float = 1.0) -> dict | None:
    """The agent's own status answer, or None when what answers is not this user's agent."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", STATUS_PATH, headers={SECRET_HEADER: secret})
        answer = conn.getresponse()
        data = json.loads(answer.read(65536)) if answer.status == 200 else None
    except (OSError, ValueError, http.client.HTTPException):
        data = None
    finally:
        conn.close()
    return data if isinstance(data, dict) and data.get("aitrack_agent") is True else None


def spawn_detached(paths: Paths) -> int:
    """Start `aitrack agent run` in a session of its own, without waiting for it."""
    private_dir(paths.log_dir)
    log = open_private(paths.log_dir / "agent.out", os.O_WRONLY | os.O_APPEND)
    env = {k: v for k, v in os.environ.items() if k != "AITRACK_SESSION_ID"}
    kw: dict = {"start_new_session": True}
    if sys.platform == "win32":  # untested here
        kw = {"creationflags": subprocess.DETACHED_PROCESS |
              subprocess.CREATE_NEW_PROCESS_GROUP}
    try:
        proc = subprocess.Popen([sys.executable, "-m", "aitrack", "agent", "run"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                close_fds=True, cwd=str(Path.home()), **kw)
    finally:
        os.close(log)
    return proc.pid


def start_detached(paths: Paths, profile: Profile) -> str:
    """Start the agent unless it runs; one line saying what happened. AgentError when the
    port is held by something else or the agent does not come up."""
    port = profile.agent.port
    secret = ensure_secret(paths)
    found = probe(port, secret)
    if found == "agent":
        return f"the agent is already running on {url(port)}"
    if found == "other":
        raise AgentError(port_taken(port))
    pid = spawn_detached(paths)
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        if probe(port, secret, 0.5) == "agent":
            return f"the agent is running on {url(port)} (pid {pid})"
        time.sleep(0.05)
    raise AgentError(f"the agent did not start within {START_WAIT_S:g} s: see "
                     f"{paths.log_dir / 'agent.out'} and run `aitrack doctor`")


def stop(paths: Paths, timeout_s: float = 5.0) -> bool:
    """Stop the running agent (SIGTERM, then wait); False when none was running."""
    info = _pid_info(paths)
    if info is None or not _is_agent_process(info.get("pid")):
        return False
    pid = info["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return False
    try:
        psutil.Process(pid).wait(timeout_s)
    except psutil.TimeoutExpired:
        os.kill(pid, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
    except psutil.NoSuchProcess:
        pass
    return True


def status(paths: Paths, profile: Profile) -> dict:
    """What `aitrack agent status` shows: never the secret."""
    port = profile.agent.port
    secret = read_secret(paths)
    found = probe(port, secret) if secret else ("free" if not is_listening(port) else "other")
    out = {"running": found == "agent", "port": port, "url": url(port), "port_owner": found,
           "pid": None, "version": None, "uptime_s": None, "received": None, "processed": None,
           "failed": None, "pending": None}
    if found == "agent":
        live = _status_of(port, secret) or {}
        out.update({k: live.get(k) for k in ("pid", "version", "uptime_s", "received",
                                             "processed", "failed", "pending")})
    return out


def port_taken(port: int) -> str:
    return (f"port {port} is used by another program, not aitrack's agent: stop it, or choose "
            "another port with `[agent] port = N` in your profile and run `aitrack agent "
            "install` again")


def _pid_info(paths: Paths) -> dict | None:
    try:
        return json.loads(pid_file(paths).read_text())
    except (OSError, ValueError):
        return None


def _is_agent_process(pid) -> bool:
    try:
        cmd = psutil.Process(int(pid)).cmdline()
    except (psutil.Error, TypeError, ValueError):
        return False
    return "aitrack" in " ".join(cmd) and cmd[-2:] == ["agent", "run"]
