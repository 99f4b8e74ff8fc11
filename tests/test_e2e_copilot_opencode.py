"""The real Copilot CLI and opencode, wrapped and (Copilot) direct with the agent: the ledger
equals what the model stub billed, request by request, and `aitrack import` afterwards adds
nothing."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import time

import pytest

import stub_openai_chat
from agents import (
    agent_env,
    copilot_env,
    opencode_config,
    run_aitrack,
    run_copilot,
    run_opencode,
)
from aitrack.egress import otlp
from test_e2e_agents import PROFILE, QUEUED_ENDPOINT, ledger_rows

pytestmark = pytest.mark.e2e
CHAT = "/v1/chat/completions"
PRICES = {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75}  # per 1M, opencode's


def billed(stub, tools: bool | None = None) -> list[stub_openai_chat.Billed]:
    """The chat completions the stub answered (only those that offered tools, or not)."""
    return [b for b in stub_openai_chat.state(stub).billed if tools in (None, b.tools)]


def copilot_expected(requests: list[stub_openai_chat.Billed]) -> dict[str, int]:
    """The requests in ledger types: Copilot's input includes cache reads and writes."""
    out = {"input": sum(b.prompt - b.cached - b.cache_write for b in requests),
           "cache_read": sum(b.cached for b in requests),
           "output": sum(b.completion for b in requests),
           "reasoning": sum(b.reasoning for b in requests)}
    if any(b.cache_write for b in requests):
        out["cache_creation"] = sum(b.cache_write for b in requests)
    return out


def opencode_expected(requests: list[stub_openai_chat.Billed]) -> dict[str, int]:
    """The requests in ledger types: opencode stores input without the cached part."""
    return {"input": sum(b.prompt - b.cached for b in requests),
            "cache_read": sum(b.cached for b in requests),
            "output": sum(b.completion for b in requests),
            "reasoning": sum(b.reasoning for b in requests)}


def normalized_tokens(db: sqlite3.Connection, tool: str) -> dict[str, float]:
    """aitrack.token.usage datapoints of `tool` queued for the org, by token type."""
    found: dict[str, float] = {}
    for (body,) in db.execute("SELECT body FROM outbox WHERE signal = 'metrics'"):
        request = otlp.decode("metrics", body, otlp.PROTOBUF)
        for point in otlp.points(request):
            if point.metric == "aitrack.token.usage" and point.attrs.get("tool") == tool:
                kind = point.attrs["type"]
                found[kind] = found.get(kind, 0) + point.value
    return found


def import_again(home, env: dict[str, str], cwd) -> dict:
    result = run_aitrack(env, "import", "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_copilot_wrapped_counts_each_request_once_from_its_spans_and_its_events(
        home, stub, tmp_path):
    home.write_managed_profile(PROFILE + QUEUED_ENDPOINT)
    stub_openai_chat.state(stub).usage.cache_write = 30  # Copilot: cache writes inside its input
    result = run_copilot(home, stub, tmp_path, "-p", "say hello", "--allow-all-tools")
    assert result.returncode == 0, result.stderr
    assert "Hello from the stub." in result.stdout
    n = len(stub.billed(CHAT))
    assert n >= 1, "copilot never reached the model stub"

    sessions, usage = ledger_rows(home)
    assert len(sessions) == 1
    sid, tool, version, exit_code, _, _ = sessions[0]
    assert (tool, version, exit_code) == ("copilot", "1.0.102", 0)
    assert usage[sid] == {"gpt-4.1": copilot_expected(billed(stub))}

    db = sqlite3.connect(home.ledger)
    assert db.execute("SELECT mode FROM runs").fetchall() == [("receiver",)]
    tsid, sources = db.execute("SELECT tool_session_id, sources FROM sessions").fetchone()
    events = home.env["COPILOT_HOME"] + f"/session-state/{tsid}/events.jsonl"
    assert open(events).readline().startswith('{"type":"session.start"')
    assert sources == 7  # its spans, its events file, and the wrapper
    # each source alone saw every request: neither one's figures are a sum of both
    by_source = {(src, name): v for src, name, v in db.execute(
        "SELECT source, name, value FROM source_figures WHERE name = 'input'")}
    assert by_source == {("telemetry", "input"): n * 770, ("transcript", "input"): n * 770}
    # aitrack's own metrics carry the tool's name
    assert normalized_tokens(db, "copilot")["input"] == n * 770
    db.close()

    again = import_again(home, agent_env(home, stub, tmp_path), tmp_path)
    assert again["responses"] == 0
    assert ledger_rows(home)[1] == usage


