"""Issue 18, the agent's port: one per user, and trusted by the account that holds it,
never by what answers there. Another local user is a throwaway OS account (adversary.py)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from adversary import SYSTEM_PYTHON, other_user, popen_as
from aitrack.capture import agent, listener, ports
from aitrack.config import paths, profile
from aitrack.config.schema import PORT_SPAN
from otlp_client import Conn

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the owner is asked of Linux here (macOS, Windows: "
                                       "written, untested)")
REPO = Path(__file__).resolve().parent.parent

# A listener that answers like the agent: its status, run events and exports all get 200
# and the agent's own words. Each request it receives is printed as one JSON line.
SQUATTER = r"""
import json, os, socket, sys, threading
port = int(sys.argv[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(64)
print("listening", flush=True)
lock = threading.Lock()
def serve(c):
    c.settimeout(10)
    data = b""
    try:
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
            while b"\r\n\r\n" in data:
                head, _, rest = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(rest) < length:
                    break
                body, data = rest[:length], rest[length:]
                with lock:
                    print(json.dumps({"head": head.decode("latin-1"),
                                      "body": body.decode("latin-1")}), flush=True)
                path = head.split(b" ")[1].decode()
                answer = json.dumps({"recorded": "end"} if path.endswith("/end") else
                                    {"recorded": "start"} if path.endswith("/start") else
                                    {"aitrack_agent": True, "pid": os.getpid()}).encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(answer) + answer)
    except OSError:
        pass
    finally:
        c.close()
while True:
    conn, _ = s.accept()
    with lock:
        print(json.dumps({"connection": True}), flush=True)
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


class Squatter:
    """Another user's listener on a port: what it received, line by line."""

    def __init__(self, user, port: int):
        self.proc = popen_as(user, SQUATTER, str(port))
        line = self.proc.stdout.readline().strip()
        assert line == "listening", self.proc.stderr.read()
        self.user, self.port = user, port

    def received(self) -> list[dict]:
        self.proc.kill()
        out, _ = self.proc.communicate(timeout=10)
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- who holds a port


def test_the_owner_of_a_listener_is_read_from_the_kernel():
    with socket.socket() as mine:
        mine.bind(("127.0.0.1", 0))
        mine.listen()
        port = mine.getsockname()[1]
        owner = listener.listener_owner(port, scan=True)
        assert (owner.uid, owner.pid, owner.mine) == (os.geteuid(), os.getpid(), True)
    assert listener.listener_owner(port) is None
    with socket.socket(socket.AF_INET6) as wildcard:  # [::] also takes 127.0.0.1's connects
        wildcard.bind(("::", 0))
        wildcard.listen()
        assert listener.listener_owner(wildcard.getsockname()[1]).mine


def test_another_users_listener_is_named_by_uid_and_pid():
    port = free_port()
    with other_user() as user:
        squatter = Squatter(user, port)
        try:
            owner = listener.listener_owner(port, scan=True)  # root sees every pid
            assert (owner.uid, owner.pid, owner.mine) == (user.uid, squatter.proc.pid, False)
            assert owner.named() == f"uid {user.uid} (pid {squatter.proc.pid})"
        finally:
            assert squatter.received() == []  # asking the kernel connects to nothing


def test_without_sock_diag_proc_net_tcp_says_the_same(monkeypatch):
    monkeypatch.setattr(listener, "_diag_works", False)
    port = free_port()
    with other_user() as user:
        squatter = Squatter(user, port)
        try:
            owner = listener.listener_owner(port)
            assert (owner.uid, owner.mine) == (user.uid, False)
        finally:
            squatter.received()


# ---------------------------------------------------------------- one port per user


def test_install_chooses_a_free_port_and_remembers_it(home, tmp_path):
    where = paths.resolve(home.env)
    prof = profile.load(where, home.env)
    assert ports.agent_port(where, prof) is None  # nothing installed: no port at all
    first = ports.CHOICE_FIRST + os.geteuid() % PORT_SPAN
    with socket.socket() as taken:  # the first candidate is busy: another is chosen
        taken.bind(("127.0.0.1", first))
        taken.listen()
        chosen = ports.choose(where, prof)
    assert chosen != first and ports.CHOICE_FIRST <= chosen < ports.CHOICE_FIRST + PORT_SPAN
    assert ports.agent_port(where, prof) == chosen == ports.choose(where, prof)  # remembered
    assert (ports.port_file(where).stat().st_mode & 0o077) == 0

    home.write_managed_profile("[agent]\nport_base = 30000\n")  # IT's rule for shared hosts
    prof = profile.load(where, home.env)
    assert ports.agent_port(where, prof) == 30000 + os.geteuid() % PORT_SPAN
    home.write_user_profile("[agent]\nport = 41234\n")  # the managed base wins the table...
    assert ports.agent_port(where, profile.load(where, home.env)) == 30000 + os.geteuid()
    home.write_managed_profile("")
    assert ports.agent_port(where, profile.load(where, home.env)) == 41234  # ...else, explicit


def test_an_install_from_before_per_user_ports_keeps_its_port(home):
    where = paths.resolve(home.env)
    ports.legacy_marker(where).parent.mkdir(parents=True)
    ports.legacy_marker(where).write_text('{"version": 1, "files": {}}')
    assert ports.agent_port(where, profile.load(where, home.env)) == ports.LEGACY_PORT


def test_port_base_is_validated(home):
    path = home.write_managed_profile(f"[agent]\nport_base = {65536 - PORT_SPAN + 1}\n")
    shown = home.run("profile", "validate", str(path))
    assert shown.returncode != 0 and "port_base" in shown.stdout + shown.stderr


def _aitrack_for(user) -> dict[str, str] | None:
    """The environment in which `user` runs this checkout's aitrack with the system Python
    (the venv's interpreter lives under /root), or None when it cannot (a CI checkout
    other users may not read)."""
    site = next((REPO / ".venv" / "lib").glob("python3*/site-packages"), None)
    python = next((p for p in SYSTEM_PYTHON if os.access(p, os.X_OK)), None)
    if site is None or python is None or \
            f"{sys.version_info[0]}.{sys.version_info[1]}" not in site.parent.name:
        return None
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "PYTHONPATH": f"{REPO / 'shim'}:{site}"}
    probe = subprocess.run([python, "-c", "import aitrack.capture.agent.server"], env=env,
                           user=user.uid, group=user.gid, extra_groups=[], cwd="/",
                           capture_output=True, timeout=60)
    return env if probe.returncode == 0 else None


