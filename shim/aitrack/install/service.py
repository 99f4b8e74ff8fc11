"""The per-user service that keeps the agent running: a systemd `--user` unit on Linux, a
LaunchAgent on macOS, a logon Scheduled Task on Windows.

Each runs `python -m aitrack agent run` (the interpreter aitrack is installed with) as the
user, from login on, and starts it again after a crash. Containers and CI have no user
service manager (`detect` returns None): there `aitrack agent install` starts the agent
detached, and the wrapper starts it whenever it finds it down. Only the Linux path has run
for real here; the launchd and Task Scheduler paths are exercised against stand-in
`launchctl`/`schtasks` commands (untested: macOS, Windows).

The files the managers load are rendered in service_files.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from aitrack.capture import agent
from aitrack.config.paths import Paths
from aitrack.config.private_files import private_dir
from aitrack.config.profile import Profile
from aitrack.install.service_files import (
    LABEL,
    SOCKET_NAME,
    TASK_NAME,
    UNIT_NAME,
    command,
    environment,
    launchd_plist,
    systemd_socket,
    systemd_unit,
    task_xml,
)

COMMAND_TIMEOUT_S = 30.0
UP_WAIT_S = 5.0


class ServiceError(Exception):
    """The service manager refused: one line with what it said and the fix."""


class Manager:
    """One platform's service manager, driven through its command-line tool."""

    name = ""
    tool = ""

    def __init__(self, env: Mapping[str, str] | None = None):
        self.env = dict(os.environ if env is None else env)
        self.home = Path(self.env.get("HOME") or os.path.expanduser("~"))

    # -- to implement
    def file(self, paths: Paths) -> Path:
        raise NotImplementedError

    def render(self, paths: Paths, port: int) -> bytes:
        raise NotImplementedError

    def files(self, paths: Paths, port: int) -> dict[Path, bytes]:
        """Every file the service is made of, with its content."""
        return {self.file(paths): self.render(paths, port)}

    def available(self) -> bool:
        raise NotImplementedError

    def active(self) -> bool:
        raise NotImplementedError

    def _load(self, paths: Paths, changed: bool, loaded: bool) -> None:
        raise NotImplementedError

    def _unload(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def how_to_debug(self, paths: Paths) -> str:
        raise NotImplementedError

    # -- shared
    def describe(self, paths: Paths) -> str:
        return f"{self.name} {self.file(paths)}"

    def installed(self, paths: Paths) -> bool:
        return self.file(paths).exists()

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        exe = shutil.which(self.tool, path=self.env.get("PATH")) or self.tool
        try:
            done = subprocess.run([exe, *args], capture_output=True, text=True,
                                  env=self.env, timeout=COMMAND_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceError(f"`{self.tool} {' '.join(args)}` failed: {exc}") from None
        if check and done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()
            raise ServiceError(f"`{self.tool} {' '.join(args)}` failed (exit "
                               f"{done.returncode}){': ' + said[0] if said else ''}")
        return done

    def install(self, paths: Paths, profile: Profile) -> tuple[bool, list[str]]:
        """Write the service, load and start it (idempotent): (changed, lines)."""
        changed = False
        for path, data in self.files(paths, agent.choose(paths, profile)).items():
            try:
                if path.read_bytes() == data:
                    continue
            except OSError:
                pass
            changed = True
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        was_active = self.active()
        if not was_active:
            agent.stop(paths)  # an agent started detached holds the port
        self._load(paths, changed, was_active)
        if not changed and was_active:
            return False, [f"the {self.name} service is installed and running "
                           f"({self.file(paths)})"]
        up = _wait_up(paths, profile)
        lines = [f"{'installed' if changed else 'started'} the {self.name} service "
                 f"{self.file(paths)}: it starts the agent at login and again after a crash"]
        if not up:
            lines.append(f"the agent is not answering yet: {self.how_to_debug(paths)}")
        return True, lines

    def uninstall(self, paths: Paths) -> tuple[bool, list[str]]:
        path = self.file(paths)
        if not path.exists():
            return False, []
        try:
            self._unload()
        except ServiceError:
            pass  # not loaded: removing the file is all there is to do
        for made in self.made(paths):
            made.unlink(missing_ok=True)
        self._after_remove()
        return True, [f"removed the {self.name} service {path}"]

    def made(self, paths: Paths) -> list[Path]:
        """The files install writes (uninstall removes them all)."""
        return [self.file(paths)]

    def _after_remove(self) -> None:
        pass


def _wait_up(paths: Paths, profile: Profile) -> bool:
    secret = agent.ensure_secret(paths)
    port = agent.choose(paths, profile)
    deadline = time.monotonic() + UP_WAIT_S
    while time.monotonic() < deadline:
        if agent.probe(port, secret, 0.5, paths) == "agent":
            return True
        time.sleep(0.1)
    return False


class Systemd(Manager):
    name = "systemd user"
    tool = "systemctl"

    def file(self, paths: Paths) -> Path:
        config = self.env.get("XDG_CONFIG_HOME")
        base = Path(config) if config else self.home / ".config"
        return base / "systemd" / "user" / UNIT_NAME

    def render(self, paths: Paths, port: int) -> bytes:
        return systemd_unit(command(), environment(self.env)).encode()

    def files(self, paths: Paths, port: int) -> dict[Path, bytes]:
        """The service and its socket, which holds the agent's port from login."""
        return {self.file(paths): self.render(paths, port),
                self.socket_file(paths): systemd_socket(port).encode()}

    def socket_file(self, paths: Paths) -> Path:
        return self.file(paths).with_name(SOCKET_NAME)

    def made(self, paths: Paths) -> list[Path]:
        return [self.file(paths), self.socket_file(paths)]

    def available(self) -> bool:
        if not shutil.which(self.tool, path=self.env.get("PATH")):
            return False
        # A user manager listens on its private socket. Without one, asking systemctl would
        # have the session bus try (and fail, noisily) to start systemd for us.
        runtime = self.env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
        if not os.path.exists(os.path.join(runtime, "systemd", "private")):
            return False
        try:
            return self.run("--user", "show-environment", check=False).returncode == 0
        except ServiceError:
            return False

    def active(self) -> bool:
        try:
            return self.run("--user", "is-active", "--quiet", UNIT_NAME,
                            check=False).returncode == 0
        except ServiceError:
            return False

    def _load(self, paths: Paths, changed: bool, loaded: bool) -> None:
        if changed:
            self.run("--user", "daemon-reload")
        self.run("--user", "enable", SOCKET_NAME, UNIT_NAME)
        if changed and loaded:  # the port may have changed: the socket listens anew
            self.run("--user", "stop", UNIT_NAME, SOCKET_NAME)
        # the socket first, so the agent is handed the port; without it, it binds itself
        self.run("--user", "start", SOCKET_NAME, check=False)
        self.run("--user", "start", UNIT_NAME)

    def _unload(self) -> None:
        self.run("--user", "disable", "--now", UNIT_NAME, SOCKET_NAME)

    def _after_remove(self) -> None:
        self.run("--user", "daemon-reload", check=False)

    def start(self) -> None:
        self.run("--user", "start", SOCKET_NAME, check=False)
        self.run("--user", "start", UNIT_NAME)

    def stop(self) -> None:
        # the socket too: while it listens, the next connection would start the agent again
        self.run("--user", "stop", UNIT_NAME, SOCKET_NAME)

    def how_to_debug(self, paths: Paths) -> str:
        return f"`systemctl --user status {UNIT_NAME}` and `journalctl --user -u {UNIT_NAME}`"


class Launchd(Manager):
    """A LaunchAgent in the user's GUI session (untested: macOS)."""

    name = "launchd"
    tool = "launchctl"

    @property
    def domain(self) -> str:
        return f"gui/{os.getuid()}"

    def file(self, paths: Paths) -> Path:
        return self.home / "Library" / "LaunchAgents" / f"{LABEL}.plist"

    def render(self, paths: Paths, port: int) -> bytes:
        private_dir(paths.log_dir)
        return launchd_plist(command(), environment(self.env), paths.log_dir / "agent.out",
                             port)

    def available(self) -> bool:
        if not shutil.which(self.tool, path=self.env.get("PATH")):
            return False
        try:  # no GUI session (an ssh login): no per-user domain to load into
            return self.run("print", self.domain, check=False).returncode == 0
        except ServiceError:
            return False

    def active(self) -> bool:
        try:
            return self.run("print", f"{self.domain}/{LABEL}", check=False).returncode == 0
        except ServiceError:
            return False

    def _load(self, paths: Paths, changed: bool, loaded: bool) -> None:
        if loaded and changed:
            self.run("bootout", f"{self.domain}/{LABEL}", check=False)
        if changed or not loaded:
            self.run("bootstrap", self.domain, str(self.file(paths)))

    def _unload(self) -> None:
        self.run("bootout", f"{self.domain}/{LABEL}")

    def start(self) -> None:
        self.run("kickstart", f"{self.domain}/{LABEL}")

    def stop(self) -> None:
        self.run("kill", "SIGTERM", f"{self.domain}/{LABEL}")

    def how_to_debug(self, paths: Paths) -> str:
        return f"`launchctl print {self.domain}/{LABEL}` and {paths.log_dir / 'agent.out'}"


class TaskScheduler(Manager):
    """A Scheduled Task started at the user's logon (untested: Windows)."""

    name = "Task Scheduler"
    tool = "schtasks"

    def file(self, paths: Paths) -> Path:
        return agent.agent_dir(paths) / "aitrack-agent.task.xml"

    def describe(self, paths: Paths) -> str:
        return f"Scheduled Task {TASK_NAME}"

    def _user(self) -> str:
        domain = self.env.get("USERDOMAIN")
        user = self.env.get("USERNAME") or os.path.basename(str(self.home))
        return f"{domain}\\{user}" if domain else user

    def render(self, paths: Paths, port: int) -> bytes:
        return task_xml(command(windowless=True), environment(self.env),
                        self._user()).encode("utf-16")

    def available(self) -> bool:
        return bool(shutil.which(self.tool, path=self.env.get("PATH")))

    def active(self) -> bool:
        try:
            done = self.run("/Query", "/TN", TASK_NAME, "/FO", "CSV", "/NH", check=False)
        except ServiceError:
            return False
        return done.returncode == 0 and "Running" in done.stdout

    def _load(self, paths: Paths, changed: bool, loaded: bool) -> None:
        if changed:
            self.run("/Create", "/TN", TASK_NAME, "/XML", str(self.file(paths)), "/F")
        if not loaded:
            self.run("/Run", "/TN", TASK_NAME)

    def _unload(self) -> None:
        self.run("/End", "/TN", TASK_NAME, check=False)
        self.run("/Delete", "/TN", TASK_NAME, "/F")

    def start(self) -> None:
        self.run("/Run", "/TN", TASK_NAME)

    def stop(self) -> None:
        self.run("/End", "/TN", TASK_NAME)

    def how_to_debug(self, paths: Paths) -> str:
        return f"`schtasks /Query /TN {TASK_NAME} /V` and {paths.log_dir / 'agent.out'}"


MANAGERS = {"linux": Systemd, "darwin": Launchd, "win32": TaskScheduler}


def for_platform(env: Mapping[str, str] | None = None,
                 platform: str | None = None) -> Manager | None:
    """This platform's service manager, whether or not it is usable here."""
    platform = sys.platform if platform is None else platform
    cls = next((c for p, c in MANAGERS.items() if platform.startswith(p)), None)
    return cls(env) if cls else None


def detect(env: Mapping[str, str] | None = None, platform: str | None = None) -> Manager | None:
    """The service manager to install the agent under; None where there is none (a
    container, CI, an ssh session on a Mac)."""
    manager = for_platform(env, platform)
    return manager if manager is not None and manager.available() else None
