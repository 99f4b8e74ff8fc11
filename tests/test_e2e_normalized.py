"""aitrack's own metric family end to end: the real claude and codex, a real HTTPS endpoint.

Claude runs wrapped with its per-run receiver; Codex sends to the per-user agent (its
`[otel]` in $CODEX_HOME/config.toml, as `aitrack agent install` writes it), run as a
process of its own with a short emission interval. The endpoint must receive
aitrack.token.usage and aitrack.cost.usage equal to the ledger's figures, once, with the
profile's attributes; under the `normalized`-only policy none of the tools' own telemetry.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest

from agents import agent_env, codex_provider_args, run_claude, run_codex
from aitrack.adapters.codex import settings as codex_settings
from aitrack.capture import agent
from aitrack.config import paths, profile
from aitrack.egress import normalized
from aitrack.store import ledger
from org_endpoint import profile_toml

pytestmark = pytest.mark.e2e
pytest_plugins = ("org_endpoint",)  # fixtures: authority, org, token

ATTRIBUTES = {"team.id": "platform-eng", "cost_center": "CC-4200", "user.email": "dev@example.com"}
AGENT = ("from aitrack.capture.agent import server\n"
         "from aitrack.config import paths, profile\n"
         "from aitrack.egress import forwarder\n"
         "server.EMIT_INTERVAL_S = 1.0\n"  # every 60 s in real life
         "forwarder.IDLE_POLL_S = 0.5\n"
         "p = paths.resolve()\n"
         "raise SystemExit(server.run_foreground(p, profile.load(p)))\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def setup(home, stub, tmp_path, org, authority, keychain_account, token):
    """A managed profile pointing at `org`, and a function that applies a policy to it."""
    port = free_port()

    def configure(extra: str = "") -> None:
        home.write_managed_profile(profile_toml(org, authority.pem, keychain_account,
                                                attributes=ATTRIBUTES, extra=extra)
                                   + f"\n[agent]\nport = {port}\n")

    configure()
    return configure, port


@pytest.fixture
def codex_agent(home, stub, tmp_path, setup):
    """The per-user agent, running, with Codex's settings pointing at it."""
    _, port = setup
    env = agent_env(home, stub, tmp_path)
    secret = agent.ensure_secret(paths.resolve())
    headers = {agent.SECRET_HEADER: secret}
    config = "[otel]\n" + "".join(
        f"{key} = {codex_settings.raw(codex_settings.exporter(agent.url(port), sig, headers))}\n"
        for key, sig in (("exporter", "logs"), ("metrics_exporter", "metrics")))
    codex_home = tmp_path / "user-home" / ".codex"
    (codex_home / "config.toml").write_text(config)
    (codex_home / "config.toml").chmod(0o600)
    env["AITRACK_CODEX_SYSTEM_DIR"] = str(tmp_path / "no-system-codex")
    log = open(tmp_path / "agent.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-c", AGENT], env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.time() + 20
    while agent.probe(port, secret) != "agent":
        assert proc.poll() is None and time.time() < deadline, \
            (tmp_path / "agent.log").read_text()
        time.sleep(0.05)
    yield env
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def received(org) -> list[tuple[str, dict, dict, float]]:
    """(metric, datapoint attributes, resource, value) of every aitrack datapoint accepted."""
    out = []
    for r in org.accepted():
        if r.signal != "metrics":
            continue
        for rm in r.message.resource_metrics:
            resource = {kv.key: kv.value.string_value for kv in rm.resource.attributes}
            if resource.get("service.name") != "aitrack":
                continue
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    for dp in m.sum.data_points:
                        value = dp.as_int if dp.WhichOneof("value") == "as_int" else dp.as_double
                        out.append((m.name, {a.key: a.value.string_value for a in dp.attributes},
                                    resource, value))
    return out


def tokens_received(org, tool: str) -> dict[tuple[str, str], int]:
    found: Counter = Counter()
    for name, attrs, _, value in received(org):
        if name == "aitrack.token.usage" and attrs["tool"] == tool:
            found[(attrs["model"], attrs["type"])] += value
    return dict(found)


def cost_received(org, tool: str) -> dict[str, float]:
    found: Counter = Counter()
    for name, attrs, _, value in received(org):
        if name == "aitrack.cost.usage" and attrs["tool"] == tool:
            found[attrs["model"]] += value
    return dict(found)


def ledger_tokens(home, tool: str) -> dict[tuple[str, str], int]:
    db = sqlite3.connect(home.ledger)
    try:
        return {(m, t): n for m, t, n in db.execute(
            "SELECT u.model, u.token_type, SUM(u.tokens) FROM usage u JOIN sessions s "
            "ON s.id = u.session_id WHERE s.tool = ? AND u.token_type IN ('input', 'output', "
            "'cache_read', 'cache_creation', 'reasoning') GROUP BY 1, 2", (tool,))}
    finally:
        db.close()


