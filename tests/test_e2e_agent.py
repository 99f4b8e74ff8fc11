"""The per-user agent with the real claude and codex, started directly and through aitrack.

`aitrack agent install --no-service` in a throwaway HOME points both tools' own settings at
the agent and starts it detached (as in a container without a service manager); the tests
then run the tools as a developer would, and check what reaches the ledger and the org.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from agents import agent_bin, run_aitrack, stop_codex_daemons
from org_endpoint import profile_toml
from terminal import Terminal
from test_e2e_agents import expected_claude

pytestmark = pytest.mark.e2e
pytest_plugins = ("org_endpoint",)  # fixtures: authority, org, token

ATTRIBUTES = {"team.id": "platform-eng", "cost_center": "CC-4200", "department": "engineering",
              "environment": "production", "user.email": "dev@example.com"}
SHARED_SERVER_WARNING = "Running without the shared background server"
CLAUDE_SETTINGS = b'{\n    "theme": "dark",\n    "env": {"MY_VAR": "kept"}\n}\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Machine:
    """A developer's account: HOME with both tools configured, aitrack, the agent wired."""

    def __init__(self, home, stub, tmp: Path, profile: str = ""):
        self.tmp = tmp
        self.stub = stub
        self.port = free_port()
        self.user_home = tmp / "user-home"
        self.codex_home = self.user_home / ".codex"
        self.codex_home.mkdir(parents=True)
        (self.user_home / ".claude").mkdir()
        self.claude_settings = self.user_home / ".claude" / "settings.json"
        self.claude_settings.write_bytes(CLAUDE_SETTINGS)
        self.codex_config = self.codex_home / "config.toml"
        # the model provider lives in Codex's own config: no -c on any command line
        self.codex_config.write_text(
            "# my codex settings\nmodel_provider = \"mock\"\nmodel = \"gpt-5\"\n\n"
            "[model_providers.mock]\nname = \"mock\"\n"
            f"base_url = \"{stub.url}/v1\"\nenv_key = \"MOCK_KEY\"\nwire_api = \"responses\"\n")
        self.before = {self.claude_settings: self.claude_settings.read_bytes(),
                       self.codex_config: self.codex_config.read_bytes()}
        home.write_managed_profile(f"[agent]\nport = {self.port}\n" + profile)
        self.home = home
        self.env = {**home.env, "HOME": str(self.user_home), "CODEX_HOME": str(self.codex_home),
                    "CLAUDE_CONFIG_DIR": str(self.user_home / ".claude"),
                    "ANTHROPIC_BASE_URL": stub.url, "ANTHROPIC_API_KEY": "sk-ant-test",
                    "MOCK_KEY": "sk-test", "DISABLE_AUTOUPDATER": "1",
                    "AITRACK_CLAUDE_BIN": agent_bin("claude"),
                    "AITRACK_CODEX_BIN": agent_bin("codex")}
        self.work = tmp / "work"
        self.work.mkdir()

    def aitrack(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return run_aitrack(self.env, *args, cwd=self.work, timeout=timeout)

    def install(self) -> dict:
        result = self.aitrack("agent", "install", "--no-service", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    @property
    def secret(self) -> str:
        return (self.home.root / "state" / "agent" / "secret").read_text().strip()

    def claude(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([agent_bin("claude"), *args], env=self.env, cwd=self.work,
                              capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    def codex(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([agent_bin("codex"), *args], env=self.env, cwd=self.work,
                              capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    def ledger(self) -> sqlite3.Connection:
        return sqlite3.connect(self.home.ledger)

    def usage(self, tool: str) -> dict:
        db = self.ledger()
        try:
            rows = db.execute("SELECT u.model, u.token_type, SUM(u.tokens) FROM usage u "
                              "JOIN sessions s ON s.id = u.session_id WHERE s.tool = ? "
                              "GROUP BY 1, 2", (tool,)).fetchall()
        finally:
            db.close()
        out: dict = {}
        for model, token_type, n in rows:
            out.setdefault(model, {})[token_type] = n
        return out

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return True
            except sqlite3.Error:
                pass
            time.sleep(0.2)
        return False

    def uninstall(self) -> None:
        self.aitrack("agent", "uninstall")
        for proc in psutil.process_iter(["cmdline", "environ"]):
            try:
                if (proc.info["cmdline"] or [])[-2:] == ["agent", "run"] and \
                        (proc.info["environ"] or {}).get("AITRACK_HOME") == str(self.home.root):
                    proc.kill()
            except (psutil.Error, TypeError):
                continue
        stop_codex_daemons(self.user_home)


@pytest.fixture
def machine(home, stub, tmp_path, request):
    profile = getattr(request, "param", "")
    m = Machine(home, stub, tmp_path, profile)
    yield m
    m.uninstall()


def expected_codex(stub) -> dict:
    u, n = stub.openai, len(stub.billed("/v1/responses"))
    return {"gpt-5": {"input": n * (u.input - u.cached), "cache_read": n * u.cached,
                      "output": n * u.output, "reasoning": n * u.reasoning}}


def test_runs_started_directly_are_ledgered_exactly_and_reach_the_org(
        home, stub, tmp_path, org, authority, keychain_account, token):
    """claude -p and codex exec, not through aitrack: the agent captures both."""
    m = Machine(home, stub, tmp_path, profile_toml(org, authority.pem, keychain_account,
                                                   attributes=ATTRIBUTES))
    try:
        m.install()
        claude = m.claude("-p", "say hello", "--max-turns", "1")
        assert claude.returncode == 0, claude.stderr
        assert "Hello from the stub." in claude.stdout
        codex = m.codex("exec", "--skip-git-repo-check", "say hello")
        assert codex.returncode == 0, codex.stderr
        assert stub.billed("/v1/messages") and stub.billed("/v1/responses")

        want_claude, want_codex = expected_claude(stub), expected_codex(stub)
        assert m.wait_for(lambda: m.usage("claude") == want_claude), m.usage("claude")
        assert m.wait_for(lambda: m.usage("codex") == want_codex), m.usage("codex")
        db = m.ledger()
        sessions = db.execute("SELECT tool, entrypoint, exit_code, attributes, sources "
                              "FROM sessions ORDER BY tool").fetchall()
        assert [(t, e, x) for t, e, x, _, _ in sessions] == [
            ("claude", "sdk-cli", None), ("codex", "codex_exec", None)]  # no wrapper: no status
        for *_, attributes, sources in sessions:
            assert {k: json.loads(attributes).get(k) for k in ATTRIBUTES} == ATTRIBUTES
            assert sources & 1  # telemetry

        assert org.wait_for(lambda o: {r.signal for r in o.accepted()} >= {"metrics", "logs"}
                            and {a.get("service.name") for r in o.accepted()
                                 for a in r.resource_attributes()} >= {"claude-code",
                                                                       "codex_exec"})
        for r in org.accepted():
            assert r.authorized and "x-aitrack-key" not in r.headers
            for attrs in r.resource_attributes():
                assert {k: attrs.get(k) for k in ATTRIBUTES} == ATTRIBUTES
    finally:
        m.uninstall()


def test_the_codex_tui_through_aitrack_keeps_its_shared_background_server(machine):
    """No -c: Codex stays in its shared background-server mode, and its argv is the user's.

    The control is the same TUI given a `-c` override directly, which must show the warning
    (so this test can tell the two apart)."""
    machine.install()
    control, term = _tui(machine, [agent_bin("codex"), "-c", "model=gpt-5"], "control")
    term.close()
    assert SHARED_SERVER_WARNING in control, control[-3000:]

    seen, term = _tui(machine, [sys.executable, "-m", "aitrack", "codex"], "wrapped")
    try:
        assert "OpenAI Codex" in seen, seen[-3000:]
        assert SHARED_SERVER_WARNING not in seen, seen[-3000:]

        wrapper = _process_with(["-m", "aitrack", "codex"])
        assert wrapper is not None, "aitrack codex is not running in tmux"
        [child] = wrapper.children()
        assert child.cmdline()[-1].endswith("codex")  # the user gave no arguments at all
        secret = machine.secret
        for proc in psutil.process_iter(["cmdline"]):
            line = " ".join(proc.info["cmdline"] or [])
            assert secret not in line, f"the agent's secret is in the argv of {line[:200]}"
        for path in _files_holding(secret, [machine.tmp]):
            assert not _readable_by_another_user(path), f"{path} holds the secret"
    finally:
        term.close()


def _tui(machine, argv: list[str], session: str) -> tuple[str, Terminal]:
    """Everything a terminal UI showed: its start, then each startup warning (F2, then ->);
    and the terminal, still running (the caller closes it)."""
    env = {k: v for k, v in machine.env.items()
           if k.startswith(("AITRACK_", "HOME", "CODEX_HOME", "MOCK_KEY", "PATH"))}
    term = Terminal(session, argv, machine.work, env)
    screens = [term.wait_for("Ask Codex", "Trust this folder")]
    time.sleep(1.0)  # warnings are counted once start-up is done
    for key in ("F2", "Right", "Right"):
        term.send(key)
        time.sleep(1.0)
        screens.append(term.screen())
    return "\n".join(screens), term


def test_uninstall_leaves_both_settings_files_byte_identical(machine):
    machine.install()
    assert machine.claude_settings.read_bytes() != machine.before[machine.claude_settings]
    assert b"x-aitrack-key" in machine.codex_config.read_bytes()
    result = machine.aitrack("agent", "uninstall")
    assert result.returncode == 0, result.stderr
    for path, content in machine.before.items():
        assert path.read_bytes() == content, path


def test_with_the_agent_stopped_both_tools_still_run_at_their_usual_pace(machine):
    machine.install()

    def timed(run) -> float:
        """The fastest of three runs: a delay of the tool's own (an exporter retrying) is in
        every run, a busy machine's is not."""
        times = []
        for _ in range(3):
            start = time.perf_counter()
            result = run()
            times.append(time.perf_counter() - start)
            assert result.returncode == 0, result.stderr
        return min(times)

    claude = lambda: machine.claude("-p", "hi", "--max-turns", "1")  # noqa: E731
    codex = lambda: machine.codex("exec", "--skip-git-repo-check", "hi")  # noqa: E731
    usual = {"claude": timed(claude), "codex": timed(codex)}
    assert machine.aitrack("agent", "stop").returncode == 0
    assert not machine.wait_for(lambda: _listening(machine.port), timeout=1)
    stopped = {"claude": timed(claude), "codex": timed(codex)}
    for tool in usual:
        assert stopped[tool] < usual[tool] + 0.5, (tool, usual, stopped)


def _process_with(words: list[str]):
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if any(cmd[i:i + len(words)] == words for i in range(len(cmd))):
            return proc
    return None


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _files_holding(secret: str, roots: list[Path]) -> list[Path]:
    found = []
    needle = secret.encode()
    for root in roots:
        # os.walk ignores directories that vanish mid-walk (Codex's staging folders do)
        for directory, _, names in os.walk(root):
            for name in names:
                path = Path(directory, name)
                try:
                    if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                        found.append(path)
                except OSError:
                    continue
    return found


def _readable_by_another_user(path: Path) -> bool:
    """Whether the `nobody` account can read the file (the test runs as root)."""
    result = subprocess.run(["cat", str(path)], user=65534, group=65534,
                            capture_output=True, timeout=10)
    return result.returncode == 0


def test_the_secret_is_kept_private(machine):
    machine.install()
    files = _files_holding(machine.secret, [machine.tmp])
    assert files, "the agent's secret is nowhere: the test would prove nothing"
    assert any(re.search(r"agent/secret$", str(f)) for f in files)
    for path in files:
        assert not _readable_by_another_user(path), path


def test_wrapped_runs_are_recorded_by_the_agent_or_without_it_by_the_wrapper(machine):
    """`aitrack codex` and `aitrack claude` with the tools wired: the agent records the run
    (exit status, its sessions); with the agent gone, the wrapper records it itself, once."""
    machine.install()
    for tool, args in (("codex", ("exec", "--skip-git-repo-check", "hi")),
                       ("claude", ("-p", "hi", "--max-turns", "1"))):
        result = machine.aitrack(tool, *args)
        assert result.returncode == 0, result.stderr
    assert machine.wait_for(lambda: len(_runs(machine)) == 2 and all(
        r[2] == 0 for r in _runs(machine)) and _linked(machine))
    assert machine.aitrack("agent", "stop").returncode == 0
    assert not machine.wait_for(lambda: _listening(machine.port), timeout=1)
    result = machine.aitrack("codex", "exec", "--skip-git-repo-check", "hi again")
    assert result.returncode == 0, result.stderr
    assert machine.wait_for(lambda: _linked(machine))

    runs = _runs(machine)
    assert [(tool, mode, code) for tool, mode, code, _ in runs] == [
        ("codex", "agent", 0), ("claude", "agent", 0), ("codex", "agent", 0)]
    db = machine.ledger()
    for run_id in (r[3] for r in runs):
        [(tool, exit_code, sources)] = db.execute(
            "SELECT tool, exit_code, sources FROM sessions WHERE run_id = ?",
            (run_id,)).fetchall()  # one tool session per run, ended with the run's status
        assert exit_code == 0 and sources & 4, (tool, sources)  # the wrapper's word
    assert machine.wait_for(lambda: _listening(machine.port))  # woken by the last run

    # another program on the agent's port: the wrapper records the run itself
    assert machine.aitrack("agent", "stop").returncode == 0
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.send_error(404)

        def log_message(self, *args):
            pass

    other = HTTPServer(("127.0.0.1", machine.port), NotFound)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        result = machine.aitrack("codex", "exec", "--skip-git-repo-check", "third")
        assert result.returncode == 0, result.stderr
    finally:
        other.shutdown()
        other.server_close()
    last = _runs(machine)[-1]
    assert last[:3] == ("codex", "agent", 0)
    [(exit_code, sources)] = db.execute("SELECT exit_code, sources FROM sessions WHERE "
                                        "run_id = ?", (last[3],)).fetchall()
    assert exit_code == 0 and sources & 2 and sources & 4  # read from its rollout, here


def _linked(machine) -> bool:
    """Every ended run is linked to its sessions (the agent does it just after answering)."""
    db = machine.ledger()
    try:
        return db.execute("SELECT COUNT(*) FROM runs WHERE pending_end IS NOT NULL "
                          "OR ended_at IS NULL").fetchone()[0] == 0
    finally:
        db.close()


def _runs(machine) -> list[tuple]:
    db = machine.ledger()
    try:
        return db.execute("SELECT tool, mode, exit_code, id FROM runs ORDER BY started_at"
                          ).fetchall()
    finally:
        db.close()
