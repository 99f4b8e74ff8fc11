"""Claude Code's billed requests counted once in every mode (issue 19), with the real binary
against a stub that bills every request with usage of its own.

Modes: wrapped without the agent (a per-run receiver, then the run's transcript), run
directly with the agent, wrapped with the agent, and the agent down then `aitrack import`.
Cases: a model alias the API answers with a dated id; `--continue` and `-r SID` (one session
per transcript); the TUI's requests no transcript line shows (its title request per prompt),
with the agent up, down, and down for part of the session.
"""

from __future__ import annotations

import json
import sys
import time

import pytest

import counting
import model_stub
from agents import agent_bin
from terminal import Terminal
from test_e2e_agent import Machine

pytestmark = pytest.mark.e2e

SONNET, DATED = "claude-sonnet-4-5", "claude-sonnet-4-5-20250929"
MESSAGES = "/v1/messages"
MODES = ("wrapper", "agent-direct", "agent-wrapper", "agent-down-import")


@pytest.fixture
def billing():
    stub, server = model_stub.start(model_stub.ModelStub.billing({SONNET: DATED}))
    yield stub
    server.shutdown()


@pytest.fixture
def machine(home, billing, tmp_path):
    m = Machine(home, billing, tmp_path)
    yield m
    m.uninstall()


def _prepare(m: Machine, mode: str) -> None:
    if mode != "wrapper":
        m.install()
    if mode == "agent-down-import":
        assert m.aitrack("agent", "stop").returncode == 0


def _claude(m: Machine, mode: str, *args: str):
    result = m.aitrack("claude", *args) if mode in ("wrapper", "agent-wrapper") \
        else m.claude(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _settled(m: Machine, mode: str, want: dict) -> counting.View:
    """The ledger once every source has reported: the agent's telemetry, then an import
    (each request still once with both sources in)."""
    if mode == "agent-down-import":
        done = m.aitrack("import")
        assert done.returncode == 0, done.stderr
    v = counting.wait_for_usage(m.home.ledger, "claude", want)
    assert v is not None and v.usage == want, (v and v.usage, want)
    if mode != "agent-down-import":
        assert m.aitrack("import").returncode == 0
        v = counting.View(m.home.ledger, "claude")
    return v


@pytest.mark.parametrize("mode", MODES)
def test_an_alias_continued_and_resumed_is_one_session_each_request_once(machine, billing,
                                                                          mode):
    """`--model claude-sonnet-4-5`, answered as claude-sonnet-4-5-20250929: counted once
    under the answered name, the requested one learnt; `--continue -p` and `-r SID -p`
    append to the same session: one session."""
    m = machine
    _prepare(m, mode)
    first = _claude(m, mode, "-p", "say hello to me", "--model", SONNET,
                    "--output-format", "json")
    session = json.loads(first.stdout)["session_id"]
    _claude(m, mode, "--continue", "-p", "go on with it please", "--model", SONNET)
    _claude(m, mode, "-r", session, "-p", "and once more please", "--model", SONNET)
    calls = billing.billed(MESSAGES)
    assert len(calls) == 3 and {c.answered for c in calls} == {DATED}
    want = counting.expected(billing, MESSAGES)
    v = _settled(m, mode, want)

    assert v.usage == want
    assert [s[0] for s in v.sessions] == [session]
    assert v.aliases == [(SONNET, DATED)]
    own = counting.cost_states(m.user_home / ".claude")  # Claude Code's own, per requested
    assert list(v.cost) == [DATED] and v.cost[DATED] == pytest.approx(own[SONNET])
    report = json.loads(m.aitrack("report", "model", "--json", "--no-import").stdout)
    assert [(r["period"], r["requested_as"]) for r in report["models"]] == [(DATED, [SONNET])]
    counting.record(f"claude alias + --continue + -r, {mode}", calls, v.total(), 1,
                    len(v.sessions))


# ---------------------------------------------------------------- the TUI

TUI_MODES = ("wrapper", "agent-direct", "agent-wrapper", "agent-down-import",
             "agent-down-for-a-while")
PROMPTS = ("please say hello to me", "now tell me once more please")


def _tui(m: Machine, mode: str) -> Terminal:
    counting.claude_tui_ready(m.user_home / ".claude", m.work)
    env = {k: v for k, v in m.env.items() if k.startswith((
        "AITRACK_", "HOME", "CLAUDE_", "ANTHROPIC_", "DISABLE_", "PATH"))}
    env["TERM"] = "xterm-256color"
    argv = [sys.executable, "-m", "aitrack", "claude"] if mode.endswith("wrapper") \
        else [agent_bin("claude")]
    term = Terminal(f"claude-{mode}", argv, m.work, env)
    term.wait_for("❯", timeout=60)
    time.sleep(1.0)
    return term


@pytest.mark.parametrize("mode", TUI_MODES)
def test_the_tuis_requests_no_transcript_line_shows_count_once(machine, billing, mode):
    """Two multi-word prompts in the TUI: each is a title request (telemetry and the
    transcript's cost-state see it, no assistant line does) and a turn. Counted once each,
    whether telemetry saw them all, none (the agent down: cost-state's totals stand for what
    the lines miss), or the second prompt only."""
    m = machine
    _prepare(m, "agent-down-import" if mode == "agent-down-for-a-while" else mode)
    term = _tui(m, mode)
    try:
        counting.prompt(term, billing, PROMPTS[0], calls=2)
        if mode == "agent-down-for-a-while":
            assert m.aitrack("agent", "start").returncode == 0
            time.sleep(1.0)
        counting.prompt(term, billing, PROMPTS[1], calls=4)
        counting.quit_tui(term, [("/exit", True), ("Enter", False)])
    finally:
        term.close()
    calls = billing.billed(MESSAGES)
    assert len(calls) == 4
    titles = [c for c in calls if not c.body.get("tools")]
    assert len(titles) == 2  # one per prompt, never a transcript line
    want = counting.expected(billing, MESSAGES)
    v = _settled(m, "agent-down-import" if "down" in mode else mode, want)
    assert v.usage == want
    assert len(v.sessions) == 1
    telemetry = v.sessions[0][3] & 1
    assert telemetry if mode != "agent-down-import" else not telemetry  # as the mode says
    own = counting.cost_states(m.user_home / ".claude")
    assert sum(v.cost.values()) == pytest.approx(sum(own.values()))
    counting.record(f"claude TUI, 2 prompts (2 title requests), {mode}", calls, v.total(), 1,
                    len(v.sessions))
