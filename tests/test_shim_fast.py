"""The shims' fast way (install/shim_fast.py, capture/spool.py): with the agent running, a
shim runs the tool without Python once a run through Python left a ticket, and the agent
records the run from the spool as it records the wrapper's.

Real parts: the real `codex` and `claude` against the model stub, the agent installed with
`aitrack agent install --no-service`, the shims installed with `aitrack shims install`. The
tools are named through AITRACK_CODEX_BIN / AITRACK_CLAUDE_BIN by a stand-in that notes who
started it (the shim's shell, or Python) and then execs the real tool, or, for the signal
tests, a small Python program that behaves as a tool would.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agents import agent_bin
from aitrack.install import shim_fast
from terminal import Terminal
from test_e2e_agent import Machine, expected_codex
from test_e2e_agents import expected_claude

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shim_fast.fast_way_env() is None,
                                 reason="the fast way: Linux with GNU env --default-signal")]

STAND_IN = """#!/bin/sh
{{ read -r aitrack_test_by < /proc/$PPID/comm; }} 2>/dev/null
while read -r k v; do [ "$k" = SigIgn: ] && aitrack_test_ignored=$v; done < /proc/$$/status
printf '%s %s\\n' "$aitrack_test_by" "$aitrack_test_ignored" >> "$WAY_LOG"
if [ -n "${{STAND_IN:-}}" ]; then exec {python} "$STAND_IN" "$@"; fi
exec {real} "$@"
"""

# a tool that waits for a signal: says so in READY, notes each one in GOT, exits as told
WAITING_TOOL = textwrap.dedent("""\
    import os, signal, sys, time
    got = []
    def note(n, f):
        got.append(n)
        with open(os.environ["GOT"], "a") as fh:
            fh.write(f"{n}\\n")
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGWINCH):
        signal.signal(s, note)
    if os.environ.get("DIE_BY"):
        signal.signal(int(os.environ["DIE_BY"]), signal.SIG_DFL)
    with open(os.environ["READY"], "w") as fh:
        fh.write(sys.stdin.readline() if os.environ.get("READ_STDIN") else "ready")
    print("waiting for a signal", flush=True)
    deadline = time.monotonic() + 60
    while not got and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # a second, relayed copy would land by now
    sys.exit(7)
    """)


def from_a_shell() -> None:
    """A shim's start as a terminal's shell gives it (preexec_fn): the relayed signals at
    their defaults. A suite started in the background (`&` in a script ignores SIGINT and
    SIGQUIT) or under nohup (SIGHUP) would hand them on, and the fast way rightly refuses a
    caller that ignores one (test_a_relayed_signal_the_caller_ignores_...)."""
    for name in shim_fast.RELAYED:
        signal.signal(getattr(signal, f"SIG{name}"), signal.SIG_DFL)


class Fast:
    """A developer's account with the agent and the shims installed."""

    def __init__(self, machine: Machine, tmp: Path):
        self.m = machine
        self.tmp = tmp
        self.shims = tmp / "shims"
        self.log = tmp / "ways.log"
        bin_dir = tmp / "tool-bin"
        bin_dir.mkdir()
        for tool in ("codex", "claude"):
            path = bin_dir / tool
            path.write_text(STAND_IN.format(python=sys.executable, real=agent_bin(tool)))
            path.chmod(0o755)
        self.tool_program = tmp / "waiting_tool.py"
        self.tool_program.write_text(WAITING_TOOL)
        machine.env.update(AITRACK_CODEX_BIN=str(bin_dir / "codex"),
                           AITRACK_CLAUDE_BIN=str(bin_dir / "claude"), WAY_LOG=str(self.log))
        done = machine.aitrack("shims", "install", "--dir", str(self.shims))
        assert done.returncode == 0, done.stderr
        machine.env["PATH"] = f"{self.shims}{os.pathsep}{machine.env['PATH']}"
        machine.install()
        # what the install wrote is older than the next ticket (whole seconds: spool.py)
        time.sleep(2.1)
        self.log.write_text("")
        self.spool = machine.home.root / "state" / "agent" / "runs"

    @property
    def env(self) -> dict[str, str]:
        return self.m.env

    def run(self, tool: str, *args: str, env: dict | None = None, input: str | None = None,
            ) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.shims / tool), *args], env={**self.env, **(env or {})},
                              cwd=self.m.work, capture_output=True, text=True, timeout=120,
                              input=input, stdin=None if input is not None else
                              subprocess.DEVNULL, preexec_fn=from_a_shell)

    def ways(self) -> list[str]:
        """Who started the tool since the last call: "shim" (no Python) or "python"."""
        lines = [line.split() for line in self.log.read_text().splitlines()]
        self.log.write_text("")
        # the signals the tool started with ignored (1 to 31: glibc's own are its business)
        self.ignored = [int(mask, 16) & 0x7FFFFFFF for _, mask in lines]
        return ["python" if w.startswith("python") else "shim" if w in ("codex", "claude")
                else w for w, _ in lines]

    def runs(self) -> list[tuple]:
        db = sqlite3.connect(self.m.home.ledger)
        try:
            return db.execute("SELECT tool, exit_code, cwd, project, mode, attributes, "
                              "ended_at IS NOT NULL, pending_end IS NULL FROM runs "
                              "ORDER BY started_at").fetchall()
        finally:
            db.close()

    def recorded(self, n: int) -> list[tuple]:
        """The runs once `n` of them have ended and been linked."""
        assert self.m.wait_for(lambda: len(self.runs()) == n and all(
            r[6] and r[7] for r in self.runs())), self.runs()
        return self.runs()

    def spool_runs(self) -> list[str]:
        return sorted(n for n in os.listdir(self.spool) if n not in ("agent", "codex.ticket",
                                                                     "claude.ticket"))

    def agent_pid(self) -> int:
        return int((self.spool / "agent").read_text().split()[0])

    def warm(self, tool: str = "codex") -> None:
        """One run through Python, which leaves the ticket."""
        done = self.run(tool, *ARGS[tool])
        assert done.returncode == 0, done.stderr
        assert self.ways() == ["python"]
        assert (self.spool / f"{tool}.ticket").exists()


