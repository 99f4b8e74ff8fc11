"""Runs the agent records for their wrappers: an end it answered but had not yet linked to
the run's sessions (the agent was stopped or killed in between) is linked when it starts."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from aitrack.capture import runs
from aitrack.store import ledger
from transcript_tree import Tree, meta, token_count, turn

RUN = "5e" * 16
THREAD = "019a0000-0000-7000-8000-0000000000aa"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_end_left_unlinked_is_linked_when_the_agent_starts(home, tmp_path):
    tree = Tree(tmp_path / "tools")
    work = tmp_path / "work"
    work.mkdir()
    started = time.time() - 5
    tree.codex(THREAD, [meta(THREAD, cwd=str(work)), turn("gpt-5"),
                        token_count("2026-11-29T10:00:01.000Z", (5000, 1200, 0, 700, 250))],
               day=time.strftime("%Y/%m/%d"))  # written during the run, in today's folder
    db = ledger.connect(home.ledger)
    end = runs.RunEnd(RUN, "codex", str(work), started, time.time(), 3, True, None, tree.env)
    ledger.note_run_end(db, ledger.Run(RUN, "codex", started, str(work), "work", {}, "agent"),
                        end.ended, end.exit_code, json.dumps(end.as_dict()))
    assert db.execute("SELECT COUNT(*) FROM sessions WHERE run_id = ?", (RUN,)).fetchone() == (0,)

    port = free_port()
    home.write_managed_profile(f"[agent]\nport = {port}\n")
    agent = subprocess.Popen([sys.executable, "-m", "aitrack", "agent", "run"], env=home.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        linked = []
        while time.monotonic() < deadline and not linked:
            linked = db.execute("SELECT tool_session_id, exit_code FROM sessions "
                                "WHERE run_id = ?", (RUN,)).fetchall()
            time.sleep(0.1)
        assert linked == [(THREAD, 3)], agent.stderr.read1().decode() if agent.poll() else ""
        assert db.execute("SELECT pending_end FROM runs WHERE id = ?", (RUN,)).fetchone() == (
            None,)
    finally:
        agent.terminate()
        agent.wait(20)
    assert sqlite3.connect(home.ledger).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def _agent(home, profile: str):
    port = free_port()
    home.write_managed_profile(f"[agent]\nport = {port}\n" + profile)
    proc = subprocess.Popen([sys.executable, "-m", "aitrack", "agent", "run"], env=home.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its own process group, to kill whole
    from aitrack.capture import agent
    from aitrack.config import paths

    secret = agent.ensure_secret(paths.resolve())
    deadline = time.monotonic() + 20
    while agent.probe(port, secret) != "agent":
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    return proc, port, secret


@pytest.mark.parametrize("forwarded", [False, True], ids=["not-forwarded", "forwarded"])
def test_traces_are_kept_only_when_the_profile_forwards_them(home, forwarded):
    """Nothing counts spans: an agent that does not forward them answers and drops them."""
    import otlp_client as oc
    from aitrack.capture.loopback import post

    endpoint = ('[endpoint]\nurl = "https://127.0.0.1:9"\nsignals = ["metrics", "logs", '
                '"traces"]\nflush_timeout_s = 0.2\n') if forwarded else ""
    proc, port, secret = _agent(home, endpoint)
    try:
        answer = post(port, "/v1/traces", secret, json.dumps(oc.spans()).encode())
        assert answer is not None and answer[0] == 200
        db = sqlite3.connect(home.ledger)
        deadline = time.monotonic() + 10  # a kept payload is in the inbox until ledgered
        while db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        kept = db.execute("SELECT COUNT(*) FROM payloads").fetchone()[0]
        queued = db.execute("SELECT COUNT(*) FROM outbox WHERE signal = 'traces'").fetchone()[0]
        assert (kept, queued) == ((1, 1) if forwarded else (0, 0))
    finally:
        proc.terminate()
        proc.wait(20)


def test_a_wrapped_runs_record_carries_the_profiles_attributes_not_the_wrappers(home):
    """The wrapper's attributes come from its start-up cache, which the user can edit: the
    agent records a run under the attributes its own profile enforces."""
    from aitrack.capture.loopback import post

    proc, port, secret = _agent(home, '[attributes]\n"team.id" = "it-team"\n')
    try:
        start = {"id": RUN, "tool": "codex", "started_at": time.time(), "cwd": "/w",
                 "project": "w", "attributes": {"team.id": "made-up", "user.id": "someone"}}
        answer = post(port, "/aitrack/run/start", secret, json.dumps(start).encode())
        assert answer is not None and answer[0] == 200
        row = sqlite3.connect(home.ledger).execute(
            "SELECT attributes FROM runs WHERE id = ?", (RUN,)).fetchone()
        attributes = json.loads(row[0])
        assert attributes["team.id"] == "it-team"
        assert attributes["user.id"] != "someone"
    finally:
        proc.terminate()
        proc.wait(20)


def test_payloads_acknowledged_before_a_sigkill_are_counted_when_the_agent_starts(home):
    """SIGKILL of the agent's process group while its worker held a payload: the payload
    (answered 200, so the tool will not send it again) waited for some later payload to be
    counted. Now the agent takes it up as it starts."""
    import os
    import signal

    import otlp_client as oc
    from aitrack.capture.loopback import post

    points = [oc.point(1, type="input", model="m", n=str(i)) for i in range(12_000)]
    body = json.dumps(oc.metrics(oc.sum_metric("claude_code.token.usage", points),
                                 resource={"service.name": "claude-code"})).encode()
    proc, port, secret = _agent(home, "")
    db = sqlite3.connect(home.ledger)
    try:
        answer = post(port, "/v1/metrics", secret, body, timeout=30)
        assert answer is not None and answer[0] == 200
        deadline = time.monotonic() + 20  # until the worker holds it, decoding
        while not db.execute("SELECT COUNT(*) FROM inbox WHERE claimed_by IS NOT NULL"
                             ).fetchone()[0]:
            assert time.monotonic() < deadline, "the worker never took the payload"
            time.sleep(0.005)
    finally:
        os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
        proc.wait(20)
    assert db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] == 1
    proc = subprocess.Popen([sys.executable, "-m", "aitrack", "agent", "run"], env=home.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0]:
            assert time.monotonic() < deadline, "the acknowledged payload was not counted"
            time.sleep(0.1)
        assert db.execute("SELECT SUM(tokens) FROM usage").fetchone()[0] == 12_000  # once
    finally:
        proc.terminate()
        proc.wait(20)
