"""`aitrack claude|codex|run` with fake tools: what the child gets and what the user gets back."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

DUMP = textwrap.dedent("""\
    #!{python}
    import json, os, sys
    with open(os.environ["DUMP_TO"], "w") as fh:
        json.dump({{"argv": sys.argv[1:], "env": dict(os.environ)}}, fh)
    sys.exit(int(os.environ.get("EXIT_WITH", "0")))
    """)


@pytest.fixture
def fake_tool(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "fake-tool"
    path.parent.mkdir()
    path.write_text(DUMP.format(python=sys.executable))
    path.chmod(0o755)
    return path


def dumped(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "dump.json").read_text())


def test_claude_gets_args_verbatim_and_the_loopback_receiver(home, fake_tool, tmp_path):
    result = home.run("claude", "-p", "hi there", "--max-turns", "1", "--", "--help", env={
        "AITRACK_CLAUDE_BIN": str(fake_tool), "DUMP_TO": str(tmp_path / "dump.json"),
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer sk-live-123",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example.com",
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "cumulative",
    })
    assert result.returncode == 0, result.stderr
    child = dumped(tmp_path)
    assert child["argv"] == ["-p", "hi there", "--max-turns", "1", "--", "--help"]
    env = child["env"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://127.0.0.1:")
    assert env["OTEL_EXPORTER_OTLP_HEADERS"].startswith("x-aitrack-key=")
    assert "sk-live-123" not in json.dumps(env)
    assert env["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"] == "cumulative"
    assert env["CLAUDE_CODE_ENABLE_TELEMETRY"] == "1"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/json"
    assert env["OTEL_LOG_USER_PROMPTS"] == "0"
    assert len(env["AITRACK_SESSION_ID"]) == 32
    # one warning about the token in the shell environment, naming the variable
    warnings = [line for line in result.stderr.splitlines() if "OTEL_EXPORTER_OTLP_HEADERS" in line]
    assert len(warnings) == 1 and "aitrack token set" in warnings[0]


def test_resource_attributes_are_percent_encoded(home, fake_tool, tmp_path):
    home.write_managed_profile('[attributes]\n"team.id" = "a,b=c d%"\n"department" = "R&D ü"\n')
    result = home.run("claude", env={"AITRACK_CLAUDE_BIN": str(fake_tool),
                                     "DUMP_TO": str(tmp_path / "dump.json"),
                                     "OTEL_RESOURCE_ATTRIBUTES": "service.namespace=mine"})
    assert result.returncode == 0, result.stderr
    attrs = dumped(tmp_path)["env"]["OTEL_RESOURCE_ATTRIBUTES"].split(",")
    assert "team.id=a%2Cb%3Dc%20d%25" in attrs
    assert "department=R%26D%20%C3%BC" in attrs
    assert "service.namespace=mine" in attrs


def test_codex_without_an_agent_gets_only_the_users_arguments_and_environment(
        home, fake_tool, tmp_path):
    """No -c overrides: they would put a secret in Codex's argv (readable by every local user
    in /proc/PID/cmdline) and force it out of its shared background-server mode."""
    home.write_managed_profile('[attributes]\n"environment" = "production"\n')
    result = home.run("codex", "exec", "fix it", env={"AITRACK_CODEX_BIN": str(fake_tool),
                                                      "DUMP_TO": str(tmp_path / "dump.json"),
                                                      "OTEL_RESOURCE_ATTRIBUTES": "a=b"})
    assert result.returncode == 0, result.stderr
    child = dumped(tmp_path)
    assert child["argv"] == ["exec", "fix it"]
    ours = {k for k in child["env"] if k not in os.environ or child["env"][k] != os.environ[k]}
    assert ours - set(home.env) == {"AITRACK_SESSION_ID", "DUMP_TO", "AITRACK_CODEX_BIN",
                                    "OTEL_RESOURCE_ATTRIBUTES"} - set(home.env)
    assert child["env"]["OTEL_RESOURCE_ATTRIBUTES"] == "a=b"
    db = sqlite3.connect(home.ledger)
    assert db.execute("SELECT tool, mode, exit_code FROM runs").fetchall() == [
        ("codex", "transcript", 0)]


@pytest.mark.parametrize("code", [0, 3, 42])
def test_exit_code_is_the_childs(home, fake_tool, tmp_path, code):
    result = home.run("run", "--", str(fake_tool), env={"DUMP_TO": str(tmp_path / "dump.json"),
                                                        "EXIT_WITH": str(code)})
    assert result.returncode == code
    db = sqlite3.connect(home.ledger)
    assert db.execute("SELECT tool, exit_code FROM sessions").fetchall() == [("fake-tool", code)]


def test_missing_tool_exits_127_with_one_line(home, tmp_path):
    result = home.run("claude", env={"PATH": str(tmp_path / "empty")})
    assert result.returncode == 127
    assert result.stderr.strip().count("\n") == 0
    assert "claude: command not found" in result.stderr and "AITRACK_CLAUDE_BIN" in result.stderr


def test_child_killed_by_sigterm_gives_128_plus_15(home, tmp_path):
    result = home.run("run", "--", "sh", "-c", "kill -TERM $$")
    assert result.returncode == 128 + signal.SIGTERM


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signals_sent_to_aitrack_reach_the_child(home, tmp_path, sig):
    marker = tmp_path / "got-signal"
    script = (f"import signal,sys,time\n"
              f"def h(n, f):\n open({str(marker)!r}, 'w').write(str(n)); sys.exit(7)\n"
              f"signal.signal({int(sig)}, h)\nopen({str(tmp_path / 'ready')!r}, 'w').close()\n"
              f"time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-m", "aitrack", "run", "--", sys.executable, "-c",
                             script], env=home.env, start_new_session=True,
                            stdin=subprocess.DEVNULL)
    deadline = time.time() + 20
    while not (tmp_path / "ready").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    assert proc.wait(timeout=20) == 7  # the child handled it and its status came back
    assert marker.read_text() == str(int(sig))


def test_a_shim_on_path_is_never_run_by_itself(home, fake_tool, tmp_path):
    shims = tmp_path / "shims"
    shims.mkdir()
    shim = shims / "claude"
    shim.write_text(f"#!/bin/sh\n# aitrack-shim: v1\n"
                    f"exec {sys.executable} -m aitrack claude \"$@\"\n")
    shim.chmod(0o755)
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    (real_dir / "claude").symlink_to(fake_tool)
    path = os.pathsep.join([str(shims), str(shims), str(real_dir), "/usr/bin", "/bin"])
    result = subprocess.run([str(shim), "--version"], env={**home.env, "PATH": path,
                            "DUMP_TO": str(tmp_path / "dump.json")}, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert dumped(tmp_path)["argv"] == ["--version"]
    # and with no real claude behind the shims: 127, not an endless loop
    result = subprocess.run([str(shim)], env={**home.env, "PATH": f"{shims}{os.pathsep}{shims}"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 127


def test_broken_profiles_never_stop_the_tool(home, fake_tool, tmp_path):
    home.write_managed_profile("[endpoint\nurl = ")
    home.write_user_profile("[attributes]\n\"team.id\" = 5\n")
    result = home.run("run", "--", str(fake_tool), env={"DUMP_TO": str(tmp_path / "dump.json"),
                                                        "EXIT_WITH": "5"})
    assert result.returncode == 5
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines  # one line per broken profile
    assert "managed profile ignored" in lines[0] and str(home.managed_profile) in lines[0]
    # the user profile loses only its bad setting (issue 23), said as every command says it
    assert "user profile settings ignored" in lines[1] and "attributes.team.id" in lines[1]
    assert lines[1].endswith(f"`aitrack profile validate {home.user_profile}` lists it")


def test_unwritable_ledger_never_stops_the_tool(home, fake_tool, tmp_path):
    (home.root / "data").mkdir(parents=True)
    (home.root / "data" / "ledger.db").mkdir()  # a directory where the database should be
    result = home.run("run", "--", str(fake_tool), env={"DUMP_TO": str(tmp_path / "dump.json"),
                                                        "EXIT_WITH": "4"})
    assert result.returncode == 4
    assert "cannot write the ledger" in result.stderr and "aitrack doctor" in result.stderr
    assert result.stderr.count("\n") == 1


def test_run_without_a_command_explains_usage(home):
    result = home.run("run")
    assert result.returncode == 2
    assert "usage: aitrack run" in result.stderr


# ------------------------------------------------------------------ Ctrl-C and signals

FLUSH_ON_CTRL_C = textwrap.dedent("""\
    import json, os, signal, sys, time, urllib.request
    interrupted = []
    signal.signal(signal.SIGINT, lambda n, f: interrupted.append(n))
    open(sys.argv[1], "w").close()  # ready for Ctrl-C
    while not interrupted:
        time.sleep(0.01)
    time.sleep(0.5)  # a real tool takes a moment to flush its telemetry
    key, value = os.environ["OTEL_EXPORTER_OTLP_HEADERS"].split("=", 1)
    point = {"sum": 777, "count": "1", "attributes": [
        {"key": "gen_ai.token.type", "value": {"stringValue": "output"}},
        {"key": "gen_ai.response.model", "value": {"stringValue": "m"}}]}
    body = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{
        "name": "gen_ai.client.token.usage",
        "histogram": {"aggregationTemporality": 1, "dataPoints": [point]}}]}]}]}
    request = urllib.request.Request(os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] + "/v1/metrics",
        data=json.dumps(body).encode(), headers={"Content-Type": "application/json", key: value})
    assert urllib.request.urlopen(request).status == 200
    sys.exit(7)
    """)


def _wait_for(path: Path, proc_alive, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc_alive(), "aitrack exited before its child was ready"
        assert time.monotonic() < deadline, "the child never became ready"
        time.sleep(0.02)


def _ctrl_c_in_a_terminal(home, argv: list[str], ready: Path) -> tuple[int, str]:
    """Run aitrack on a new pseudo-terminal and press Ctrl-C there: the terminal driver
    sends SIGINT to its whole foreground process group, aitrack and the child alike."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: a session leader whose controlling terminal is the pty
        try:
            os.execve(sys.executable, [sys.executable, "-m", "aitrack", *argv], home.env)
        finally:
            os._exit(99)
    output = bytearray()

    def drain() -> None:
        import select

        while select.select([fd], [], [], 0)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            output.extend(chunk)

    def alive() -> bool:
        drain()
        return os.waitpid(pid, os.WNOHANG) == (0, 0)

    _wait_for(ready, alive)
    os.write(fd, b"\x03")  # Ctrl-C
    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        assert time.monotonic() < deadline, "aitrack did not exit after its child did"
        drain()
        time.sleep(0.02)
    drain()
    os.close(fd)
    return os.waitstatus_to_exitcode(done[1]), output.decode(errors="replace")


