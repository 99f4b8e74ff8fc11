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


def test_codex_gets_otel_overrides_before_its_own_args(home, fake_tool, tmp_path):
    home.write_managed_profile('[attributes]\n"environment" = "production"\n')
    result = home.run("codex", "exec", "fix it", env={"AITRACK_CODEX_BIN": str(fake_tool),
                                                      "DUMP_TO": str(tmp_path / "dump.json")})
    assert result.returncode == 0, result.stderr
    argv = dumped(tmp_path)["argv"]
    assert argv[-2:] == ["exec", "fix it"]
    overrides = dict(a.split("=", 1) for a in argv[:-2] if a != "-c")
    assert '/v1/metrics",protocol="json",headers={"x-aitrack-key"=' in overrides[
        "otel.metrics_exporter"]
    assert '/v1/logs",protocol="json"' in overrides["otel.exporter"]
    assert overrides["otel.trace_exporter"] == '"none"'
    assert overrides["otel.environment"] == '"production"'


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
    assert "user profile ignored" in lines[1] and "attributes.team.id" in lines[1]


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
