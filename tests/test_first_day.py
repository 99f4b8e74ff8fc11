"""A newcomer's first day (issue 23): a fresh HOME, the set-up the README gives, then the
commands it shows, each run by name from PATH as a shell would (`aitrack`, `claude`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aitrack import adapters
from fixtures import fake_tool
from test_agent_wiring import free_port

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


class Newcomer:
    """A user with a fresh HOME (no AITRACK_HOME: aitrack's own default places), fake
    `claude` and `codex` installed, and nothing of this machine's managed settings."""

    def __init__(self, tmp_path: Path):
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.tools = tmp_path / "tools"
        fake_tool.write(self.tools, "claude", version="2.1.328 (Claude Code)")
        fake_tool.write(self.tools, "codex", version="codex-cli 0.169.0")
        self.shims = self.home / ".local/share/aitrack/bin"
        self.path = os.pathsep.join([str(self.tools), SYSTEM_PATH])
        self.env = {"HOME": str(self.home), "LANG": "C.UTF-8", "TMPDIR": os.environ["TMPDIR"],
                    "AITRACK_MANAGED_PROFILE": str(tmp_path / "etc/aitrack/profile.toml"),
                    "AITRACK_CLAUDE_MANAGED_SETTINGS": str(tmp_path / "etc/claude/m.json"),
                    "AITRACK_CODEX_SYSTEM_DIR": str(tmp_path / "etc/codex"),
                    **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
        # the agent's port: free on this machine (tests run in parallel with others)
        profile = self.home / ".config/aitrack/profile.toml"
        profile.parent.mkdir(parents=True)
        profile.parent.chmod(0o700)  # as aitrack makes its folders (doctor checks it)
        profile.write_text(f"[agent]\nport = {free_port()}\n")

    def run(self, *argv: str, by_name: bool = True, **kw) -> subprocess.CompletedProcess:
        """`argv` as typed in a shell whose PATH is the user's (`by_name`: `aitrack` is
        whatever PATH finds, as in the README; else the installed aitrack by its path)."""
        if not by_name and argv[0] == "aitrack":
            argv = (sys.executable, "-m", "aitrack", *argv[1:])
        return subprocess.run(["sh", "-c", 'exec "$0" "$@"', *argv], capture_output=True,
                              text=True, timeout=120, env={**self.env, "PATH": self.path}, **kw)


@pytest.fixture
def newcomer(tmp_path: Path):
    user = Newcomer(tmp_path)
    yield user
    user.run("aitrack", "agent", "uninstall", by_name=False)


def test_setup_puts_aitrack_on_path_with_the_shims_and_its_doctor_passes(newcomer):
    """Items 2 and 10, and the agent by default: after the set-up line, `aitrack` is a
    command (it was "command not found"), and a fresh install passes its own doctor."""
    assert newcomer.run("aitrack", "--version").returncode == 127  # not yet a command
    setup = newcomer.run("aitrack", "setup", "--no-service", by_name=False)
    assert setup.returncode == 0, setup.stderr
    line = f'export PATH="{newcomer.shims}:$PATH"'
    assert setup.stdout == line + "\n"  # the one line to add, on stdout
    assert f"wrote {', '.join(('aitrack', *adapters.TOOLS))} in" in setup.stderr
    assert "the agent is running on" in setup.stderr
    newcomer.path = f"{newcomer.shims}{os.pathsep}{newcomer.path}"  # as the line does
    assert newcomer.run("aitrack", "--version").stdout.startswith("aitrack, version ")
    doctor = newcomer.run("aitrack", "doctor")
    assert doctor.returncode == 0, doctor.stdout
    assert doctor.stdout.endswith("\nall checks passed\n"), doctor.stdout
    checks = {c["name"]: c for c in json.loads(newcomer.run("aitrack", "doctor", "--json").stdout)
              ["checks"]}
    assert checks["command"]["summary"] == f"`aitrack` runs {newcomer.shims / 'aitrack'}"
    assert checks["agent"]["summary"].startswith("running on http://127.0.0.1:")
    assert checks["private-files"]["status"] == "PASS"  # item 10: the shims' 0755 folder
    run = newcomer.run("claude", "--version")  # through the shim, tracked
    assert run.returncode == 0 and run.stdout == "2.1.328 (Claude Code)\n"


def test_without_the_agent_by_choice_doctor_passes_and_says_so(newcomer):
    setup = newcomer.run("aitrack", "setup", "--no-agent", by_name=False)
    assert setup.returncode == 0, setup.stderr
    assert "no agent, as asked" in setup.stderr
    newcomer.path = f"{newcomer.shims}{os.pathsep}{newcomer.path}"
    doctor = newcomer.run("aitrack", "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert doctor.returncode == 0 and json.loads(doctor.stdout)["status"] == "PASS", checks
    assert checks["agent"]["summary"].startswith("not installed, as you chose")


def test_doctor_suggests_the_agent_until_it_is_installed_or_declined(newcomer):
    newcomer.run("aitrack", "shims", "install", by_name=False)
    newcomer.path = f"{newcomer.shims}{os.pathsep}{newcomer.path}"
    checks = {c["name"]: c for c in json.loads(newcomer.run("aitrack", "doctor", "--json").stdout)
              ["checks"]}
    assert checks["agent"]["status"] == "WARN"
    assert "Codex's own telemetry never reaches the org" in checks["agent"]["summary"]
    assert checks["agent"]["fix"].startswith("run `aitrack agent install`")


def test_doctor_says_when_aitrack_is_not_on_path(newcomer):
    newcomer.run("aitrack", "shims", "install", by_name=False)
    doctor = newcomer.run("aitrack", "doctor", "--json", by_name=False)
    command = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}["command"]
    assert command["status"] == "WARN" and "command not found" in command["summary"]
    assert command["fix"].startswith(f"put {newcomer.shims} first on PATH: export PATH=")


def test_cosmetics_help_bare_aitrack_agent_status_and_uninstall(newcomer):
    """Item 18: summaries cut with "...", bare `aitrack` exiting 2, "received 20" of what,
    the agent's key left behind by uninstall."""
    help_text = newcomer.run("aitrack", "--help", by_name=False).stdout
    commands = help_text[help_text.index("\nCommands:\n"):]
    assert "..." not in commands and "Check this machine's aitrack: profile, token, endpoint," \
        in commands
    bare = newcomer.run("aitrack", by_name=False)
    assert bare.returncode == 0 and bare.stdout.startswith("Usage: aitrack")
    assert newcomer.run("aitrack", "setup", "--no-service", by_name=False).returncode == 0
    status = newcomer.run("aitrack", "agent", "status", by_name=False)
    assert status.returncode == 0, status.stdout + status.stderr
    assert re.search(r"^received \d+ telemetry payloads? from the tools since it started; "
                     r"\d+ telemetry payloads? waiting to be recorded$", status.stdout, re.M), (
        status.stdout)
    key = newcomer.home / ".local/state/aitrack/agent/secret"
    assert key.exists()
    gone = newcomer.run("aitrack", "agent", "uninstall", by_name=False)
    assert gone.returncode == 0 and f"removed the agent's key ({key})" in gone.stderr
    assert not key.exists() and not key.parent.exists()


def walkthrough() -> list[str]:
    """The commands of README's "A first day" block, as a newcomer types them."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme[readme.index("<!-- walkthrough"):]
    block = block[block.index("```sh\n") + 6:block.index("\n```", block.index("```sh\n"))]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_every_command_of_the_readme_walkthrough_works_in_a_fresh_home(newcomer, tmp_path):
    commands = walkthrough()
    assert commands[0] == "aitrack doctor" and len(commands) >= 8
    setup = newcomer.run("aitrack", "setup", "--no-service", by_name=False)  # the set-up line
    assert setup.returncode == 0, setup.stderr
    newcomer.path = f"{newcomer.shims}{os.pathsep}{newcomer.path}"  # the line it printed
    browser = tmp_path / "browser"
    browser.write_text("#!/bin/sh\nexit 0\n")
    browser.chmod(0o755)
    newcomer.env["BROWSER"] = str(browser)
    for command in commands:
        proc = newcomer.run("sh", "-c", command, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr and "unexpected error" not in proc.stderr, command
        if command.startswith("aitrack"):  # the fake claude says nothing; aitrack does
            assert proc.stdout.strip() or proc.stderr.strip(), command
        if command.startswith("aitrack report session"):
            assert "Session id" in proc.stdout.splitlines()[0], proc.stdout
    assert newcomer.run("aitrack", "doctor").stdout.endswith("all checks passed\n")
