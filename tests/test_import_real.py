"""Transcripts written by the real claude and codex import to exactly what the model stub
billed; the same plain tree gives ccusage's token totals, and where ccusage differs, the
test says how and why (README: "How import differs from ccusage")."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import model_stub
from agents import agent_bin, agent_env, codex_provider_args
from aitrack.config import profile
from aitrack.store import importer
from transcript_tree import (
    OPUS,
    S1,
    S2,
    Tree,
    assistant,
    cost,
    cost_state,
    figures,
    open_db,
    run,
    usage,
    user,
)

pytest_plugins = ("transcript_tree",)  # fixtures: tree, db


pytestmark = pytest.mark.e2e


@pytest.fixture
def ustub():
    """The stub billing as the real APIs do: every answer with its own message/response id,
    request-id header and usage (the plain stub repeats msg_stub, which a transcript reader
    must take for one response)."""
    stub, server = model_stub.start(model_stub.ModelStub.billing())
    yield stub
    server.shutdown()


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _tools_env(env: dict[str, str]) -> dict[str, str]:
    return {"HOME": env["HOME"], "CODEX_HOME": env["CODEX_HOME"]}


def test_real_claude_sessions_resumed_and_forked_import_to_what_the_stub_billed(
        home, ustub, tmp_path):
    env = agent_env(home, ustub, tmp_path)
    claude = agent_bin("claude")
    first = _run([claude, "-p", "say hello", "--output-format", "json"], env, tmp_path)
    parent = json.loads(first.stdout)["session_id"]
    _run([claude, "-p", "again", "--resume", parent], env, tmp_path)
    _run([claude, "-p", "fork it", "--resume", parent, "--fork-session"], env, tmp_path)
    _run([claude, "-p", "go on", "--continue"], env, tmp_path)  # continues the fork
    calls = ustub.billed("/v1/messages")
    assert len(calls) == 4 and {c.model for c in calls} == {OPUS}

    db = open_db(home.ledger)
    result = importer.run(db, profile.Profile(), env=_tools_env(env))
    assert figures(db) == ustub.expected("/v1/messages")
    assert (result.sessions_new, result.responses, result.skipped) == (2, 4, {})
    sessions = dict(db.execute("SELECT tool_session_id, id FROM sessions"))
    fork = next(t for t in sessions if t != parent)
    # the parent made requests 1 and 2, the fork 3 and 4 (it copied the parent's)
    assert figures(db, sessions[parent]) == ustub.expected("/v1/messages", calls[:2])
    assert figures(db, sessions[fork]) == ustub.expected("/v1/messages", calls[2:])
    # the parent's own cost-state is its cost of record; the fork's includes the copied
    # requests of its parent, so the fork is priced from the table instead
    assert cost(db, sessions[parent])[OPUS] > 0
    assert cost(db, sessions[fork]) == {}
    assert {r for (r,) in db.execute("SELECT entrypoint FROM sessions")} == {"sdk-cli"}
    again = importer.run(db, profile.Profile(), env=_tools_env(env))
    assert (again.files_read, again.responses) == (0, 0)


def test_real_codex_sessions_resumed_and_forked_import_to_what_the_stub_billed(
        home, ustub, tmp_path):
    env = agent_env(home, ustub, tmp_path)
    codex = agent_bin("codex")
    config = codex_provider_args(ustub)[1:]  # the -c overrides, without --skip-git-repo-check
    out = _run([codex, "exec", "--skip-git-repo-check", *config, "say hi"], env, tmp_path)
    thread = next(line.split(": ", 1)[1] for line in (out.stdout + out.stderr).splitlines()
                  if line.startswith("session id: "))
    _run([codex, "exec", "resume", "--skip-git-repo-check", *config, thread, "again"], env,
         tmp_path)
    _run([codex, "exec", "fork", "--skip-git-repo-check", *config, thread, "forked"], env,
         tmp_path)
    calls = ustub.billed("/v1/responses")
    assert len(calls) == 3

    db = open_db(home.ledger)
    result = importer.run(db, profile.Profile(), env=_tools_env(env))
    assert figures(db) == ustub.expected("/v1/responses")
    assert (result.sessions_new, result.responses) == (2, 3)
    assert {e for (e,) in db.execute("SELECT entrypoint FROM sessions")} == {"codex_exec"}


# ---------------------------------------------------------------- against ccusage


def ccusage(tree: Tree) -> dict[str, int]:
    proc = subprocess.run([agent_bin("ccusage"), "claude", "daily", "--json", "--offline"],
                          env={"PATH": "/usr/bin:/bin", **tree.env}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    t = json.loads(proc.stdout)["totals"]
    return {"input": t["inputTokens"], "output": t["outputTokens"],
            "cache_read": t["cacheReadTokens"], "cache_creation": t["cacheCreationTokens"]}


def ours(db) -> dict[str, int]:
    out = dict.fromkeys(("input", "output", "cache_read", "cache_creation"), 0)
    for types in figures(db).values():
        for k in out:
            out[k] += types.get(k, 0)
    return out


def test_a_plain_tree_gives_ccusages_token_totals(home, tree):
    tree.claude(S1, [
        user(S1),
        assistant(S1, "msg_1", "req_1", usage(10, 1, 5000, 300, five_m=300, one_h=0)),
        assistant(S1, "msg_1", "req_1", usage(10, 120, 5000, 300, five_m=300, one_h=0), text="x"),
        assistant(S1, "msg_2", "req_2", usage(3, 80, 6000, 900, five_m=600, one_h=300),
                  ts="2026-11-20T11:00:00.000Z"),
        assistant(S1, "msg_3", None, usage(1, 9, 100, 0)),
        cost_state(S1, {OPUS: 0.1}),
    ])
    tree.subagent(S1, "agent-1", [
        assistant(S1, "msg_2", "req_2", usage(3, 80, 6000, 900, five_m=600, one_h=300), side=True),
        assistant(S1, "msg_4", "req_4", usage(7, 70, 700, 0), side=True,
                  model="claude-haiku-4-5")])
    tree.claude(S2, [
        assistant(S2, "msg_1", "req_1", usage(10, 120, 5000, 300, five_m=300, one_h=0),
                  request_session=S1),
        assistant(S2, "msg_5", "req_5", usage(2, 20, 200, 0), ts="2026-11-21T09:00:00.000Z")])
    db = open_db(home.ledger)
    run(db, tree)
    assert ours(db) == ccusage(tree) == {"input": 23, "output": 299, "cache_read": 12000,
                                         "cache_creation": 1200}


def test_differs_from_ccusage_a_zero_cache_breakdown_is_not_taken_over_the_written_field(
        home, stub, tmp_path):
    # claude 2.1.328 against a server that sends no 5m/1h breakdown writes the breakdown as
    # zeros and the writes in cache_creation_input_tokens: ccusage reads 0 cache writes
    env = agent_env(home, stub, tmp_path)
    _run([agent_bin("claude"), "-p", "say hello"], env, tmp_path)
    tree = Tree(tmp_path / "unused")
    tree.env = {"HOME": env["HOME"], "CLAUDE_CONFIG_DIR": str(Path(env["HOME"]) / ".claude")}
    db = open_db(home.ledger)
    importer.run(db, profile.Profile(), env=tree.env, tools=["claude"])
    theirs, mine = ccusage(tree), ours(db)
    assert mine["cache_creation"] == stub.anthropic.cache_creation
    assert theirs["cache_creation"] == 0
    assert {k: v for k, v in mine.items() if k != "cache_creation"} == {
        k: v for k, v in theirs.items() if k != "cache_creation"}


def test_differs_from_ccusage_synthetic_lines_are_not_billed(home, tree):
    tree.claude(S1, [assistant(S1, "msg_1", "req_1", usage(10, 10)),
                     assistant(S1, "synthetic", None, usage(5, 5), model="<synthetic>")])
    db = open_db(home.ledger)
    run(db, tree)
    assert ours(db) == {"input": 10, "output": 10, "cache_read": 0, "cache_creation": 0}
    assert ccusage(tree) == {"input": 15, "output": 15, "cache_read": 0, "cache_creation": 0}