def test_copilot_wrapped_without_its_spans_is_counted_from_its_events(home, stub, tmp_path):
    """A user who sends Copilot's telemetry to a file keeps it: the run is read at its exit."""
    home.write_managed_profile(PROFILE)
    exporter = tmp_path / "copilot-otel.jsonl"
    result = run_copilot(home, stub, tmp_path, "-p", "say hello", "--allow-all-tools",
                         env={"COPILOT_OTEL_FILE_EXPORTER_PATH": str(exporter)})
    assert result.returncode == 0, result.stderr
    n = len(stub.billed(CHAT))
    assert '"chat gpt-4.1"' in exporter.read_text()  # its own file, as configured
    sessions, usage = ledger_rows(home)
    assert usage[sessions[0][0]] == {"gpt-4.1": copilot_expected(billed(stub))}
    # the exporter's file holds the same requests again: importing it adds nothing
    again = import_again(home, {**agent_env(home, stub, tmp_path),
                                "COPILOT_OTEL_FILE_EXPORTER_PATH": str(exporter)}, tmp_path)
    assert again["responses"] == 0 and again["duplicates"] >= n
    assert ledger_rows(home)[1] == usage


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_copilot_direct_reaches_the_agent_through_its_environment_or_its_files(
        home, stub, tmp_path):
    """`aitrack agent install` wires Copilot's headers helper; a run whose environment names
    the agent sends its spans there with the key, one that does not is read from its files;
    uninstall puts its settings back byte for byte."""
    port = free_port()
    home.write_managed_profile(f"[agent]\nport = {port}\nimport_interval_s = 10\n" + PROFILE)
    env = {**agent_env(home, stub, tmp_path), **copilot_env(stub)}
    settings = tmp_path / "copilot-home" / "settings.json"
    settings.parent.mkdir(parents=True)
    before = b'{\n  "theme": "dark"\n}\n'
    settings.write_bytes(before)
    work = tmp_path / "work"
    work.mkdir()
    installed = run_aitrack(env, "agent", "install", "--no-service", "--json", cwd=work)
    assert installed.returncode == 0, installed.stderr
    try:
        wired = json.loads(settings.read_text())["telemetry"]["headersProvider"]
        assert wired["path"] == "/bin/sh" and wired["args"][0].endswith("otel-headers-copilot")
        secret = (home.root / "state" / "agent" / "secret").read_text().strip()
        assert secret not in settings.read_text()

        def copilot(prompt: str, **extra: str) -> None:
            done = subprocess.run([env["AITRACK_COPILOT_BIN"], "-p", prompt, "--allow-all-tools"],
                                  env={**env, **extra}, cwd=work, capture_output=True,
                                  text=True, timeout=120, stdin=subprocess.DEVNULL)
            assert done.returncode == 0, done.stderr

        copilot("to the agent", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
                OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
        sent = copilot_expected(billed(stub))["input"]
        assert wait_for(lambda: telemetry_input(home) == sent), \
            "the spans never reached the agent (the helper's key?)"
        copilot("from its files")  # no endpoint: the agent's import reads its events
        both = copilot_expected(billed(stub))["input"]
        assert wait_for(lambda: total_input(home) == both, timeout=40)
        sessions, usage = ledger_rows(home)
        assert len(sessions) == 2 and all(s[1] == "copilot" for s in sessions)
        assert sum(u["gpt-4.1"]["input"] for u in usage.values()) == both
    finally:
        run_aitrack(env, "agent", "uninstall", cwd=work)
    assert settings.read_bytes() == before


def ledger_sum(home, sql: str) -> int:
    if not home.ledger.exists():
        return 0
    db = sqlite3.connect(home.ledger)
    try:
        return db.execute(sql).fetchone()[0] or 0
    except sqlite3.Error:
        return 0
    finally:
        db.close()


def telemetry_input(home) -> int:
    return ledger_sum(home, "SELECT SUM(value) FROM source_figures WHERE source = 'telemetry' "
                            "AND name = 'input'")


def total_input(home) -> int:
    return ledger_sum(home, "SELECT SUM(tokens) FROM usage WHERE token_type = 'input'")


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


def test_opencode_wrapped_is_read_from_its_database_at_exit(home, stub, tmp_path):
    home.write_managed_profile(PROFILE + QUEUED_ENDPOINT)
    opencode_config(tmp_path / "user-home", stub, cost=PRICES)
    result = run_opencode(home, stub, tmp_path, "run", "say hello")
    assert result.returncode == 0, result.stderr
    assert "Hello from the stub." in result.stdout
    main = billed(stub, tools=True)
    titles = len(billed(stub)) - len(main)
    assert main and titles == 1  # the title request offers no tools, and is stored nowhere

    sessions, usage = ledger_rows(home)
    assert len(sessions) == 1
    sid, tool, version, exit_code, _, _ = sessions[0]
    assert (tool, version, exit_code) == ("opencode", "1.18.33", 0)
    assert usage[sid] == {"fake-model": opencode_expected(main)}

    db = sqlite3.connect(home.ledger)
    assert db.execute("SELECT mode FROM runs").fetchall() == [("transcript",)]
    tsid, sources = db.execute("SELECT tool_session_id, sources FROM sessions").fetchone()
    assert tsid.startswith("ses_") and sources == 6  # its database, and the wrapper
    figures = dict(db.execute("SELECT name, value FROM session_metrics"))
    # opencode's own cost, from its config's prices (reasoning at the output price)
    own = sum((b.prompt - b.cached) * 3 + b.completion * 15 + b.cached * 0.3 for b in main) / 1e6
    assert figures["tool_cost_usd"] == pytest.approx(own)
    assert figures["unrecorded_requests"] == 1  # the title request: the known gap
    assert normalized_tokens(db, "opencode")["input"] == sum(b.prompt - b.cached for b in main)
    db.close()

    report = run_aitrack(agent_env(home, stub, tmp_path), "report", "session", "--json",
                         cwd=tmp_path)
    row = json.loads(report.stdout)["sessions"][0]
    assert row["cost_source"] == "unpriced"  # a made-up model: no list price, never $0
    assert row["tool_figures"]["tool_cost_usd"] == pytest.approx(round(own, 6))  # micro-dollars

    again = import_again(home, agent_env(home, stub, tmp_path), tmp_path)
    assert again["responses"] == 0
    assert ledger_rows(home)[1] == usage
