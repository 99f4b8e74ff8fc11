"""The real claude and codex, wrapped, forwarding to a real HTTPS org endpoint."""

from __future__ import annotations

import sqlite3
import time

import pytest

from agents import agent_bin, run_claude
from aitrack.egress import otlp
from org_endpoint import TOKEN, outbox_rows, profile_toml
from test_e2e_agents import expected_claude

pytestmark = pytest.mark.e2e
pytest_plugins = ("org_endpoint",)  # fixtures: authority, org, token

ATTRIBUTES = {"team.id": "platform-eng", "cost_center": "CC-4200", "department": "engineering",
              "environment": "production", "user.email": "dev@example.com"}


def usage(home) -> dict:
    db = sqlite3.connect(home.ledger)
    try:
        return {(m, t): n for m, t, n in db.execute(
            "SELECT model, token_type, SUM(tokens) FROM usage GROUP BY 1, 2")}
    finally:
        db.close()


def payload_count(home) -> int:
    db = sqlite3.connect(home.ledger)
    try:
        return db.execute("SELECT COUNT(*) FROM payloads").fetchone()[0]
    finally:
        db.close()


def is_raw(block) -> bool:
    """A block of the tools' own telemetry, not of aitrack's own metrics (normalized.py)."""
    return not any(kv.key == "service.name" and kv.value.string_value == "aitrack"
                   for kv in block.resource.attributes)


def queued_blocks(home, raw_only: bool = False) -> list[bytes]:
    """Every resource block waiting in the outbox, serialized."""
    db = sqlite3.connect(home.ledger)
    try:
        rows = db.execute("SELECT signal, body FROM outbox WHERE state = 'pending'").fetchall()
    finally:
        db.close()
    blocks = []
    for signal, body in rows:
        request = otlp.decode(signal, body, otlp.PROTOBUF)
        field = "resource_metrics" if signal == "metrics" else "resource_logs"
        blocks += [b.SerializeToString(deterministic=True) for b in getattr(request, field)
                   if is_raw(b) or not raw_only]
    return sorted(blocks)


def received_blocks(org, raw_only: bool = False) -> list[bytes]:
    return sorted(b.SerializeToString(deterministic=True) for b in org.blocks()
                  if is_raw(b) or not raw_only)


def check_arrivals(org, home, content_type: str, header: str, value: str,
                   signals: tuple[str, ...] = ("metrics", "logs"), own_blocks: int = 1) -> None:
    """What a dashboard owner would check: every request authenticated, attributed, complete.

    `own_blocks`: aitrack's own usage metrics expected by now (a wrapped run queues them at
    its exit; the agent every minute)."""
    assert org.requests, "nothing reached the org endpoint"
    assert {r.signal for r in org.requests} == set(signals)
    for r in org.requests:
        assert r.status == 200 and r.authorized
        assert r.headers[header] == value
        assert r.headers["content-type"] == content_type
        assert r.headers["content-encoding"] == "gzip"
        assert "x-aitrack-key" not in r.headers
        for attrs in r.resource_attributes():
            assert {k: attrs.get(k) for k in ATTRIBUTES} == ATTRIBUTES
    assert outbox_rows(home.ledger) == []  # all of it left the outbox, after a 2xx
    blocks = received_blocks(org)
    assert len(blocks) == len(set(blocks))  # each payload exactly once
    assert len(received_blocks(org, raw_only=True)) == payload_count(home)  # every one received
    assert len(blocks) - len(received_blocks(org, raw_only=True)) == own_blocks


