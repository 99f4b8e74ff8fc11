"""Codex's billed requests counted once in every mode (issue 19), with the real binary against
a stub that bills every request with usage of its own and answers with another model name
than requested (Codex records the requested one, on both paths).

The TUI sends a title request for each prompt, in a conversation of its own that no rollout
and no `state_5.sqlite` row holds: with the agent it counts in its prompting session (one
session, not one per prompt more); without telemetry it cannot be counted, and `report
session` says so, with the number of prompts.
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

RESPONSES = "/v1/responses"
MODES = ("agent-direct", "agent-wrapper", "wrapper", "agent-down-import")
PROMPTS = ("please say hello to me", "now say it once more please")


@pytest.fixture
def billing():
    stub, server = model_stub.start(model_stub.ModelStub.billing({"gpt-5": "gpt-5-2025-08-07"}))
    yield stub
    server.shutdown()


@pytest.fixture
def machine(home, billing, tmp_path):
    m = Machine(home, billing, tmp_path)
    with open(m.codex_config, "a", encoding="utf-8") as fh:  # a folder the user trusts
        fh.write(f'\n[projects."{m.work}"]\ntrust_level = "trusted"\n')
    yield m
    m.uninstall()


def _tui(m: Machine, mode: str) -> Terminal:
    env = {k: v for k, v in m.env.items()
           if k.startswith(("AITRACK_", "HOME", "CODEX_HOME", "MOCK_KEY", "PATH"))}
    env["TERM"] = "xterm-256color"
    argv = [sys.executable, "-m", "aitrack", "codex"] if mode.endswith("wrapper") \
        else [agent_bin("codex")]
    term = Terminal(f"codex-{mode}", argv, m.work, env)
    term.wait_for("Ask Codex", timeout=60)
    time.sleep(1.0)
    return term


@pytest.mark.parametrize("mode", MODES)
def test_the_tuis_title_requests_count_in_their_session_or_are_said_missing(machine, billing,
                                                                             mode):
    m = machine
    if mode != "wrapper":
        m.install()
    if mode == "agent-down-import":
        assert m.aitrack("agent", "stop").returncode == 0
    term = _tui(m, mode)
    try:
        counting.prompt(term, billing, PROMPTS[0], calls=2)
        counting.prompt(term, billing, PROMPTS[1], calls=4)
        counting.quit_tui(term, [("C-c", False), ("C-c", False)])
    finally:
        term.close()
    calls = billing.billed(RESPONSES)
    titles = [c for c in calls if not c.body.get("tools")]
    turns = [c for c in calls if c.body.get("tools")]
    assert (len(titles), len(turns)) == (2, 2)
    telemetry = mode in ("agent-direct", "agent-wrapper")
    want = counting.expected(billing, RESPONSES, calls if telemetry else turns,
                             by_requested=True)
    if mode == "agent-down-import":
        assert m.aitrack("import").returncode == 0
    v = counting.wait_for_usage(m.home.ledger, "codex", want)
    assert v is not None and v.usage == want, (v and v.usage, want)
    assert len(v.sessions) == 1
    if mode.endswith("wrapper"):  # the run's own, though the shared server wrote its rollout
        assert v.sessions[0][1] is not None and v.sessions[0][2] == 0, v.sessions
    if telemetry:  # the rollout too: each request still once
        assert m.aitrack("import").returncode == 0
        assert counting.View(m.home.ledger, "codex").usage == want
    report = json.loads(m.aitrack("report", "session", "--json", "--no-import").stdout)
    [session] = report["sessions"]
    if telemetry:
        assert session["notes"] == []
    else:
        [note] = session["notes"]
        assert note.startswith("2 title request(s)") and "telemetry" in note
    counting.record(f"codex TUI, 2 prompts (2 title requests), {mode}", calls, v.total(), 1,
                    len(v.sessions))
