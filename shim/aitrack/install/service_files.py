"""The files that define the agent's per-user service: a systemd `--user` unit and its
`.socket`, a launchd plist, a Task Scheduler XML definition. Each runs `python -m aitrack
agent run` (the interpreter aitrack is installed with) as the user, with the few variables
tests and sandboxes set; none holds a secret. Where the manager can hold a port (systemd's
socket unit, launchd's Sockets), it listens on the agent's port from login and hands the
socket to the agent (capture/agent/activation.py): no other user can take the port while
the agent is down.
"""

from __future__ import annotations

import os
import plistlib
import sys
from collections.abc import Mapping
from pathlib import Path
from xml.sax.saxutils import escape

from aitrack.capture.agent.activation import LAUNCHD_SOCKET

UNIT_NAME = "aitrack-agent.service"
SOCKET_NAME = "aitrack-agent.socket"
LABEL = "io.aitrack.agent"
TASK_NAME = "aitrack-agent"
PASSED_ENV = ("AITRACK_HOME", "AITRACK_MANAGED_PROFILE")  # tests and sandboxes set them
MARK = "Written by `aitrack agent install`; removed by `aitrack agent uninstall`."


def command(windowless: bool = False) -> list[str]:
    """The agent's command line (the service managers run it; never holds a secret)."""
    python = sys.executable
    if windowless:  # no console window at logon (untested: Windows)
        candidate = Path(python).with_name("pythonw.exe")
        python = str(candidate) if candidate.exists() else python
    return [python, "-m", "aitrack", "agent", "run"]


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if env is None else env
    return {k: env[k] for k in PASSED_ENV if env.get(k)}


# ---------------------------------------------------------------- the files


def _systemd_quote(word: str, dollars: bool = True) -> str:
    """One word of a unit file line: `%` doubled (specifiers), `$` too where variables
    expand (ExecStart=, not Environment=), quoted when it has spaces or quotes."""
    word = word.replace("%", "%%")
    if dollars:
        word = word.replace("$", "$$")
    if word and not any(c in word for c in " \t\"'\\;"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_unit(cmd: list[str], env: Mapping[str, str]) -> str:
    # Wants, not Requires: if the socket cannot listen, the agent binds (or says why) itself
    lines = [f"# {MARK}", "[Unit]",
             "Description=aitrack agent: records this user's AI coding tools' usage",
             f"Wants={SOCKET_NAME}", f"After={SOCKET_NAME}",
             "", "[Service]", "Type=simple",
             "ExecStart=" + " ".join(_systemd_quote(w) for w in cmd)]
    if env:  # one line (systemd takes several assignments on it): the file stays plain INI
        lines.append("Environment=" + " ".join(_systemd_quote(f"{k}={v}", dollars=False)
                                               for k, v in env.items()))
    lines += ["Restart=on-failure", "RestartSec=2", "", "[Install]",
              "WantedBy=default.target", ""]
    return "\n".join(lines)


def systemd_socket(port: int) -> str:
    """The agent's port, held by the user's systemd from login: the agent gets the socket."""
    return "\n".join([f"# {MARK}", "[Unit]",
                      "Description=aitrack agent's port: held from login, so no other user "
                      "can take it", "", "[Socket]", f"ListenStream=127.0.0.1:{port}",
                      "Accept=no", "", "[Install]", "WantedBy=sockets.target", ""])


def launchd_plist(cmd: list[str], env: Mapping[str, str], log: Path,
                  port: int | None = None) -> bytes:
    data = {
        "Label": LABEL,
        "ProgramArguments": list(cmd),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},  # again after a crash, not after a stop
        "ProcessType": "Background",
        "StandardOutPath": str(log),
        "StandardErrorPath": str(log),
    }
    if env:
        data["EnvironmentVariables"] = dict(env)
    if port is not None:  # launchd listens from login; the agent takes it (untested: macOS)
        data["Sockets"] = {LAUNCHD_SOCKET: {"SockNodeName": "127.0.0.1",
                                            "SockServiceName": str(port),
                                            "SockType": "stream", "SockFamily": "IPv4"}}
    return plistlib.dumps(data)


def _windows_quote(word: str) -> str:
    return f'"{word}"' if any(c in word for c in ' \t"') else word


def task_xml(cmd: list[str], env: Mapping[str, str], user: str) -> str:
    """A Task Scheduler definition: at this user's logon, in their session, no time limit,
    restarted after a failure."""
    if env:  # a task cannot carry variables: cmd sets them (tests, sandboxes)
        sets = " && ".join(f'set "{k}={v}"' for k, v in env.items())
        program = "cmd.exe"
        arguments = f'/c {sets} && {" ".join(_windows_quote(w) for w in cmd)}'
    else:
        program, arguments = cmd[0], " ".join(_windows_quote(w) for w in cmd[1:])
    return f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>aitrack agent: records this user's AI coding tools' usage.
      {escape(MARK)}</Description>
  </RegistrationInfo>
  <Triggers>
    <LogonTrigger>
      <Enabled>true</Enabled>
      <UserId>{escape(user)}</UserId>
    </LogonTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <UserId>{escape(user)}</UserId>
      <LogonType>InteractiveToken</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <RestartOnFailure>
      <Interval>PT1M</Interval>
      <Count>999</Count>
    </RestartOnFailure>
    <Hidden>true</Hidden>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{escape(program)}</Command>
      <Arguments>{escape(arguments)}</Arguments>
    </Exec>
  </Actions>
</Task>
"""
