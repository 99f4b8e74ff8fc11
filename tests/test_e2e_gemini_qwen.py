"""The real Gemini CLI and Qwen Code against the model stub: the ledger equals what the model
billed, per model and token type, router and subagent calls included; `aitrack import`
afterwards adds nothing; a closed agent port never reaches the user."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections import Counter

import psutil
import pytest

import hygiene
import stub_gemini
import stub_openai_chat
from agents import GEMINI_SETTINGS, agent_bin, gemini_env, qwen_env, run_gemini, run_qwen
from org_endpoint import profile_toml
from test_e2e_agent import free_port
from test_e2e_normalized import (
    ATTRIBUTES,
    check_once_and_attributed,
    cost_received,
    ledger_tokens,
    sessions_counted,
    tokens_received,
)

pytestmark = pytest.mark.e2e
pytest_plugins = ("org_endpoint",)  # fixtures: authority, org, token

ANSWER = "Hello from the stub.\n"  # all a user sees on stdout: nothing of aitrack's
BASE = ("input", "output", "cache_read", "cache_creation")


def usage(home, tool: str) -> dict:
    if not home.ledger.exists():
        return {}
    db = sqlite3.connect(home.ledger)
    try:
        rows = db.execute("SELECT u.model, u.token_type, SUM(u.tokens) FROM usage u JOIN "
                          "sessions s ON s.id = u.session_id WHERE s.tool = ? GROUP BY 1, 2",
                          (tool,)).fetchall()
    finally:
        db.close()
    out: dict = {}
    for model, token_type, n in rows:
        out.setdefault(model, {})[token_type] = n
    return out


def _add(out: dict, model: str, figures: dict) -> None:
    row = out.setdefault(model, {})
    for name, value in figures.items():
        if value:
            row[name] = row.get(name, 0) + value


def billed_gemini(stub, methods=("generateContent", "streamGenerateContent")) -> dict:
    """What the Gemini API billed, in ledger types: thoughts are output too."""
    out: dict = {}
    for b in stub_gemini.state(stub).billed:
        if b.method in methods:
            _add(out, b.model, {"input": b.prompt - b.cached, "cache_read": b.cached,
                                "output": b.candidates + b.thoughts, "reasoning": b.thoughts})
    return out


def billed_chat(stub) -> dict:
    """What the chat completions billed: completion tokens already include reasoning."""
    out: dict = {}
    for b in stub_openai_chat.state(stub).billed:
        _add(out, b.model, {"input": b.prompt - b.cached, "cache_read": b.cached,
                            "output": b.completion, "reasoning": b.reasoning})
    return out


def imported(home, tool_env: dict[str, str]) -> dict:
    result = home.run("import", "--json", env=tool_env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def stop_agents(home) -> None:
    """Every agent of this aitrack home, and its worker (`agent stop` may come before an
    agent the wrapper just started has written its pid)."""
    home.run("agent", "stop")
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            if (proc.info["cmdline"] or [])[-2:] == ["agent", "run"] and \
                    (proc.info["environ"] or {}).get("AITRACK_HOME") == str(home.root):
                found += [proc, *proc.children(recursive=True)]
        except (psutil.Error, TypeError):
            continue
    hygiene.stop(found)


def sessions(home, tool: str) -> list[tuple]:
    db = sqlite3.connect(home.ledger)
    try:
        return db.execute("SELECT tool_session_id, tool_version, exit_code, sources FROM "
                          "sessions WHERE tool = ?", (tool,)).fetchall()
    finally:
        db.close()


# ---------------------------------------------------------------- wrapped


def test_gemini_wrapped_counts_the_router_and_the_main_turn(home, stub, tmp_path):
    result = run_gemini(home, stub, tmp_path, "-p", "say hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER
    expected = billed_gemini(stub)
    assert set(expected) == {"gemini-3.5-flash-lite", "gemini-3.8-flash"}  # router, turn
    assert usage(home, "gemini") == expected
    [(tsid, version, exit_code, sources)] = sessions(home, "gemini")
    assert len(tsid) == 36 and exit_code == 0
    assert version is None  # its service.version is Node's, not Gemini CLI's
    assert sources & 1 and sources & 2  # telemetry and its chat file
    imported(home, gemini_env(stub, tmp_path / "user-home"))
    assert usage(home, "gemini") == expected  # the chat files add nothing


def test_gemini_complex_prompt_goes_to_the_pro_model(home, stub, tmp_path):
    result = run_gemini(home, stub, tmp_path, "-p", "COMPLEX: redesign the storage layer")
    assert result.returncode == 0, result.stderr
    expected = billed_gemini(stub)
    assert "gemini-3.1-pro-preview-customtools" in expected
    assert usage(home, "gemini") == expected
    report = home.run("report", "session", "--json", "--tool", "gemini")
    assert report.returncode == 0, report.stderr
    [session] = json.loads(report.stdout)["sessions"]
    assert session["tool"] == "gemini" and session["cost_usd"] > 0


def test_gemini_chat_files_alone_miss_only_the_router(home, stub, tmp_path):
    """Without telemetry (a run aitrack did not wrap), the chat file holds the main turn."""
    env = {**home.env, **gemini_env(stub, tmp_path / "user-home")}
    done = subprocess.run([agent_bin("gemini"), "-p", "say hi"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    imported(home, env)
    assert usage(home, "gemini") == billed_gemini(stub, ("streamGenerateContent",))
    db = sqlite3.connect(home.ledger)  # the gap is said (report session's notes)
    assert db.execute("SELECT kind FROM session_notes").fetchall() == [("utility_requests",)]
    db.close()


def test_qwen_wrapped_counts_the_main_call_and_its_subagent(home, stub, tmp_path):
    result = run_qwen(home, stub, tmp_path, "-p", "say hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER
    assert len(stub_openai_chat.state(stub).billed) >= 2  # the memory-extractor subagent too
    expected = billed_chat(stub)
    assert usage(home, "qwen") == expected
    [(tsid, version, exit_code, sources)] = sessions(home, "qwen")
    assert (len(tsid), version, exit_code) == (36, "0.24.4", 0)
    assert sources & 1 and sources & 2
    imported(home, qwen_env(stub, tmp_path / "user-home"))
    assert usage(home, "qwen") == expected


def test_qwen_files_alone_count_each_request_once(home, stub, tmp_path):
    """A run aitrack did not see: its chat file and the token-usage file both hold every
    request; imported, each counts once."""
    env = {**home.env, **qwen_env(stub, tmp_path / "user-home")}
    done = subprocess.run([agent_bin("qwen"), "--auth-type", "openai", "-p", "say hi"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "user-home" / ".qwen" / "usage").glob("token-usage-*.jsonl"))
    first = imported(home, env)
    assert usage(home, "qwen") == billed_chat(stub)
    assert first["duplicates"] >= len(stub_openai_chat.state(stub).billed)
    imported(home, env)
    assert usage(home, "qwen") == billed_chat(stub)


def test_qwen_without_usage_statistics_still_counts_every_request(home, stub, tmp_path):
    """`usageStatisticsEnabled: false` stops the token-usage file, not the chat rows."""
    user_home = tmp_path / "user-home"
    (user_home / ".qwen").mkdir(parents=True)
    (user_home / ".qwen" / "settings.json").write_text(
        '{"privacy": {"usageStatisticsEnabled": false}}\n')
    result = run_qwen(home, stub, tmp_path, "-p", "say hi")
    assert result.returncode == 0, result.stderr
    assert not list((user_home / ".qwen" / "usage").glob("token-usage-*.jsonl"))
    assert usage(home, "qwen") == billed_chat(stub)
    home.ledger.unlink()
    imported(home, qwen_env(stub, user_home))
    assert usage(home, "qwen") == billed_chat(stub)


# ---------------------------------------------------------------- the agent's port closed


@pytest.mark.parametrize("agent", ["stopped", "running"])
@pytest.mark.parametrize("tool", ["gemini", "qwen"])
def test_a_wrapped_run_has_its_own_receiver_whatever_the_agent_does(home, stub, tmp_path, tool,
                                                                     agent):
    """Its settings point at the agent. Stopped: the run does not wait on the closed port (8 s,
    retry lines on stdout). Running: the run does not depend on the agent admitting a sender
    without its key (an Unauthorized export is a line on Gemini CLI's stdout). Either way it is
    counted once, by its own receiver."""
    port = free_port()
    home.write_managed_profile(f"[agent]\nport = {port}\n")
    user_home = tmp_path / "user-home"
    folder = user_home / (".gemini" if tool == "gemini" else ".qwen")
    folder.mkdir(parents=True)
    settings = {"telemetry": {"enabled": True, "target": "local",
                              "otlpEndpoint": f"http://127.0.0.1:{port}", "otlpProtocol": "http",
                              "logPrompts": False}}
    if tool == "gemini":
        settings.update(GEMINI_SETTINGS)
    (folder / "settings.json").write_text(json.dumps(settings))
    try:
        if agent == "running":
            started = home.run("agent", "start")
            assert started.returncode == 0, started.stderr
        run = run_gemini if tool == "gemini" else run_qwen
        result = run(home, stub, tmp_path, "-p", "say hi")
        assert result.returncode == 0, result.stderr
        assert result.stdout == ANSWER
        expected = billed_gemini(stub) if tool == "gemini" else billed_chat(stub)
        assert usage(home, tool) == expected
        db = sqlite3.connect(home.ledger)
        assert db.execute("SELECT mode FROM runs").fetchall() == [("receiver",)]
        db.close()
    finally:
        stop_agents(home)


# ---------------------------------------------------------------- direct, with the agent


@pytest.mark.parametrize("tool", ["gemini", "qwen"])
def test_direct_with_the_agent(home, stub, tmp_path, tool):
    """`aitrack agent install` wires the tool's settings; started directly (no aitrack), it
    reaches the agent, which ledgers what the model billed."""
    import time

    port = free_port()
    home.write_managed_profile(f"[agent]\nport = {port}\n")
    user_home = tmp_path / "user-home"
    env = {**home.env, **(gemini_env(stub, user_home) if tool == "gemini"
                          else qwen_env(stub, user_home))}
    installed = home.run("agent", "install", "--no-service", env=env)
    assert installed.returncode == 0, installed.stderr
    try:
        argv = [agent_bin(tool), *(["--auth-type", "openai"] if tool == "qwen" else []),
                "-p", "say hi"]
        done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        assert done.stdout == ANSWER
        expected = billed_gemini(stub) if tool == "gemini" else billed_chat(stub)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and usage(home, tool) != expected:
            time.sleep(0.2)
        assert usage(home, tool) == expected
        imported(home, env)
        assert usage(home, tool) == expected
    finally:
        home.run("agent", "uninstall", env=env)


# ---------------------------------------------------------------- aitrack's own metrics


def test_their_sessions_arrive_normalised_once_with_tool_names(home, stub, tmp_path, org,
                                                               authority, keychain_account,
                                                               token):
    """aitrack.token.usage / cost.usage / session.count with tool=gemini and tool=qwen, equal
    to the ledger, at the org endpoint (Qwen's default model has no price: no cost datapoint,
    never $0)."""
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account,
                                            attributes=ATTRIBUTES))
    for run in (run_gemini, run_qwen):
        done = run(home, stub, tmp_path, "-p", "say hi")
        assert done.returncode == 0, done.stderr
    assert org.wait_for(lambda o: all(ledger_tokens(home, t) and tokens_received(o, t) ==
                                      ledger_tokens(home, t) for t in ("gemini", "qwen")),
                        timeout=60), tokens_received(org, "gemini")
    assert org.wait_for(lambda o: sessions_counted(o) == Counter(
        {("gemini", "ok"): 1, ("qwen", "ok"): 1}), timeout=30), sessions_counted(org)
    assert set(cost_received(org, "gemini")) == {"gemini-3.5-flash-lite", "gemini-3.8-flash"}
    assert cost_received(org, "qwen") == {}  # qwen3.7-max is unpriced
    check_once_and_attributed(org, home, ("gemini",))
