"""Runs at once in one folder are each linked to their own session (issue 19, case 5).

Three `aitrack claude -p` and three `aitrack codex exec` at once in one folder, with a stub
slow enough that they overlap: each session is linked to the run that ran it (Claude Code's
by its telemetry, which names the run; Codex's by the rollout the run's own process held
open), never by folder and time alone. With the agent, a run of the tool started directly at
the same time is no wrapper's run: no run, no exit status.

Each run starts once the ledger holds the one before (its start is recorded within the
first second): the runs table's order is then the order they were started in, whatever the
machine's load does to each wrapper's start-up, and the runs still overlap.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest

import counting
import model_stub
from agents import agent_bin
from test_e2e_agent import Machine

pytestmark = pytest.mark.e2e

RUNS = 3


@pytest.fixture
def billing():
    stub, server = model_stub.start(model_stub.ModelStub(vary=True, delay=1.5))
    yield stub
    server.shutdown()


@pytest.fixture
def machine(home, billing, tmp_path):
    m = Machine(home, billing, tmp_path)
    yield m
    m.uninstall()


def _args(tool: str, n: int) -> list[str]:
    if tool == "claude":
        return ["-p", f"this is run number {n}", "--output-format", "json"]
    return ["exec", "--skip-git-repo-check", f"this is run number {n}"]


def _session_of(tool: str, done: subprocess.CompletedProcess) -> str:
    """The session a run reported on its own output."""
    if tool == "claude":
        return json.loads(done.stdout)["session_id"]
    return next(line.split(": ", 1)[1] for line in (done.stdout + done.stderr).splitlines()
                if line.startswith("session id: "))


def _runs(m: Machine, tool: str) -> list[tuple]:
    """(id, exit code, pending end, started, ended) of the tool's runs, in start order."""
    if not m.home.ledger.exists():  # the first wrapper has not created it yet
        return []
    db = sqlite3.connect(f"file:{m.home.ledger}?mode=ro", uri=True)
    try:
        return db.execute("SELECT id, exit_code, pending_end, started_at, ended_at FROM runs "
                          "WHERE tool = ? ORDER BY started_at", (tool,)).fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("agent", [False, True], ids=["without-agent", "with-agent"])
@pytest.mark.parametrize("tool", ["claude", "codex"])
def test_runs_at_once_in_one_folder_are_each_linked_to_their_own_session(machine, billing,
                                                                         tool, agent):
    m = machine
    if agent:
        m.install()
    procs = []
    for n in range(RUNS):
        procs.append(subprocess.Popen([sys.executable, "-m", "aitrack", tool, *_args(tool, n)],
                                      env=m.env, cwd=m.work, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                      text=True))
        # recorded before the next starts: in this order in the runs table
        assert m.wait_for(lambda n=n: len(_runs(m, tool)) == n + 1), f"run {n} not recorded"
    direct = subprocess.Popen([agent_bin(tool), *_args(tool, RUNS)], env=m.env, cwd=m.work,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True) if agent else None
    done = []
    for proc in [*procs, *([direct] if direct else [])]:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-2000:]
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    mine = [_session_of(tool, d) for d in done]
    assert len(set(mine)) == len(done)

    path = "/v1/messages" if tool == "claude" else "/v1/responses"
    want = counting.expected(billing, path, by_requested=tool == "codex")
    v = counting.wait_for_usage(m.home.ledger, tool, want)
    assert v is not None and v.usage == want, (v and v.usage, want)
    assert m.wait_for(lambda: len(_runs(m, tool)) == RUNS and all(
        r[2] is None and r[1] is not None for r in _runs(m, tool)))
    ran = _runs(m, tool)
    runs = [r[0] for r in ran]
    for r in ran:  # at once: each run overlapped another one in the folder
        assert any(o is not r and o[3] < r[4] and r[3] < o[4] for o in ran), ran
    linked = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # telemetry links a session the moment it arrives
        linked = {tsid: (run, code) for tsid, run, code, _ in
                  counting.View(m.home.ledger, tool).sessions}
        if all(linked.get(tsid, (None,))[0] == run for tsid, run in zip(mine, runs,
                                                                        strict=False)):
            break
        time.sleep(0.3)
    for tsid, run in zip(mine, runs, strict=False):
        assert linked[tsid] == (run, 0), (tsid, linked)  # its own run, its exit status
    if direct:
        assert linked[mine[-1]] == (None, None)  # started directly: no run, no status
    assert len(linked) == len(done)
    counting.record(f"{tool} x{RUNS} wrapped at once in one folder"
                    + (" + 1 direct, with the agent" if agent else ", without the agent"),
                    billing.billed(path), v.total(), len(done), len(linked))