def report_cost(home, tool: str) -> dict[str, float]:
    """The ledger's cost of record per model: what `aitrack report` says."""
    report = home.run("report", "model", "--tool", tool, "--json")
    assert report.returncode == 0, report.stderr
    return {row["period"]: row["cost_usd"] for row in json.loads(report.stdout)["models"]}


def sessions_counted(org) -> Counter:
    return Counter((a["tool"], a["exit_status"]) for n, a, _, v in received(org)
                   if n == "aitrack.session.count" for _ in range(v))


def arrived(org, home, tool: str) -> bool:
    want = ledger_tokens(home, tool)
    return bool(want) and tokens_received(org, tool) == want


def check_once_and_attributed(org, home, tools: tuple[str, ...]) -> None:
    for tool in tools:
        assert tokens_received(org, tool) == ledger_tokens(home, tool)
        assert {m: pytest.approx(c, abs=1e-6) for m, c in cost_received(org, tool).items()} \
            == report_cost(home, tool)
    for _, _, resource, _ in received(org):
        assert {k: resource.get(k) for k in ATTRIBUTES} == ATTRIBUTES
        assert resource["service.name"] == "aitrack"


def run_both(home, stub, tmp_path, codex_env) -> None:
    claude = run_claude(home, stub, tmp_path, "-p", "say hello", "--max-turns", "1")
    assert claude.returncode == 0, claude.stderr
    codex = run_codex(home, stub, tmp_path, "exec", *codex_provider_args(stub), "say hello",
                      env=codex_env)
    assert codex.returncode == 0, codex.stderr


def test_a_claude_and_a_codex_session_arrive_normalised_once(home, stub, tmp_path, org,
                                                             codex_agent):
    run_both(home, stub, tmp_path, codex_agent)
    assert org.wait_for(lambda o: arrived(o, home, "claude") and arrived(o, home, "codex"),
                        timeout=60), (received(org), ledger_tokens(home, "codex"))
    assert org.wait_for(lambda o: sessions_counted(o) == Counter(
        {("claude", "ok"): 1, ("codex", "ok"): 1}), timeout=30), sessions_counted(org)
    u, n = stub.openai, len(stub.billed("/v1/responses"))
    assert tokens_received(org, "codex") == {
        ("gpt-5", "input"): n * (u.input - u.cached), ("gpt-5", "cache_read"): n * u.cached,
        ("gpt-5", "output"): n * u.output, ("gpt-5", "reasoning"): n * u.reasoning}
    assert cost_received(org, "codex")["gpt-5"] > 0  # estimated from the price table
    claude_cost = sqlite3.connect(home.ledger).execute(
        "SELECT SUM(value) FROM session_metrics WHERE name = 'cost_usd'").fetchone()[0]
    assert sum(cost_received(org, "claude").values()) == pytest.approx(claude_cost)
    check_once_and_attributed(org, home, ("claude", "codex"))

    # more agent rounds, an emission and a flush of our own: nothing is sent again
    seen = len(received(org))
    time.sleep(3)
    normalized.emit(ledger.connect(home.ledger), profile.load(paths.resolve()))
    assert home.run("flush").returncode == 0
    assert len(received(org)) == seen
    check_once_and_attributed(org, home, ("claude", "codex"))
    # the tools' own metrics went too (the default policy forwards both families)
    names = {m.name for r in org.accepted() if r.signal == "metrics"
             for rm in r.message.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"claude_code.token.usage", "codex.turn.token_usage"} <= names


def test_the_normalized_only_policy_sends_none_of_the_tools_own_telemetry(
        home, stub, tmp_path, org, setup, codex_agent):
    configure, _ = setup
    configure('forward = ["normalized"]')
    run_both(home, stub, tmp_path, codex_agent)
    assert org.wait_for(lambda o: arrived(o, home, "claude") and arrived(o, home, "codex"),
                        timeout=60), received(org)
    time.sleep(2)  # what else the agent would send
    assert {r.signal for r in org.accepted()} == {"metrics"}
    for r in org.accepted():
        for rm in r.message.resource_metrics:
            names = {m.name for sm in rm.scope_metrics for m in sm.metrics}
            assert names <= {"aitrack.token.usage", "aitrack.cost.usage",
                             "aitrack.session.count"}, names
    check_once_and_attributed(org, home, ("claude", "codex"))
    # the ledger still has everything the tools reported, raw payloads were never queued
    db = sqlite3.connect(home.ledger)
    assert db.execute("SELECT COUNT(*) FROM payloads").fetchone()[0] > 0
    assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0  # all of ours sent
    assert os.path.exists(home.ledger)