def test_claude_forwards_protobuf_with_a_bearer_token(home, stub, tmp_path, org, authority,
                                                      keychain_account, token):
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account,
                                            attributes=ATTRIBUTES))
    result = run_claude(home, stub, tmp_path, "-p", "say hello", "--max-turns", "1")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    check_arrivals(org, home, "application/x-protobuf", "authorization", f"Bearer {TOKEN}")
    assert usage(home) == {(m, t): n for m, row in expected_claude(stub).items()
                           for t, n in row.items()}
    names = {m.name for r in org.accepted() if r.signal == "metrics"
             for rm in r.message.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "claude_code.token.usage" in names and "claude_code.cost.usage" in names


def test_codex_forwards_json_with_a_bare_api_key(home, stub, tmp_path, org, authority,
                                                 keychain_account, token):
    """Codex's own telemetry reaches the org through the per-user agent its settings name."""
    from test_e2e_agent import Machine

    org.auth_header, org.auth_value = "x-api-key", TOKEN
    signals = ("metrics", "logs", "traces")  # the agent's Codex settings export all three
    m = Machine(home, stub, tmp_path, profile_toml(org, authority.pem, keychain_account,
                                                   protocol="http/json", auth_header="x-api-key",
                                                   auth_scheme="", attributes=ATTRIBUTES,
                                                   signals=signals))
    try:
        m.install()
        result = m.aitrack("codex", "exec", "--skip-git-repo-check", "say hello")
        assert result.returncode == 0, result.stderr
        assert m.wait_for(lambda: {r.signal for r in org.accepted()} >= set(signals)
                          and not outbox_rows(home.ledger))
        check_arrivals(org, home, "application/json", "x-api-key", TOKEN, signals,
                       own_blocks=0)  # the agent's come within a minute: test_e2e_normalized
        assert all(r.body.startswith((b'{"resourceMetrics"', b'{"resourceLogs"',
                                      b'{"resourceSpans"'))
                   for r in org.requests)  # OTLP/JSON, transcoded from the stored protobuf
        names = {m.name for r in org.accepted() if r.signal == "metrics"
                 for rm in r.message.resource_metrics for sm in rm.scope_metrics
                 for m in sm.metrics}
        assert "codex.turn.token_usage" in names
    finally:
        m.uninstall()


WRAPPER = """#!/bin/sh
"$REAL_CLAUDE" "$@"
status=$?
date +%s.%N > "$EXIT_AT"
exit $status
"""


def test_claude_with_the_endpoint_down_then_flush(home, stub, tmp_path, org, authority,
                                                  keychain_account, token):
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account,
                                            flush_timeout_s=1, attributes=ATTRIBUTES))
    org.stop()
    wrapper = tmp_path / "claude-wrapper"
    wrapper.write_text(WRAPPER)
    wrapper.chmod(0o755)
    exit_at = tmp_path / "exit-at"
    result = run_claude(home, stub, tmp_path, "-p", "say hello", "--max-turns", "1", env={
        "AITRACK_CLAUDE_BIN": str(wrapper), "REAL_CLAUDE": agent_bin("claude"),
        "EXIT_AT": str(exit_at)})
    delay = time.time() - float(exit_at.read_text())
    assert result.returncode == 0, result.stderr
    assert "Hello from the stub." in result.stdout
    assert delay < 1 + 0.6, f"aitrack exited {delay:.2f} s after claude (flush bound 1 s)"
    lines = [line for line in result.stderr.splitlines() if line.startswith("aitrack:")]
    assert len(lines) == 1 and "aitrack flush" in lines[0], result.stderr
    billed = usage(home)
    assert billed == {(m, t): n for m, row in expected_claude(stub).items()
                      for t, n in row.items()}
    waiting = queued_blocks(home)
    assert len(queued_blocks(home, raw_only=True)) == payload_count(home) > 0
    assert len(waiting) == payload_count(home) + 1  # and aitrack's own metrics of the session

    org.start()
    flushed = home.run("flush")
    assert flushed.returncode == 0, flushed.stderr
    assert received_blocks(org) == waiting  # every payload, once
    assert usage(home) == billed  # the ledger counted at receipt, and only then
    assert outbox_rows(home.ledger) == []
    sent = len(org.requests)
    assert home.run("flush").returncode == 0 and len(org.requests) == sent  # nothing twice
