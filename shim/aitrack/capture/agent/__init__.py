"""The per-user agent: one loopback receiver that the tools' own settings point at.

It sees every run from every front end (terminal, IDE extensions, desktop apps, Codex's
background server), not only the runs that go through `aitrack claude|codex`. It is built
from the same parts as a wrapped run's receiver: the receiver (secret header, loopback
Host, the peer's account), the inbox and its processor (durable before 200, then attributes
enforced, ledgered and queued), the outbox and the forwarder. Only its lifetime and wiring
differ: it listens on this user's port (ports.py) for as long as the user is logged in, and
its keys are per-user ones kept in 0600 files in a 0700 directory, never in an argument:
- `secret`, made once: for tools whose settings hold static headers (Codex's config.toml);
- `session-key`, made again at every agent start: for tools that run a headers helper at
  each start (Claude Code's otelHeadersHelper reads it). The agent also takes the one
  before it, which running sessions keep for up to 29 minutes.

Its port is trusted by the account that holds it, never by what answers there (any user
can bind a free port and answer like the agent): see `check_port`.

This package's own module is the agent as other processes see it: its keys, URL and pid
file, checking its port, starting it detached, stopping it, its status. The running agent
is `server.py`; the process that decodes what it received is `worker.py`.
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

from aitrack.capture import listener
from aitrack.capture.listener import Owner
from aitrack.capture.loopback import SECRET_HEADER
from aitrack.capture.ports import agent_dir, agent_port, choose
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

START_WAIT_S = 5.0
__all__ = ["RUN_HEADER", "SECRET_HEADER", "AgentError", "PortCheck", "agent_dir",
           "agent_port", "check_port", "choose", "ensure_secret", "probe", "secret_file",
           "session_key_file", "spawn_detached", "start_detached", "status", "stop", "url"]


class AgentError(Exception):
    """One line for the user: what is wrong with the agent and how to fix it."""


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def secret_file(paths: Paths) -> Path:
    """The static key: for tools whose settings hold it (Codex)."""
    return agent_dir(paths) / "secret"


def session_key_file(paths: Paths) -> Path:
    """The key made at each agent start: for tools whose headers helper reads it (Claude)."""
    return agent_dir(paths) / "session-key"


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


class PortCheck:
    """Who holds the agent's port: `state` is "free", "agent" (this user's agent: its
    process holds the listening socket), "other" (another program of this user's) or
    "foreign" (another user's: nothing may be sent there); `owner` names the holder, and
    `live` is the agent's own status answer."""

    __slots__ = ("state", "owner", "live")

    def __init__(self, state: str, owner: Owner | None = None, live: dict | None = None):
        self.state, self.owner, self.live = state, owner, live


def check_port(port: int, secret: str | None, paths: Paths | None = None,
               timeout: float = 1.0) -> PortCheck:
    """Who holds `port`, asked of the OS first: only a listener of this user's is asked
    its status (with the key), and it is the agent only if the process that answers as the
    agent holds the listening socket (where the OS shows pids)."""
    hint = _agent_pids(paths)
    owner = listener.listener_owner(port, hint)
    if owner is None:
        return PortCheck("free")
    if not owner.mine:
        if owner.pid is None:  # named where this user may see it (root may)
            owner = listener.listener_owner(port, scan=True) or owner
        return PortCheck("foreign", owner)
    live = _status_of(port, secret, timeout) if secret else None
    if live is None:
        return PortCheck("other", owner)
    pid = live.get("pid")
    if owner.pid != pid and isinstance(pid, int):  # e.g. systemd held it until now
        owner = listener.listener_owner(port, (pid,)) or owner
    if owner.pid is not None and owner.pid != pid:
        return PortCheck("other", owner)
    return PortCheck("agent", owner, live)


def probe(port: int, secret: str | None, timeout: float = 1.0,
          paths: Paths | None = None) -> str:
    """check_port's state: "free", "agent", "other" or "foreign"."""
    return check_port(port, secret, paths, timeout).state


def _agent_pids(paths: Paths | None) -> tuple[int, ...]:
    info = _pid_info(paths) if paths is not None else None
    pid = info.get("pid") if isinstance(info, dict) else None
    return (pid,) if isinstance(pid, int) else ()


def _status_of(port: int, secret: str, timeout: float = 1.0) -> dict | None:
    """The agent's own status answer, or None when what answers is not this user's agent
    (the listener is checked again once connected, before the key is sent)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.connect()
        if not listener.server_is_mine(conn.sock):
            return None
        conn.request("GET", STATUS_PATH, headers={SECRET_HEADER: secret})
        answer = conn.getresponse()
        data = json.loads(answer.read(65536)) if answer.status == 200 else None
    except (OSError, ValueError, http.client.HTTPException):
        data = None
    finally:
        conn.close()
    return data if isinstance(data, dict) and data.get("aitrack_agent") is True else None


def held_by(check: PortCheck, port: int) -> str:
    """Why the agent cannot use `port`, in one line naming the fix."""
    if check.state == "foreign":
        return (f"port {port} is held by {check.owner.named()}, another user, not your "
                "agent: aitrack sends it nothing. Ask them (or an admin) to free it, or give "
                "your agent another port: `[agent] port = N` in your profile, then `aitrack "
                "agent install`")
    where = f" (pid {check.owner.pid})" if check.owner and check.owner.pid else ""
    return (f"port {port} is used by another program of yours{where}, not aitrack's agent: "
            "stop it, or choose another port with `[agent] port = N` in your profile and run "
            "`aitrack agent install` again")


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
    port = choose(paths, profile)
    secret = ensure_secret(paths)
    found = check_port(port, secret, paths)
    if found.state == "agent":
        return f"the agent is already running on {url(port)}"
    if found.state != "free":
        raise AgentError(held_by(found, port))
    pid = spawn_detached(paths)
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        found = check_port(port, secret, paths, 0.5)
        if found.state == "agent":
            return f"the agent is running on {url(port)} (pid {pid})"
        if found.state == "foreign":  # taken while it started
            raise AgentError(held_by(found, port))
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
    """What `aitrack agent status` shows: never a key. `port_owner` is check_port's state;
    `holder` names the uid and pid holding the port where the OS shows them."""
    port = agent_port(paths, profile)
    out = {"running": False, "port": port, "url": url(port) if port else None,
           "port_owner": None, "holder": None, "pid": None, "version": None,
           "uptime_s": None, "received": None, "processed": None, "failed": None,
           "pending": None}
    if port is None:
        return out
    found = check_port(port, read_secret(paths), paths)
    out.update({"running": found.state == "agent", "port_owner": found.state,
                "holder": {"uid": found.owner.uid, "pid": found.owner.pid}
                if found.owner else None})
    if found.live:
        out.update({k: found.live.get(k) for k in ("pid", "version", "uptime_s", "received",
                                                   "processed", "failed", "pending")})
    return out


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


def rotate_session_key(paths: Paths) -> tuple[str, str | None]:
    """A new session key (an agent starts), and the one before it: Claude Code keeps its
    helper's answer for up to 29 minutes, so its running sessions still send that one."""
    private_dir(agent_dir(paths))
    try:
        before = session_key_file(paths).read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        before = None
    key = os.urandom(24).hex()
    write_private(session_key_file(paths), key.encode())
    return key, before