def _ctrl_c_to_the_process_group(home, argv: list[str], ready: Path) -> tuple[int, str]:
    """No terminal: SIGINT to aitrack's process group, as `kill -INT -PGID` would."""
    proc = subprocess.Popen([sys.executable, "-m", "aitrack", *argv], env=home.env,
                            start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(ready, lambda: proc.poll() is None)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX terminals and process groups")
@pytest.mark.parametrize("press", [_ctrl_c_in_a_terminal, _ctrl_c_to_the_process_group],
                         ids=["terminal", "process-group"])
def test_ctrl_c_waits_for_the_child_to_flush(home, tmp_path, press):
    child, ready = tmp_path / "flush.py", tmp_path / "ready"
    child.write_text(FLUSH_ON_CTRL_C)
    code, output = press(home, ["run", "--", sys.executable, str(child), str(ready)], ready)
    assert code == 7, output  # the child's own exit status, not aitrack's death by SIGINT
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    db = sqlite3.connect(home.ledger)
    assert db.execute("SELECT token_type, tokens FROM usage").fetchall() == [("output", 777)]
    assert db.execute("SELECT exit_code FROM sessions").fetchall() == [(7,)]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_child_killed_by_a_signal_aitrack_relayed_gives_128_plus_n(home, tmp_path, sig):
    ready = tmp_path / "ready"
    script = f"import time; open({str(ready)!r}, 'w').close(); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-m", "aitrack", "run", "--", sys.executable, "-c",
                             script], env=home.env, start_new_session=True,
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(ready, lambda: proc.poll() is None)
    proc.send_signal(sig)  # to aitrack alone: it passes the signal on and outlives the child
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    db = sqlite3.connect(home.ledger)
    [(code, ended)] = db.execute("SELECT exit_code, ended_at FROM sessions").fetchall()
    assert code == 128 + sig and ended is not None


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_child_killed_by_sigkill_gives_137_in_the_exit_status_and_the_ledger(home):
    result = home.run("run", "--", "sh", "-c", "kill -KILL $$")
    assert result.returncode == 128 + signal.SIGKILL
    db = sqlite3.connect(home.ledger)
    assert db.execute("SELECT exit_code FROM sessions").fetchall() == [(137,)]


