"""The agent's per-user service: the files for systemd, launchd and Task Scheduler, and the
install/uninstall steps, run against stand-in `systemctl`/`launchctl`/`schtasks` commands
that really start what the unit file or plist says (there is no user service manager in CI
containers); the real systemd user manager where one is running."""

from __future__ import annotations

import configparser
import json
import os
import plistlib
import shlex
import shutil
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from aitrack.capture import agent
from aitrack.config import paths, profile
from aitrack.install import service, wiring

FAKE = r'''
import json, os, plistlib, shlex, signal, subprocess, sys, time
from pathlib import Path

tool, args = Path(sys.argv[0]).name, sys.argv[1:]
log = Path(os.environ["FAKE_SERVICE_LOG"])
with log.open("a") as fh:
    fh.write(json.dumps([tool, *args]) + "\n")
state = log.with_suffix(".pid")


def alive():
    try:
        os.kill(int(state.read_text()), 0)
        return True
    except (OSError, ValueError):
        return False


def spawn(argv, env):
    base = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    proc = subprocess.Popen(argv, env={**base, **env}, start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    state.write_text(str(proc.pid))


def kill():
    if alive():
        pid = int(state.read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.05)
    state.unlink(missing_ok=True)


def unit_command(text):
    argv, env = [], {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        value = value.replace("%%", "%")
        if key == "ExecStart":
            argv = shlex.split(value.replace("$$", "$"))
        elif key == "Environment":  # no variables expand here
            env.update(a.split("=", 1) for a in shlex.split(value))
    return argv, env


code = 0
if tool == "systemctl":
    args = [a for a in args if a != "--user"]
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path(os.environ["HOME"]) / ".config")
    # a socket unit is only written here: the agent it would hand the port binds it itself
    units = [a for a in args[1:] if a.endswith(".service")]
    unit = config / "systemd" / "user" / (units[-1] if units else args[-1])
    if units == [] and args[0] in ("start", "restart", "stop"):
        pass
    elif args[0] == "is-active":
        code = 0 if alive() else 3
    elif args[0] in ("start", "restart"):
        if args[0] == "restart":
            kill()
        if not alive():
            spawn(*unit_command(unit.read_text()))
    elif args[0] == "stop" or args[:2] == ["disable", "--now"]:
        kill()
elif tool == "launchctl":
    if args[0] == "print":
        code = 0 if args[1].count("/") == 1 or alive() else 113
    elif args[0] == "bootstrap":
        data = plistlib.loads(Path(args[2]).read_bytes())
        spawn(data["ProgramArguments"], data.get("EnvironmentVariables", {}))
    elif args[0] in ("bootout", "kill"):
        kill()
elif tool == "schtasks" and args[0] == "/Query":
    code = 1
sys.exit(code)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake(home, tmp_path):
    """An environment whose PATH has the stand-in service managers; their call log."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    for tool in ("systemctl", "launchctl", "schtasks"):
        script = bin_dir / tool
        script.write_text(f"#!{sys.executable}\n{FAKE}")
        script.chmod(0o755)
    user_home = tmp_path / "user-home"
    user_home.mkdir()
    log = tmp_path / "service-calls.jsonl"
    port = free_port()
    home.write_user_profile(f"[agent]\nport = {port}\n")
    runtime = tmp_path / "run-user"  # where a user manager keeps its private socket
    (runtime / "systemd").mkdir(parents=True)
    (runtime / "systemd" / "private").touch()
    env = {**home.env, "HOME": str(user_home), "PATH": f"{bin_dir}:/usr/bin:/bin",
           "FAKE_SERVICE_LOG": str(log), "XDG_RUNTIME_DIR": str(runtime)}
    env.pop("XDG_CONFIG_HOME", None)
    yield env, log, port
    pid = log.with_suffix(".pid")
    if pid.exists():  # a test that failed half-way: stop what the stand-in started
        try:
            os.kill(int(pid.read_text()), 15)
        except (OSError, ValueError):
            pass


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def loaded(env):
    where = paths.resolve(env)
    return where, profile.load(where, env)


# ---------------------------------------------------------------- the files


ODD_COMMAND = ["/opt/my python/bin/python3", "-m", "aitrack", "agent", "run"]
ODD_ENV = {"AITRACK_HOME": "/home/a b/100%$HOME \"x\"", "AITRACK_MANAGED_PROFILE": "/etc/p.toml"}


def test_the_systemd_unit_parses_and_runs_the_agent_command():
    text = service.systemd_unit(ODD_COMMAND, ODD_ENV)
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str
    unit.read_string(text)
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Service"]["Type"] == "simple"
    assert unit["Install"]["WantedBy"] == "default.target"
    exec_start = unit["Service"]["ExecStart"].replace("%%", "%").replace("$$", "$")
    assert shlex.split(exec_start) == ODD_COMMAND
    assignments = shlex.split(unit["Service"]["Environment"].replace("%%", "%"))
    assert dict(a.split("=", 1) for a in assignments) == ODD_ENV
    assert "%h" not in text and "100%%$$HOME" not in text  # nothing expands


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_systemd_itself_accepts_the_unit(tmp_path):
    unit = tmp_path / service.UNIT_NAME
    unit.write_text(service.systemd_unit(service.command(), ODD_ENV))
    verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                              text=True, timeout=60)
    assert verified.returncode == 0, verified.stderr


def test_the_systemd_socket_unit_holds_the_agents_port_on_loopback():
    text = service.systemd_socket(47318)
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str
    unit.read_string(text)
    assert unit["Socket"]["ListenStream"] == "127.0.0.1:47318"
    assert unit["Socket"]["Accept"] == "no"  # one agent, handed the listening socket
    assert unit["Install"]["WantedBy"] == "sockets.target"
    service_unit = configparser.ConfigParser(interpolation=None, strict=True)
    service_unit.read_string(service.systemd_unit(ODD_COMMAND, {}))
    assert service_unit["Unit"]["Wants"] == service_unit["Unit"]["After"] == service.SOCKET_NAME


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_systemd_itself_accepts_the_socket_unit(tmp_path):
    (tmp_path / service.UNIT_NAME).write_text(service.systemd_unit(service.command(), {}))
    unit = tmp_path / service.SOCKET_NAME
    unit.write_text(service.systemd_socket(47318))
    verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                              text=True, timeout=60)
    assert verified.returncode == 0, verified.stderr


HANDED = """
import os, sys
fd = int(sys.argv[1])
os.dup2(fd, 3)  # where sd_listen_fds(3) puts the first socket
os.close(fd)
os.environ["LISTEN_PID"], os.environ["LISTEN_FDS"] = str(os.getpid()), "1"
os.execv(sys.executable, [sys.executable, "-m", "aitrack", "agent", "run"])
"""


def test_the_agent_serves_the_socket_its_service_manager_hands_it(home, tmp_path):
    """systemd's socket activation, as sd_listen_fds(3) describes it: the listening socket
    as fd 3, LISTEN_PID and LISTEN_FDS set. The agent serves it and binds nothing itself."""
    port = free_port()
    home.write_user_profile(f"[agent]\nport = {port}\n")
    held = socket.socket()
    held.bind(("127.0.0.1", port))
    held.listen()
    where = paths.resolve(home.env)
    proc = subprocess.Popen([sys.executable, "-c", HANDED, str(held.fileno())], env=home.env,
                            pass_fds=(held.fileno(),), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    held.close()  # only the agent holds it now
    try:
        secret = agent.ensure_secret(where)
        for _ in range(100):
            found = agent.check_port(port, secret, where)
            if found.state == "agent":
                break
            time.sleep(0.05)
        assert found.state == "agent" and found.owner.pid == proc.pid, proc.stderr
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_launchd_plist_parses():
    data = plistlib.loads(service.launchd_plist(ODD_COMMAND, ODD_ENV, Path("/tmp/agent.out"),
                                                47318))
    assert data["Label"] == "io.aitrack.agent"
    # launchd holds the port from login and hands it over (launch_activate_socket)
    assert data["Sockets"] == {"Listeners": {"SockNodeName": "127.0.0.1",
                                             "SockServiceName": "47318",
                                             "SockType": "stream", "SockFamily": "IPv4"}}
    assert data["ProgramArguments"] == ODD_COMMAND
    assert data["RunAtLoad"] is True
    assert data["KeepAlive"] == {"SuccessfulExit": False}  # again after a crash only
    assert data["EnvironmentVariables"] == ODD_ENV
    assert data["StandardErrorPath"] == "/tmp/agent.out"


@pytest.mark.parametrize("env", [{}, ODD_ENV], ids=["plain", "with variables"])
def test_the_scheduled_task_parses(env):
    text = service.task_xml([r"C:\Program Files\aitrack\venv\Scripts\pythonw.exe", "-m",
                             "aitrack", "agent", "run"], env, r"CORP\dev")
    ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
    root = ET.fromstring(text.replace('encoding="UTF-16"', ""))
    assert root.find("t:Triggers/t:LogonTrigger/t:UserId", ns).text == r"CORP\dev"
    assert root.find("t:Settings/t:ExecutionTimeLimit", ns).text == "PT0S"  # not 72 hours
    assert root.find("t:Settings/t:RestartOnFailure/t:Count", ns).text == "999"
    assert root.find("t:Principals/t:Principal/t:RunLevel", ns).text == "LeastPrivilege"
    command = root.find("t:Actions/t:Exec/t:Command", ns).text
    arguments = root.find("t:Actions/t:Exec/t:Arguments", ns).text
    if env:
        assert command == "cmd.exe" and 'set "AITRACK_HOME=' in arguments
        assert arguments.endswith('"C:\\Program Files\\aitrack\\venv\\Scripts\\pythonw.exe" '
                                  "-m aitrack agent run")
    else:
        assert command.endswith("pythonw.exe") and arguments == "-m aitrack agent run"


def test_the_service_command_is_this_python_running_the_agent(home):
    assert service.command() == [sys.executable, "-m", "aitrack", "agent", "run"]
    assert service.environment(home.env) == {
        "AITRACK_HOME": home.env["AITRACK_HOME"],
        "AITRACK_MANAGED_PROFILE": home.env["AITRACK_MANAGED_PROFILE"]}


# ---------------------------------------------------------------- which manager


def test_no_service_manager_without_its_command(tmp_path):
    env = {"HOME": str(tmp_path), "PATH": str(tmp_path)}
    assert service.detect(env, "linux") is None
    assert service.detect(env, "darwin") is None
    assert service.detect(env, "win32") is None
    assert isinstance(service.for_platform(env, "linux"), service.Systemd)


@pytest.mark.skipif(not shutil.which("systemctl"), reason="no systemctl")
def test_a_container_without_a_user_manager_has_none():
    probe = subprocess.run(["systemctl", "--user", "show-environment"], capture_output=True)
    manager = service.detect(platform="linux")
    assert (manager is None) == (probe.returncode != 0)


# ---------------------------------------------------------------- install and uninstall


def test_systemd_install_starts_the_agent_from_the_unit_and_uninstall_removes_it(fake):
    env, log, port = fake
    where, prof = loaded(env)
    manager = service.detect(env, "linux")
    assert isinstance(manager, service.Systemd)
    unit = Path(env["HOME"]) / ".config/systemd/user/aitrack-agent.service"
    socket_unit = unit.with_name("aitrack-agent.socket")
    try:
        changed, lines = manager.install(where, prof)
        assert changed and unit.exists()
        assert lines == [f"installed the systemd user service {unit}: it starts the agent at "
                         "login and again after a crash"]
        steps = [c[1:] for c in calls(log) if c[0] == "systemctl"]
        assert steps[-4:] == [["--user", "daemon-reload"],
                              ["--user", "enable", "aitrack-agent.socket",
                               "aitrack-agent.service"],
                              ["--user", "start", "aitrack-agent.socket"],
                              ["--user", "start", "aitrack-agent.service"]]
        # the port is held from login by the socket unit, which hands it to the agent
        assert f"ListenStream=127.0.0.1:{port}\n" in socket_unit.read_text()
        # the agent the unit's ExecStart started is up, with this home and port
        assert agent.probe(port, agent.ensure_secret(where)) == "agent"

        log.unlink()
        changed, lines = manager.install(where, prof)  # idempotent
        assert not changed and "installed and running" in lines[0]
        assert ["systemctl", "--user", "daemon-reload"] not in calls(log)
    finally:
        changed, lines = manager.uninstall(where)
    assert changed and not unit.exists() and not socket_unit.exists()
    assert ["systemctl", "--user", "disable", "--now", "aitrack-agent.service",
            "aitrack-agent.socket"] in calls(log)
    assert agent.probe(port, agent.ensure_secret(where)) == "free"


def test_a_detached_agent_gives_way_to_the_service(fake):
    env, log, port = fake
    where, prof = loaded(env)
    agent.start_detached(where, prof)
    manager = service.detect(env, "linux")
    try:
        changed, _ = manager.install(where, prof)
        assert changed
        pid = int(log.with_suffix(".pid").read_text())
        assert agent.status(where, prof)["pid"] == pid  # the service's agent holds the port
    finally:
        manager.uninstall(where)


def test_launchd_install_and_uninstall(fake):
    """launchctl on Linux is a stand-in: this checks aitrack's steps and the plist it
    writes (untested: macOS itself)."""
    env, log, port = fake
    where, prof = loaded(env)
    manager = service.detect(env, "darwin")
    assert isinstance(manager, service.Launchd)
    plist = Path(env["HOME"]) / "Library/LaunchAgents/io.aitrack.agent.plist"
    try:
        changed, lines = manager.install(where, prof)
        assert changed and plist.exists()
        domain = f"gui/{os.getuid()}"
        assert ["launchctl", "bootstrap", domain, str(plist)] in calls(log)
        assert agent.probe(port, agent.ensure_secret(where)) == "agent"
        assert not manager.install(where, prof)[0]
    finally:
        manager.uninstall(where)
    assert not plist.exists()
    assert ["launchctl", "bootout", f"gui/{os.getuid()}/io.aitrack.agent"] in calls(log)


def test_task_scheduler_install_and_uninstall(fake):
    """schtasks is a stand-in that only records (untested: Windows)."""
    env, log, _ = fake
    env = {**env, "USERDOMAIN": "CORP", "USERNAME": "dev"}
    where, prof = loaded(env)
    manager = service.detect(env, "win32")
    assert isinstance(manager, service.TaskScheduler)
    service.UP_WAIT_S, saved = 0.2, service.UP_WAIT_S
    try:
        changed, lines = manager.install(where, prof)
    finally:
        service.UP_WAIT_S = saved
    xml = manager.file(where)
    assert changed and xml.read_bytes().decode("utf-16").count("<LogonTrigger>") == 1
    assert ["schtasks", "/Create", "/TN", "aitrack-agent", "/XML", str(xml), "/F"] in calls(log)
    assert ["schtasks", "/Run", "/TN", "aitrack-agent"] in calls(log)
    assert "not answering yet" in lines[-1]  # nothing ran it here
    manager.uninstall(where)
    assert ["schtasks", "/Delete", "/TN", "aitrack-agent", "/F"] in calls(log)
    assert not xml.exists()


def test_agent_install_uses_the_service_and_uninstall_removes_it(fake, home):
    """`aitrack agent install` with a (stand-in) systemd: settings wired, service started;
    uninstall: agent stopped, unit gone, the user's home as before."""
    env, log, port = fake
    if not sys.platform.startswith("linux"):
        pytest.skip("the command picks this platform's manager: systemd on Linux")
    try:
        installed = home.run("agent", "install", env=env)
        assert installed.returncode == 0, installed.stderr
        assert "installed the systemd user service" in installed.stderr
        assert agent.probe(port, agent.ensure_secret(paths.resolve(env))) == "agent"
        again = home.run("agent", "install", env=env)
        assert "already installed: nothing changed" in again.stderr, again.stderr
        status = json.loads(home.run("agent", "status", "--json", env=env).stdout)
        assert status["service"] == {"manager": "systemd user", "installed": True}
    finally:
        removed = home.run("agent", "uninstall", env=env)
    assert removed.returncode == 0, removed.stderr
    assert "removed the systemd user service" in removed.stderr
    assert agent.probe(port, agent.ensure_secret(paths.resolve(env))) == "free"
    assert sorted(p.name for p in Path(env["HOME"]).rglob("*") if p.is_file()) == []
    assert not wiring.installed(paths.resolve(env))


# ---------------------------------------------------------------- the real systemd


def _real_user_systemd() -> bool:
    if not shutil.which("systemctl"):
        return False
    probe = subprocess.run(["systemctl", "--user", "show-environment"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _real_user_systemd(), reason="no systemd user manager (containers, CI)")
def test_the_real_systemd_user_manager_runs_the_agent(home):
    """Installs the unit in your real ~/.config/systemd/user (only when there is none of
    aitrack's there), pointed at this test's aitrack home, and removes it again."""
    real = service.Systemd()
    if real.file(None).exists():
        pytest.skip(f"{real.file(None)} exists: not touching a real installation")
    port = free_port()
    home.write_user_profile(f"[agent]\nport = {port}\n")
    manager = service.Systemd({**os.environ, **home.env})
    where, prof = loaded(home.env)
    try:
        changed, lines = manager.install(where, prof)
        assert changed, lines
        assert agent.probe(port, agent.ensure_secret(where)) == "agent", lines
        assert manager.active()
    finally:
        manager.uninstall(where)
    assert agent.probe(port, agent.ensure_secret(where)) == "free"