ARGS = {"codex": ("exec", "--skip-git-repo-check", "say hello"),
        "claude": ("-p", "say hello", "--max-turns", "1")}


@pytest.fixture
def fast(home, stub, tmp_path):
    machine = Machine(home, stub, tmp_path)
    try:
        yield Fast(machine, tmp_path)
    finally:
        machine.uninstall()


@pytest.mark.parametrize("tool", ["codex", "claude"])
def test_the_tool_runs_without_python_and_every_run_is_recorded_once(fast, stub, tool):
    outputs = [fast.run(tool, *ARGS[tool]) for _ in range(3)]
    for done in outputs:
        assert done.returncode == 0, done.stderr
        assert "Hello from the stub." in done.stdout
        assert "aitrack" not in done.stderr
    assert fast.ways() == ["python", "shim", "shim"]
    assert len(set(fast.ignored)) == 1, fast.ignored  # the tool's signals as under Python
    runs = fast.recorded(3)
    # the shim's runs are recorded as the wrapper's: same status, cwd, project, attributes
    assert len(set(runs)) == 1, runs
    assert runs[0][:5] == (tool, 0, os.path.realpath(fast.m.work), runs[0][3], "agent")
    want = expected_codex(stub) if tool == "codex" else expected_claude(stub)
    assert fast.m.wait_for(lambda: fast.m.usage(tool) == want), fast.m.usage(tool)
    db = fast.m.ledger()
    sessions = db.execute("SELECT exit_code FROM sessions WHERE tool = ?", (tool,)).fetchall()
    db.close()
    assert sessions == [(0,)] * 3  # each run linked to its own session
    assert fast.m.wait_for(lambda: fast.spool_runs() == []), fast.spool_runs()
    # `aitrack codex` through the installed command takes the same way
    done = subprocess.run([str(fast.shims / "aitrack"), tool, *ARGS[tool]], env=fast.env,
                          cwd=fast.m.work, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, preexec_fn=from_a_shell)
    assert done.returncode == 0 and "Hello from the stub." in done.stdout, done.stderr
    assert fast.ways() == ["aitrack"]  # the `aitrack` script's shell started it
    assert len(fast.recorded(4)) == 4


def test_a_version_query_is_not_a_session_either_way(fast):
    fast.warm()
    done = fast.run("codex", "--version")
    assert done.returncode == 0 and "codex" in done.stdout.lower()
    assert fast.ways() == ["shim"]
    assert fast.m.wait_for(lambda: fast.spool_runs() == [])
    db = fast.m.ledger()
    assert db.execute("SELECT COUNT(*) FROM runs WHERE pending_end IS NULL AND ended_at IS NOT "
                      "NULL").fetchone() == (2,)
    db.close()


def test_a_relayed_signal_the_caller_ignores_sends_the_run_through_python(fast):
    """nohup: a shell cannot trap an ignored signal, the Python wrapper relays it."""
    fast.warm()
    done = subprocess.run(["nohup", str(fast.shims / "codex"), "--version"], env=fast.env,
                          cwd=fast.m.work, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, preexec_fn=from_a_shell)
    assert done.returncode == 0, done.stderr
    assert fast.ways() == ["python"]