# ------------------------------------------------------------------ tools that cannot run

def test_run_with_a_command_not_on_path_exits_127_with_one_line(home):
    result = home.run("run", "--", "aitrack-no-such-tool", "--flag")
    assert result.returncode == 127
    assert result.stderr.count("\n") == 1
    assert "aitrack-no-such-tool: command not found" in result.stderr


def test_run_with_a_missing_path_exits_127_and_a_file_that_is_not_executable_126(home, tmp_path):
    result = home.run("run", "--", str(tmp_path / "gone" / "tool"))
    assert result.returncode == 127
    assert result.stderr.count("\n") == 1 and "cannot run" in result.stderr
    plain = tmp_path / "not-executable"
    plain.write_text("#!/bin/sh\nexit 0\n")
    plain.chmod(0o644)
    result = home.run("run", "--", str(plain))
    assert result.returncode == 126
    assert result.stderr.count("\n") == 1 and "cannot run" in result.stderr


# ------------------------------------------------------------------ the receiver cannot bind

def _no_loopback_address() -> list[str] | None:
    """A command prefix running in a network namespace whose loopback interface has no
    127.0.0.1: binding the receiver there fails as it would on a broken network stack."""
    import shutil

    unshare = shutil.which("unshare")
    ip = shutil.which("ip", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin",
                                                  "/sbin"]))
    if sys.platform != "linux" or not unshare or not ip:
        return None
    prefix = [unshare, "-rn", "sh", "-c",
              f'{ip} link set lo up && {ip} addr del 127.0.0.1/8 dev lo && exec "$@"', "sh"]
    probe = subprocess.run([*prefix, sys.executable, "-c",
                            "import socket; socket.socket().bind(('127.0.0.1', 0))"],
                           capture_output=True, text=True)
    return prefix if "Cannot assign requested address" in probe.stderr else None


