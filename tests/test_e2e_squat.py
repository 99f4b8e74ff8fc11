"""Issue 18's squatting case end to end, with the real claude and codex: while the agent is
down, another OS user binds its port with a listener that answers like the agent.

Before, that user received the agent's key (from the headers helper, the status probes and
Codex's exporters), every wrapped run's telemetry and run events, and the wrapped runs were
lost (the wrapper trusted any 200). Now: the wrapper sees from the kernel that the port is
another user's, says so in one line, sends it nothing and records the run itself (Claude
through its own receiver, Codex from its rollout); doctor and `agent status` FAIL naming the
uid and pid; Claude started directly (an IDE) gets no key from its helper.
"""

from __future__ import annotations

import json
import sys

import pytest

from adversary import other_user
from aitrack.capture import agent
from aitrack.config import paths
from test_agent_port import Squatter
from test_e2e_agent import Machine, expected_codex
from test_e2e_agents import expected_claude

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="the port's owner is asked of Linux here")]


def keys_of(machine) -> list[str]:
    where = paths.resolve(machine.env)
    keys = [machine.secret]
    try:
        keys.append(agent.session_key_file(where).read_text().strip())
    except OSError:
        pass
    return keys


def test_a_squatted_agent_port_gets_nothing_and_the_wrapped_runs_are_recorded(
        home, stub, tmp_path):
    m = Machine(home, stub, tmp_path)
    try:
        m.install()  # the agent ran once: both keys exist
        assert m.aitrack("agent", "stop").returncode == 0
        keys = keys_of(m)
        with other_user() as user:
            squatter = Squatter(user, m.port)
            try:
                claude = m.aitrack("claude", "-p", "say hello", "--max-turns", "1")
                codex = m.aitrack("codex", "exec", "--skip-git-repo-check", "say hello")
                doctor = m.aitrack("doctor", "--json")
                status = m.aitrack("agent", "status")
                wrapped = squatter.received()  # what reached it from all of the above
                want = {"claude": expected_claude(stub), "codex": expected_codex(stub)}
                got = {"claude": m.usage("claude"), "codex": m.usage("codex")}
                squatter = Squatter(user, m.port)
                direct = m.claude("-p", "say hello", "--max-turns", "1")  # an IDE's run
                from_direct = squatter.received()
            finally:
                squatter.proc.kill()
        named = f"uid {user.uid} (pid "
        for run in (claude, codex):
            assert run.returncode == 0, run.stderr
            warning = [line for line in run.stderr.splitlines() if "aitrack:" in line]
            # the uid (the pid is looked for by doctor and status, not before the tool starts)
            assert len(warning) == 1 and f"held by uid {user.uid}," in warning[0] \
                and "records this run itself" in warning[0], run.stderr
        assert "Hello from the stub." in claude.stdout

        assert wrapped == []  # not one connection: no key, no telemetry, no run event
        [check] = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "agent"]
        assert check["status"] == "FAIL" and named in check["summary"]
        assert status.returncode == 1 and named in status.stdout

        # the wrapper recorded both runs, with their usage, by its own means
        db = m.ledger()
        modes = dict(db.execute("SELECT tool, mode FROM runs WHERE exit_code = 0"))
        assert modes == {"claude": "receiver", "codex": "transcript"}
        assert got == want and want["claude"] and want["codex"]

        # Claude Code started directly exports to the port its settings name, but its
        # helper gave it no key: what that user received is of no use
        assert direct.returncode == 0, direct.stderr
        heads = [r["head"] for r in from_direct if "head" in r]
        assert heads and all("/v1/" in h.split()[1] for h in heads)  # its telemetry...
        for received in from_direct:
            for key in keys:
                assert key not in json.dumps(received)  # ...without the key
        assert not any("x-aitrack-key" in h.lower() for h in heads)
    finally:
        m.uninstall()
