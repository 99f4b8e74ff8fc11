"""The real claude and codex binaries, wrapped: the ledger equals what the model billed."""

from __future__ import annotations

import json
import sqlite3

import pytest

from agents import codex_provider_args, run_claude, run_codex
from aitrack.egress import otlp

pytestmark = pytest.mark.e2e

PROFILE = """
[attributes]
"team.id" = "platform-eng"
"cost_center" = "CC-4200"
"department" = "engineering"
"environment" = "production"
"user.email" = "dev@example.com"
"""
# an endpoint nobody listens on: payloads stay queued in the outbox for inspection
QUEUED_ENDPOINT = """
[endpoint]
url = "https://127.0.0.1:9"
signals = ["metrics", "logs"]
flush_timeout_s = 0.2
"""


def ledger_rows(home) -> tuple[list, dict]:
    db = sqlite3.connect(home.ledger)
    sessions = db.execute("SELECT id, tool, tool_version, exit_code, attributes, ended_at "
                          "FROM sessions").fetchall()
    usage: dict = {}
    for sid, model, token_type, tokens in db.execute("SELECT * FROM usage"):
        usage.setdefault(sid, {}).setdefault(model, {})[token_type] = tokens
    return sessions, usage


def expected_claude(stub) -> dict:
    out: dict = {}
    u = stub.anthropic
    for call in stub.billed("/v1/messages"):
        row = out.setdefault(call.model, dict.fromkeys(
            ("input", "output", "cache_read", "cache_creation"), 0))
        row["input"] += u.input
        row["output"] += u.output
        row["cache_read"] += u.cache_read
        row["cache_creation"] += u.cache_creation
    return out


def test_claude_session_ledger_matches_what_the_model_billed(home, stub, tmp_path):
    home.write_managed_profile(PROFILE)
    result = run_claude(home, stub, tmp_path, "-p", "say hello", "--max-turns", "1")
    assert result.returncode == 0, result.stderr
    assert "Hello from the stub." in result.stdout
    assert stub.billed("/v1/messages"), "claude never reached the model stub"

    sessions, usage = ledger_rows(home)
    assert len(sessions) == 1
    sid, tool, version, exit_code, attributes, ended_at = sessions[0]
    assert (tool, exit_code) == ("claude", 0)
    assert version == "2.1.328"
    assert ended_at is not None
    assert usage[sid] == expected_claude(stub)
    attrs = json.loads(attributes)
    assert attrs["team.id"] == "platform-eng" and attrs["cost_center"] == "CC-4200"
    assert attrs["user.email"] == "dev@example.com"

    db = sqlite3.connect(home.ledger)
    cost = db.execute("SELECT SUM(value) FROM session_metrics WHERE name = 'cost_usd'").fetchone()
    assert cost[0] and cost[0] > 0, "claude's own cost figure was not recorded"
    tool_ids = db.execute("SELECT tool_session_id FROM tool_sessions").fetchall()
    assert len(tool_ids) == 1 and len(tool_ids[0][0]) == 36  # claude's session uuid


def test_claude_cumulative_temporality_gives_the_same_totals(home, stub, tmp_path):
    # Exports every 100 ms: several cumulative exports of the same series must not add up.
    home.write_managed_profile(PROFILE + "\n[telemetry]\nmetric_export_interval_ms = 100\n")
    result = run_claude(home, stub, tmp_path, "-p", "say hello", "--max-turns", "1",
                        env={"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "cumulative"})
    assert result.returncode == 0, result.stderr
    sessions, usage = ledger_rows(home)
    assert usage[sessions[0][0]] == expected_claude(stub)


def test_codex_without_the_agent_is_read_from_its_rollout(home, stub, tmp_path):
    """No -c for Codex: its run is read from the rollout it wrote, exactly as billed, and only
    aitrack's own metrics, with the profile's attributes, wait to be forwarded."""
    home.write_managed_profile(PROFILE + QUEUED_ENDPOINT)
    result = run_codex(home, stub, tmp_path, "exec", *codex_provider_args(stub), "say hello")
    assert result.returncode == 0, result.stderr
    calls = stub.billed("/v1/responses")
    assert calls, "codex never reached the model stub"

    sessions, usage = ledger_rows(home)
    sid, tool, version, exit_code, _, _ = sessions[0]
    assert (tool, version, exit_code) == ("codex", "0.169.0", 0)
    u, n = stub.openai, len(calls)
    assert usage[sid] == {"gpt-5": {
        "input": n * (u.input - u.cached),
        "cache_read": n * u.cached,
        "output": n * u.output,
        "reasoning": n * u.reasoning,
    }}

    db = sqlite3.connect(home.ledger)
    assert db.execute("SELECT mode FROM runs").fetchall() == [("transcript",)]
    assert db.execute("SELECT sources FROM sessions").fetchone()[0] & 2  # the transcript
    tool_ids = db.execute("SELECT tool_session_id FROM sessions").fetchall()
    assert len(tool_ids) == 1 and len(tool_ids[0][0]) == 36  # codex's thread id

    # what would be forwarded: aitrack's usage metrics, with the profile's attributes
    bodies = db.execute("SELECT signal, body FROM outbox").fetchall()
    assert [s for s, _ in bodies] == ["metrics"]
    request = otlp.decode("metrics", bodies[0][1], otlp.PROTOBUF)
    assert otlp.resource_value(request, "service.name") == "aitrack"
    assert otlp.resource_value(request, "team.id") == "platform-eng"
    assert otlp.resource_value(request, "environment") == "production"
    assert otlp.resource_value(request, "user.email") == "dev@example.com"


def test_claude_exit_status_passes_through(home, stub, tmp_path):
    result = run_claude(home, stub, tmp_path, "--definitely-not-an-option")
    assert result.returncode != 0
    sessions, _ = ledger_rows(home)
    assert sessions[0][3] == result.returncode


def test_report_session_json_shows_both_tools(home, stub, tmp_path):
    assert run_claude(home, stub, tmp_path, "-p", "hi", "--max-turns", "1").returncode == 0
    result = run_codex(home, stub, tmp_path, "exec", *codex_provider_args(stub), "hi")
    assert result.returncode == 0, result.stderr
    report = home.run("report", "session", "--json")
    assert report.returncode == 0, report.stderr
    sessions = {s["tool"]: s for s in json.loads(report.stdout)["sessions"]}
    claude, codex = sessions["claude"], sessions["codex"]
    assert claude["cost_source"] == "reported" and claude["cost_usd"] > 0
    assert claude["tokens"]["total"] == sum(
        v for row in expected_claude(stub).values() for v in row.values())
    u, n = stub.openai, len(stub.billed("/v1/responses"))
    assert codex["tokens"] == {"input": n * (u.input - u.cached), "cache_read": n * u.cached,
                               "output": n * u.output, "cache_creation": 0,
                               "reasoning": n * u.reasoning,
                               "total": n * (u.input + u.output)}
    assert codex["cost_source"] == "estimated" and codex["cost_usd"] > 0
    assert codex["exit_code"] == 0 and codex["duration_s"] > 0