def _waiting(fast, **env) -> tuple[subprocess.Popen, Path, Path]:
    ready, got = fast.tmp / "ready", fast.tmp / "got"
    for p in (ready, got):
        p.unlink(missing_ok=True)
    proc = subprocess.Popen([str(fast.shims / "codex"), "exec", "--wait"],
                            env={**fast.env, "STAND_IN": str(fast.tool_program),
                                 "READY": str(ready), "GOT": str(got), **env},
                            cwd=fast.m.work, start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=from_a_shell)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    return proc, ready, got


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_to_the_shim_reaches_the_tool_once(fast, sig):
    fast.warm()
    proc, _, got = _waiting(fast)
    proc.send_signal(sig)  # to the shim alone: it relays it (no terminal here)
    proc.communicate(timeout=30)
    assert proc.returncode == 7  # the tool's own status
    assert got.read_text().split() == [str(int(sig))]
    assert fast.ways() == ["shim"]
    assert fast.recorded(2)[-1][1] == 7


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_tool_killed_by_a_relayed_signal_gives_128_plus_n(fast, sig):
    fast.warm()
    proc, _, _ = _waiting(fast, DIE_BY=str(int(sig)))
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig
    assert fast.ways() == ["shim"]
    assert fast.recorded(2)[-1][1] == 128 + sig


def test_stdin_reaches_the_tool(fast):
    fast.warm()
    ready = fast.tmp / "ready"
    proc = subprocess.Popen([str(fast.shims / "codex"), "x"],
                            env={**fast.env, "STAND_IN": str(fast.tool_program),
                                 "READY": str(ready), "GOT": str(fast.tmp / "got"),
                                 "READ_STDIN": "1"},
                            cwd=fast.m.work, start_new_session=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=from_a_shell)
    proc.stdin.write("typed by the user\n")
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    while not ready.exists() or not ready.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert ready.read_text() == "typed by the user\n"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 7 and fast.ways() == ["shim"]


def test_ctrl_c_in_a_terminal_reaches_the_tool_once(fast):
    fast.warm()
    ready, got, status = fast.tmp / "ready", fast.tmp / "got", fast.tmp / "status"
    env = {**fast.env, "STAND_IN": str(fast.tool_program), "READY": str(ready),
           "GOT": str(got)}
    # bash runs the shim in the terminal's foreground group and notes its exit status (it
    # outlives a Ctrl-C its child survived)
    argv = ["bash", "-c", f'"$0" exec --wait; echo "$?" > {status}', str(fast.shims / "codex")]
    with Terminal("fast-ctrl-c", argv, fast.m.work, env) as term:
        term.wait_for("waiting for a signal")
        term.send("C-c")
        deadline = time.monotonic() + 30
        while not status.exists():
            assert time.monotonic() < deadline, term.screen()
            time.sleep(0.05)
    assert got.read_text().split() == [str(int(signal.SIGINT))]  # the terminal's, not twice
    assert status.read_text().strip() == "7"
    assert fast.ways() == ["shim"]
    assert fast.recorded(2)[-1][1] == 7


def _changed(fast, change) -> list[str]:
    """The ways of the runs before and after `change`, one run each."""
    assert fast.run("codex", "--version").returncode == 0
    change()
    # the next ticket, a second older than its run (whole seconds), is then newer than it
    time.sleep(2.1)
    assert fast.run("codex", "--version").returncode == 0
    assert fast.run("codex", "--version").returncode == 0
    return fast.ways()


def test_a_changed_setting_profile_path_or_agent_sends_the_next_run_through_python(fast):
    fast.warm()
    # the tool's own settings
    config = fast.m.codex_config
    assert _changed(fast, lambda: config.write_text(config.read_text() + "\n")) == [
        "shim", "python", "shim"]
    # the user's profile appears
    assert _changed(fast, lambda: fast.m.home.write_user_profile(
        '[attributes]\n"team.id" = "t2"\n')) == ["shim", "python", "shim"]
    # PATH: another directory in front
    other = fast.tmp / "other-bin"
    other.mkdir()
    env_path = fast.env["PATH"]
    fast.env["PATH"] = f"{env_path}{os.pathsep}{other}"
    assert fast.run("codex", "--version").returncode == 0
    fast.env["PATH"] = env_path
    assert fast.run("codex", "--version").returncode == 0
    assert fast.ways() == ["python", "python"]
    # the agent restarts: its tickets go with it
    assert fast.m.aitrack("agent", "stop").returncode == 0
    assert fast.run("codex", "--version").returncode == 0
    assert fast.ways() == ["python"]  # no agent: the Python wrapper, as without the fast way
    assert fast.m.aitrack("agent", "start").returncode == 0
    assert fast.m.wait_for(lambda: (fast.spool / "agent").exists())
    time.sleep(2.1)  # what the start wrote is older than the next ticket
    assert _changed(fast, lambda: None) == ["python", "shim", "shim"]
    runs = fast.recorded(13)
    assert [r[1] for r in runs] == [0] * 13
    assert {r[2] for r in runs} == {os.path.realpath(fast.m.work)}