def test_two_users_on_one_machine_get_two_agents(home):
    """A shared dev server: IT sets `[agent] port_base`; each user's agent listens on its
    own port and holds it, the two at once (they collided on 47318 before)."""
    base = 31000 + int.from_bytes(os.urandom(1), "big") * 8
    with other_user() as user:
        env = _aitrack_for(user)
        if env is None:
            pytest.skip("the other user cannot run this checkout's aitrack")
        shared = Path(tempfile.mkdtemp(prefix="aitrack-two-users-", dir="/tmp"))
        agents = []
        try:
            shared.chmod(0o755)
            managed = shared / "profile.toml"
            managed.write_text(f"[agent]\nport_base = {base}\n")
            managed.chmod(0o644)
            theirs = shared / "other-home"
            theirs.mkdir()
            os.chown(theirs, user.uid, user.gid)
            home.write_managed_profile(managed.read_text())
            mine_port = base + os.geteuid() % PORT_SPAN
            their_port = base + user.uid % PORT_SPAN
            assert mine_port != their_port
            agents.append(subprocess.Popen(
                [sys.executable, "-m", "aitrack", "agent", "run"], env=home.env,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
            agents.append(subprocess.Popen(
                [next(p for p in SYSTEM_PYTHON if os.access(p, os.X_OK)), "-m", "aitrack",
                 "agent", "run"], env={**env, "AITRACK_HOME": str(theirs),
                                       "AITRACK_MANAGED_PROFILE": str(managed)},
                user=user.uid, group=user.gid, extra_groups=[], cwd="/",
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
            where = paths.resolve(home.env)
            secret = agent.ensure_secret(where)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                mine = agent.check_port(mine_port, secret, where)
                theirs_owner = listener.listener_owner(their_port, scan=True)
                if mine.state == "agent" and theirs_owner is not None:
                    break
                time.sleep(0.1)
            assert mine.state == "agent" and mine.owner.pid == agents[0].pid, \
                agents[0].stderr.read() if agents[0].poll() is not None else mine.state
            assert theirs_owner is not None, agents[1].stderr.read() \
                if agents[1].poll() is not None else "their agent is not listening"
            assert (theirs_owner.uid, theirs_owner.pid) == (user.uid, agents[1].pid)
            # to each user the other's agent is another user's: nothing is sent to it
            assert agent.check_port(their_port, secret, where).state == "foreign"
        finally:
            for proc in agents:
                proc.terminate()
                proc.wait(15)
            shutil.rmtree(shared, ignore_errors=True)


# ---------------------------------------------------------------- nothing sent to a squatter


def test_doctor_status_and_start_name_the_squatter_and_send_it_nothing(home):
    """Issue 18: a listener that answers like the agent made status, doctor and start report
    a healthy agent, and `agent.probe()` sent it the key. The port's owner decides now."""
    port = free_port()
    home.write_user_profile(f"[agent]\nport = {port}\n")
    secret = agent.ensure_secret(paths.resolve(home.env))
    with other_user() as user:
        squatter = Squatter(user, port)
        try:
            doctor = home.run("doctor", "--json", timeout=120)
            [check] = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "agent"]
            status = home.run("agent", "status")
            started = home.run("agent", "start")
        finally:
            received = squatter.received()
    named = f"uid {user.uid} (pid {squatter.proc.pid})"
    assert check["status"] == "FAIL" and named in check["summary"], check
    assert check["data"]["holder"] == {"uid": user.uid, "pid": squatter.proc.pid}
    assert status.returncode == 1 and "FAIL" in status.stdout and named in status.stdout
    assert started.returncode != 0 and named in started.stderr
    assert received == []  # not a connection, let alone the key
    assert secret not in doctor.stdout + status.stdout + started.stderr


# ---------------------------------------------------------------- the key at each start


def test_the_helper_key_is_new_at_each_agent_start_and_the_static_key_stays(home):
    """Claude Code's helper reads the key at each start, so it changes at every agent start
    (the one before is still taken: a running session keeps its helper's answer for up to
    29 minutes); Codex's config.toml holds the static key, which stays."""
    import otlp_client as oc

    port = free_port()
    home.write_user_profile(f"[agent]\nport = {port}\n")
    where = paths.resolve(home.env)
    secret = agent.ensure_secret(where)
    body = json.dumps(oc.metrics(oc.sum_metric("x", [oc.point(1)]))).encode()
    keys = []
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "aitrack", "agent", "run"],
                                env=home.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            for _ in range(200):
                if agent.probe(port, secret, paths=where) == "agent":
                    break
                time.sleep(0.05)
            keys.append(agent.session_key_file(where).read_text().strip())
            taken = {key: oc.post(port, key, "/v1/metrics", body).status
                     for key in (secret, *keys)}
        finally:
            proc.terminate()
            proc.wait(15)
    assert len(set(keys)) == 3 and secret not in keys
    assert taken == {secret: 200, keys[0]: 401, keys[1]: 200, keys[2]: 200}


KEYLESS = r"""
import http.client, sys
port, body = int(sys.argv[1]), sys.argv[2].encode()
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
try:
    conn.request("POST", "/v1/metrics", body, {"Host": f"127.0.0.1:{port}",
                                                "Content-Type": "application/json"})
    print(conn.getresponse().status)
except OSError as exc:  # refused at accept: the connection is closed
    print(type(exc).__name__)
"""


def test_an_export_without_a_key_is_taken_from_this_user_only(home):
    """Gemini CLI and Qwen Code cannot send a header from their settings: the agent takes an
    export without its key when the OS names this user at the other end, never another's,
    and never for the agent's own paths (status, run events)."""
    import otlp_client as oc

    port = free_port()
    home.write_user_profile(f"[agent]\nport = {port}\n")
    where = paths.resolve(home.env)
    secret = agent.ensure_secret(where)
    body = json.dumps(oc.metrics(oc.sum_metric("x", [oc.point(1)])))
    proc = subprocess.Popen([sys.executable, "-m", "aitrack", "agent", "run"], env=home.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            if agent.probe(port, secret, paths=where) == "agent":
                break
            time.sleep(0.05)
        mine = subprocess.run([sys.executable, "-c", KEYLESS, str(port), body],
                              capture_output=True, text=True, timeout=30)
        assert mine.stdout.strip() == "200", mine.stderr
        with Conn(port) as conn:  # a wrong key is still refused, whoever sends it
            answer = conn.request("POST", "/v1/metrics",
                                  oc.otlp_headers(port, "wrong", oc.JSON), body.encode())
        assert answer.status == 401
        with Conn(port) as conn:
            status = conn.request("GET", "/aitrack/status", {"Host": f"127.0.0.1:{port}"}, b"")
        assert status.status == 401  # the agent's own paths always want the key
        with other_user() as user:
            theirs = popen_as(user, KEYLESS, str(port), body)
            out, err = theirs.communicate(timeout=30)
        assert out.strip() != "200", (out, err)
    finally:
        proc.terminate()
        proc.wait(15)