def test_without_a_loopback_address_the_tool_runs_untracked_with_one_line(home, fake_tool,
                                                                         tmp_path):
    prefix = _no_loopback_address()
    if prefix is None:
        pytest.skip("cannot make a network namespace here (unshare -rn, ip)")
    result = subprocess.run([*prefix, sys.executable, "-m", "aitrack", "claude", "-p", "hi"],
                            env={**home.env, "AITRACK_CLAUDE_BIN": str(fake_tool),
                                 "DUMP_TO": str(tmp_path / "dump.json"), "EXIT_WITH": "3"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "cannot open the loopback receiver" in result.stderr
    assert "running without telemetry" in result.stderr
    child = dumped(tmp_path)
    assert child["argv"] == ["-p", "hi"]
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in child["env"]


def test_a_receiver_that_cannot_bind_still_runs_the_tool(home, fake_tool, tmp_path, monkeypatch,
                                                        capsys):
    import errno

    from aitrack.capture import tracked_run, wrap

    def no_port():
        raise OSError(errno.EADDRNOTAVAIL, os.strerror(errno.EADDRNOTAVAIL))

    monkeypatch.setattr(tracked_run, "bind", no_port)
    monkeypatch.setenv("DUMP_TO", str(tmp_path / "dump.json"))
    monkeypatch.setenv("EXIT_WITH", "3")
    assert wrap.main("run", ["--", str(fake_tool), "x"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot open the loopback receiver" in err, err
    assert dumped(tmp_path)["argv"] == ["x"]


def test_unreadable_settings_still_find_a_tool_in_the_current_directory(home, fake_tool,
                                                                        tmp_path, monkeypatch,
                                                                        capsys):
    """Without settings there is no shim directory to skip, and the cwd is not one."""
    from aitrack.capture import startup, wrap

    def broken():
        raise ValueError("cache and profile unreadable")

    monkeypatch.setattr(startup, "settings", broken)
    monkeypatch.chdir(fake_tool.parent)
    monkeypatch.setenv("PATH", os.pathsep.join([".", os.environ.get("PATH", "")]))
    monkeypatch.setenv("DUMP_TO", str(tmp_path / "dump.json"))
    monkeypatch.setenv("EXIT_WITH", "4")
    assert wrap.main("run", ["--", "fake-tool", "arg"]) == 4
    assert dumped(tmp_path)["argv"] == ["arg"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read the profile" in err, err


@pytest.mark.parametrize("tool", ["claude", "codex"])
def test_version_and_help_are_not_sessions_but_a_failed_start_is(home, fake_tool, tmp_path,
                                                                 tool):
    """`claude --version` (what a shim or an IDE runs to probe the tool) is recorded as a run,
    never counted as a session; a real invocation that fails at once is one, with its status."""
    env = {f"AITRACK_{tool.upper()}_BIN": str(fake_tool), "DUMP_TO": str(tmp_path / "dump.json")}
    for args in (["--version"], ["--help"]):
        assert home.run(tool, *args, env=env).returncode == 0
    assert home.run(tool, "-p" if tool == "claude" else "exec", "hi",
                    env={**env, "EXIT_WITH": "2"}).returncode == 2
    sessions = home.run("report", "session", "--json", "--no-import")
    assert sessions.returncode == 0, sessions.stderr
    rows = json.loads(sessions.stdout)["sessions"]
    assert [(r["tool"], r["exit_code"]) for r in rows] == [(tool, 2)]
    db = sqlite3.connect(home.ledger)
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 3