def test_a_foreign_or_linked_spool_file_is_refused(fast):
    fast.warm()
    ticket = fast.spool / "codex.ticket"
    kept = fast.tmp / "kept.ticket"
    os.replace(ticket, kept)
    ticket.symlink_to(kept)  # a link: never followed
    assert fast.run("codex", "--version").returncode == 0
    assert fast.ways() == ["python"]
    if os.geteuid() == 0:  # another account's ticket (root can make one)
        ticket.unlink(missing_ok=True)
        assert fast.run("codex", "--version").returncode == 0  # a fresh ticket
        assert fast.ways() == ["python"]
        os.chown(ticket, 65534, 65534)
        assert fast.run("codex", "--version").returncode == 0
        assert fast.ways() == ["python"]
    # a spool others may write to: the agent takes its beacon down at its next read
    ticket.unlink(missing_ok=True)
    assert fast.run("codex", "--version").returncode == 0  # a fresh ticket, the user's
    fast.spool.chmod(0o777)
    os.kill(fast.agent_pid(), signal.SIGUSR1)
    assert fast.m.wait_for(lambda: not (fast.spool / "agent").exists())
    assert fast.run("codex", "--version").returncode == 0
    assert fast.ways() == ["python", "python"]


def test_a_killed_shim_leaves_no_run_behind_in_the_spool(fast):
    fast.warm()
    proc, _, _ = _waiting(fast)
    pid = fast.agent_pid()
    assert fast.m.wait_for(lambda: any(n.endswith(".started") for n in fast.spool_runs()))
    tool = _children(proc.pid)
    proc.kill()  # the shim; its tool runs on, as a killed wrapper's would
    proc.wait(timeout=30)
    for child in tool:
        os.kill(child, signal.SIGTERM)
    proc.communicate(timeout=30)
    os.kill(pid, signal.SIGUSR1)
    assert fast.m.wait_for(lambda: fast.spool_runs() == []), fast.spool_runs()
    log = (fast.m.home.root / "state" / "logs").glob("agent*.log")
    assert any("its shim was killed" in p.read_text() for p in log)


def _children(pid: int) -> list[int]:
    import psutil

    return [c.pid for c in psutil.Process(pid).children(recursive=True)]


def test_the_spool_is_private(fast):
    fast.warm()
    assert fast.run("codex", "--version").returncode == 0
    assert (fast.spool.stat().st_mode & 0o777) == 0o700
    for path in fast.spool.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path
        assert path.stat().st_uid == os.geteuid()
    ticket = (fast.spool / "codex.ticket").read_text()
    assert "sk-" not in ticket and "MOCK_KEY" not in ticket  # no secret, no key's value


def test_the_codex_tui_in_a_terminal_quits_on_ctrl_c_as_under_python(fast):
    """The real Codex TUI in tmux, through the shim, through Python (which leaves the ticket)
    and without: Ctrl-C quits it the same way, and every run is recorded. (A TUI run may
    touch Codex's config.toml after its wrapper left the ticket: the next run then goes
    through Python again, so the runs go on until both ways were seen.)"""
    statuses: dict[str, set[str]] = {}
    for n in range(4):
        status = fast.tmp / f"status-{n}"
        argv = ["bash", "-c", f'"$0"; echo "$?" > {status}', str(fast.shims / "codex")]
        with Terminal(f"fast-tui-{n}", argv, fast.m.work, fast.env) as term:
            term.wait_for("Ask Codex", "Trust this folder", timeout=60)
            time.sleep(1.0)
            deadline = time.monotonic() + 30
            while not status.exists():
                assert time.monotonic() < deadline, term.screen()
                term.send("C-c")
                time.sleep(0.5)
        [way] = fast.ways()
        statuses.setdefault(way, set()).add(status.read_text().strip())
        if len(statuses) == 2:
            break
    assert statuses.keys() == {"python", "shim"}, statuses
    assert statuses["python"] == statuses["shim"] and len(statuses["shim"]) == 1, statuses
    [code] = statuses["shim"]
    runs = fast.recorded(n + 1)
    assert [r[1] for r in runs] == [int(code)] * (n + 1)
