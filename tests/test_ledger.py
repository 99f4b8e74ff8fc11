"""The ledger, fed by real `aitrack` runs whose fake tool sends OTLP: the numbers users see."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest

import otlp_client as oc
from aitrack.store import ledger, migrations
from otlp_client import CUMULATIVE, DELTA, histogram, metrics, point, sum_metric

CLAUDE_TOKENS = "claude_code.token.usage"
GEN_AI = "gen_ai.client.token.usage"


def run_tool(home, tmp_path, command: str, items: list, *, content_type: str = oc.JSON,
             gzipped: bool = False, exit_with: int = 0, args: tuple[str, ...] = (),
             name: str = "payloads") -> subprocess.CompletedProcess:
    """`aitrack COMMAND` whose tool is the sender child posting `items` to its receiver."""
    tool = oc.sender(tmp_path)
    send = oc.plan(tmp_path / name, items, content_type, gzipped)
    env = {"OTLP_SEND": str(send), "EXIT_WITH": str(exit_with)}
    if command == "run":
        argv = ["run", "--name", "agent", "--", str(tool), *args]
    else:
        env[f"AITRACK_{command.upper()}_BIN"] = str(tool)
        argv = [command, *args]
    result = home.run(*argv, env=env)
    assert result.returncode == exit_with, result.stderr
    return result


def usage(home) -> dict[tuple[str, str], int]:
    db = sqlite3.connect(home.ledger)
    return {(m, t): n for m, t, n in db.execute("SELECT model, token_type, tokens FROM usage")}


def figures(home) -> dict[tuple[str, str], float]:
    db = sqlite3.connect(home.ledger)
    return {(m, n): round(v, 6) for m, n, v in
            db.execute("SELECT model, name, value FROM session_metrics")}


def claude_tokens(values: dict[str, int | float], temporality: int, start: int = 1_000,
                  at: int = 2_000, model: str = "claude-opus-5-5",
                  session_id: str = "cc-1") -> dict:
    return sum_metric(CLAUDE_TOKENS, [
        point(v, start=start, time=at, type=t, model=model, **{"session.id": session_id})
        for t, v in values.items()], temporality)


# ------------------------------------------------------------------ temporality

# what the tool counted in each of three export intervals
INTERVALS = [{"input": 100, "output": 20, "cacheRead": 1000, "cacheCreation": 50},
             {"input": 40, "output": 7, "cacheRead": 0, "cacheCreation": 0},
             {"input": 1, "output": 300, "cacheRead": 2500, "cacheCreation": 5}]
EXPECTED = {("claude-opus-5-5", "input"): 141, ("claude-opus-5-5", "output"): 327,
            ("claude-opus-5-5", "cache_read"): 3500, ("claude-opus-5-5", "cache_creation"): 55}


def as_exports(temporality: int) -> list[tuple[str, dict]]:
    """The three intervals as a tool would export them: each on its own, or running totals."""
    exports, running = [], dict.fromkeys(INTERVALS[0], 0)
    for n, interval in enumerate(INTERVALS):
        for k, v in interval.items():
            running[k] += v
        values = interval if temporality == DELTA else dict(running)
        start = 1_000 + n * 10 if temporality == DELTA else 1_000
        exports.append(("metrics", metrics(claude_tokens(values, temporality, start=start,
                                                         at=2_000 + n * 10))))
    return exports


@pytest.mark.parametrize("temporality", [DELTA, CUMULATIVE], ids=["delta", "cumulative"])
def test_delta_and_cumulative_exports_give_the_same_totals(home, tmp_path, temporality):
    run_tool(home, tmp_path, "claude", as_exports(temporality))
    assert usage(home) == EXPECTED


def test_a_cumulative_series_restarted_with_a_new_start_time_counts_both_runs(home, tmp_path):
    model = "claude-opus-5-5"
    first = [claude_tokens({"input": v}, CUMULATIVE, start=1_000, at=t)
             for v, t in ((100, 2_000), (250, 3_000), (400, 4_000))]
    # the tool restarted its counters: a new start time, counting from zero again
    second = [claude_tokens({"input": v}, CUMULATIVE, start=5_000, at=t)
              for v, t in ((30, 6_000), (80, 7_000))]
    run_tool(home, tmp_path, "claude", [("metrics", metrics(m)) for m in first + second])
    assert usage(home) == {(model, "input"): 400 + 80}


def test_a_start_time_past_2_to_the_63_is_still_differenced(home, tmp_path):
    """start_time_unix_nano is an unsigned 64-bit field; SQLite integers are signed."""
    start = 2**64 - 1_000
    exports = [claude_tokens({"input": v}, CUMULATIVE, start=start, at=t)
               for v, t in ((100, 2_000), (250, 3_000))]
    result = run_tool(home, tmp_path, "claude", [("metrics", metrics(m)) for m in exports])
    assert usage(home) == {("claude-opus-5-5", "input"): 250}
    assert result.stderr == ""


def test_cumulative_series_are_kept_apart_by_their_attributes(home, tmp_path):
    exports = [metrics(sum_metric(CLAUDE_TOKENS, [
        point(10 * n, type="input", model="a"), point(100 * n, type="input", model="b"),
        point(n, type="output", model="a")], CUMULATIVE)) for n in (1, 2, 3)]
    run_tool(home, tmp_path, "claude", [("metrics", e) for e in exports])
    assert usage(home) == {("a", "input"): 30, ("b", "input"): 300, ("a", "output"): 3}


def test_cumulative_cost_is_differenced_like_tokens(home, tmp_path):
    exports = [metrics(sum_metric("claude_code.cost.usage", [point(v, model="m")], CUMULATIVE))
               for v in (0.25, 0.75, 1.5)]
    run_tool(home, tmp_path, "claude", [("metrics", e) for e in exports])
    assert figures(home) == {("m", "cost_usd"): 1.5}


@pytest.mark.parametrize("temporality", [DELTA, CUMULATIVE], ids=["delta", "cumulative"])
def test_histograms_count_their_sum_not_their_count(home, tmp_path, temporality):
    labels = {"gen_ai.response.model": "gemini-9"}
    sums = [(300.0, 120.0), (450.0, 200.0)]  # (input, output) per export
    exports = []
    for n, (inp, out) in enumerate(sums):
        if temporality == CUMULATIVE:
            inp, out = sum(s[0] for s in sums[:n + 1]), sum(s[1] for s in sums[:n + 1])
        exports.append(("metrics", metrics(histogram(GEN_AI, [
            oc.hist_point(inp, count=3, time=2_000 + n, **labels, **{"gen_ai.token.type": "input"}),
            oc.hist_point(out, count=3, time=2_000 + n, **labels,
                          **{"gen_ai.token.type": "output"})], temporality))))
    run_tool(home, tmp_path, "run", exports, content_type=oc.PROTOBUF)
    assert usage(home) == {("gemini-9", "input"): 750, ("gemini-9", "output"): 320}


# ------------------------------------------------------------------ duplicates

def test_the_same_payload_received_twice_is_counted_once(home, tmp_path):
    once = metrics(claude_tokens({"input": 500, "output": 60}, DELTA))
    later = metrics(claude_tokens({"input": 500, "output": 60}, DELTA, at=9_000))
    body = oc.encode("metrics", once, oc.JSON)
    # a retry of the same bytes (the answer was lost), then new data that happens to be equal
    run_tool(home, tmp_path, "claude", [("metrics", body), ("metrics", body), ("metrics", later)])
    assert usage(home) == {("claude-opus-5-5", "input"): 1000,
                           ("claude-opus-5-5", "output"): 120}
    db = sqlite3.connect(home.ledger)
    assert db.execute("SELECT COUNT(*) FROM payloads").fetchone()[0] == 2


def test_a_gzipped_retry_of_the_same_payload_is_counted_once(home, tmp_path):
    body = oc.encode("metrics", metrics(claude_tokens({"input": 500}, DELTA)), oc.PROTOBUF)
    run_tool(home, tmp_path, "claude", [("metrics", body), ("metrics", body, {"gzip": True})],
             content_type=oc.PROTOBUF)
    assert usage(home) == {("claude-opus-5-5", "input"): 500}


def test_the_same_bytes_in_two_runs_count_in_each(home, tmp_path):
    """Duplicates are recognised per receiver: two runs of one Claude session (a resume)
    that happen to send identical bytes both count, in that one session."""
    body = oc.encode("metrics", metrics(claude_tokens({"input": 500}, DELTA)), oc.JSON)
    run_tool(home, tmp_path, "claude", [("metrics", body)], name="first")
    run_tool(home, tmp_path, "claude", [("metrics", body)], gzipped=True, name="second")
    db = sqlite3.connect(home.ledger)
    assert db.execute("SELECT session_id, tokens FROM usage").fetchall() == [("claude:cc-1", 1000)]
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2


# ------------------------------------------------------------------ tool mappings

def process(home, items: list[tuple[str, dict]], receiver: str = "agent") -> None:
    """Payloads through the agent's parts (inbox, processor, ledger), in-process."""
    from aitrack.capture import intake
    from aitrack.domain import pricing
    from aitrack.store import ledger

    db = ledger.connect(home.ledger)
    done = []
    processor = intake.Processor(db, receiver, intake.Context({"user.id": "u"}, (),
                                                              pricing.load()))
    inbox = intake.Inbox(ledger.connect(home.ledger), receiver, lambda: done.append(1))
    for signal, payload in items:
        inbox.put(intake.Delivery(signal, oc.JSON, json.dumps(payload).encode(), None))
    assert processor.drain(10) == 0
    assert processor.failed == 0


def codex_response(conversation: str, model: str = "gpt-5", **counts: int) -> dict:
    """The log record Codex writes for each model response (checked with codex 0.169.0)."""
    fields = {"input_token_count": 5000, "cached_token_count": 1200,
              "cache_write_token_count": 0, "output_token_count": 700,
              "reasoning_token_count": 250, **counts}
    return oc.log_record("codex.sse_event", **{
        "event.name": "codex.sse_event", "event.kind": "response.completed",
        "conversation.id": conversation, "model": model, "originator": "codex_exec",
        **{k: str(v) for k, v in fields.items()}})


def test_codex_usage_is_counted_per_response_and_per_conversation(home):
    """Codex's log records name their conversation; its metrics (no session id) count nothing,
    so the two are never added together."""
    labels = {"model": "gpt-5", "app.version": "0.169.0"}
    reported = {"input": 5000, "cached_input": 1200, "output": 700, "reasoning_output": 250,
                "total": 5700, "cache_write_input": 30}
    resource = {"service.name": "codex_exec", "service.version": "0.169.0"}
    process(home, [
        ("metrics", metrics(histogram("codex.turn.token_usage", [
            oc.hist_point(v, **labels, token_type=t) for t, v in reported.items()]),
            resource=resource)),
        ("logs", oc.logs(codex_response("conv-7", cache_write_token_count=30),
                         codex_response("conv-7", input_token_count=2000, cached_token_count=0),
                         codex_response("conv-8"),
                         oc.log_record("codex.sse_event", **{
                             "event.name": "codex.sse_event", "event.kind": "response.created",
                             "conversation.id": "conv-7"}),
                         resource=resource)),
    ])
    db = sqlite3.connect(home.ledger)
    by_session = {}
    for sid, model, token_type, n in db.execute("SELECT * FROM usage"):
        by_session.setdefault(sid, {})[(model, token_type)] = n
    # input includes cached input and cache writes: the ledger keeps the rest
    assert by_session["codex:conv-7"] == {
        ("gpt-5", "input"): 3770 + 2000, ("gpt-5", "cache_read"): 1200,
        ("gpt-5", "cache_creation"): 30, ("gpt-5", "output"): 1400,
        ("gpt-5", "reasoning"): 500}
    assert by_session["codex:conv-8"][("gpt-5", "input")] == 3800
    assert db.execute("SELECT tool, tool_version, entrypoint FROM sessions ORDER BY id"
                      ).fetchall() == [("codex", "0.169.0", "codex_exec")] * 2

    report = home.run("report", "session", "--json")
    assert report.returncode == 0, report.stderr
    session = {s["id"]: s for s in json.loads(report.stdout)["sessions"]}["codex:conv-8"]
    # reasoning is part of output: shown, never added to the total a second time
    assert session["tokens"] == {"input": 3800, "cache_read": 1200, "output": 700,
                                 "cache_creation": 0, "reasoning": 250,
                                 "total": 3800 + 1200 + 700}


def test_claude_metrics_map_to_tokens_cost_and_contributions(home, tmp_path):
    model = "claude-opus-5-5"
    sid = {"session.id": "0f6e3c1a-1111-2222-3333-444455556666"}
    payload = metrics(
        claude_tokens({"input": 1234, "output": 321, "cacheRead": 8910, "cacheCreation": 567},
                      DELTA, session_id=sid["session.id"]),
        sum_metric("claude_code.cost.usage", [point(0.0421, model=model, **sid)]),
        sum_metric("claude_code.lines_of_code.count", [point(12, type="added", **sid),
                                                       point(3, type="removed", **sid)]),
        sum_metric("claude_code.commit.count", [point(2, **sid)]),
        sum_metric("claude_code.pull_request.count", [point(1, **sid)]),
        sum_metric("claude_code.active_time.total", [point(41.5, type="user", **sid)]),
        sum_metric("claude_code.session.count", [point(1, **sid)]),
        sum_metric("claude_code.code_edit_tool.decision", [point(4, decision="accept", **sid)]),
        resource={"service.name": "claude-code", "service.version": "2.1.328"})
    run_tool(home, tmp_path, "claude", [("metrics", payload)], args=("-p", "hi"))
    assert usage(home) == {(model, "input"): 1234, (model, "output"): 321,
                           (model, "cache_read"): 8910, (model, "cache_creation"): 567}
    assert figures(home) == {(model, "cost_usd"): 0.0421, ("", "lines_added"): 12,
                             ("", "lines_removed"): 3, ("", "commits"): 2,
                             ("", "pull_requests"): 1, ("", "active_time_s"): 41.5}
    db = sqlite3.connect(home.ledger)
    assert db.execute("SELECT tool, tool_version FROM sessions").fetchall() == [
        ("claude", "2.1.328")]
    assert db.execute("SELECT tool_session_id FROM tool_sessions").fetchall() == [
        (sid["session.id"],)]
    report = json.loads(home.run("report", "session", "--json").stdout)
    [session] = report["sessions"]
    assert (session["cost_usd"], session["cost_source"]) == (0.0421, "reported")


# ------------------------------------------------------------------ migrations

def test_migrations_are_recorded_and_applied_once(tmp_path):
    path = tmp_path / "ledger.db"
    db = ledger.connect(path)
    first = db.execute("SELECT version, name, applied_at FROM schema_migrations").fetchall()
    assert [(v, n) for v, n, _ in first] == [
        (n, fn.__name__) for n, fn in enumerate(migrations.MIGRATIONS, 1)]
    assert [n for _, n, _ in first][:2] == ["m001_ledger_and_outbox", "m002_hourly_summaries"]
    db.close()
    again = ledger.connect(path)  # a later run: nothing re-applied, nothing duplicated
    assert again.execute("SELECT version, name, applied_at FROM schema_migrations"
                         ).fetchall() == first
    assert migrations.migrate(again) == len(migrations.MIGRATIONS)


def test_an_old_ledger_is_upgraded_with_its_rows_kept(tmp_path):
    path = tmp_path / "ledger.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("CREATE TABLE schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
    migrations.m001_ledger_and_outbox(old)
    old.execute("INSERT INTO schema_migrations VALUES (1, 'm001_ledger_and_outbox', 0)")
    old.execute("INSERT INTO sessions (id, tool, started_at) VALUES ('s1', 'claude', 7200)")
    old.execute("INSERT INTO usage VALUES ('s1', 'm', 'input', 42)")
    old.close()
    db = ledger.connect(path)
    assert [v for (v,) in db.execute("SELECT version FROM schema_migrations")] == list(
        range(1, len(migrations.MIGRATIONS) + 1))
    assert db.execute("SELECT tokens FROM usage").fetchall() == [(42,)]
    # m002's summaries were backfilled from the rows already there
    assert db.execute("SELECT hour, tool, model, input FROM usage_hourly").fetchall() == [
        (2, "claude", "m", 42)]


def test_a_failing_migration_leaves_the_ledger_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "ledger.db"
    ledger.connect(path).close()

    def m999_broken(db):
        db.execute("CREATE TABLE half_done (x)")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, m999_broken])
    with pytest.raises(sqlite3.OperationalError):
        ledger.connect(path)
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(
        migrations.MIGRATIONS) - 1
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchall() == []


# ------------------------------------------------------------------ concurrency

def test_twenty_concurrent_runs_writing_one_ledger_lose_nothing(home, tmp_path):
    """Twenty `aitrack run` processes at once, on a ledger none of them has created yet."""
    tool = oc.sender(tmp_path)
    runs = 20
    procs = []
    for n in range(runs):
        exports = [("metrics", metrics(histogram(GEN_AI, [
            oc.hist_point(1000 * n + k, time=2_000 + k, **{"gen_ai.token.type": "input",
                                                         "gen_ai.response.model": "m"}),
            oc.hist_point(n + 1, time=2_000 + k, **{"gen_ai.token.type": "output",
                                                     "gen_ai.response.model": "m"})])))
                   for k in range(5)]
        exports.append(("logs", oc.logs(oc.log_record("done", **{"session.id": f"run-{n}"}))))
        send = oc.plan(tmp_path / f"run-{n}", exports)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "aitrack", "run", "--name", f"agent-{n}", "--", str(tool)],
            env={**home.env, "OTLP_SEND": str(send), "EXIT_WITH": str(n % 7)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for n, proc in enumerate(procs):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == n % 7, err
        assert err == "", err

    db = sqlite3.connect(home.ledger)
    sessions = db.execute("SELECT id, tool, exit_code, ended_at FROM sessions").fetchall()
    assert sorted((tool, code) for _, tool, code, _ in sessions) == sorted(
        (f"agent-{n}", n % 7) for n in range(runs))
    assert all(ended for *_, ended in sessions)
    by_tool = {tool: sid for sid, tool, _, _ in sessions}
    for n in range(runs):
        rows = dict(db.execute("SELECT token_type, tokens FROM usage WHERE session_id = ?",
                               (by_tool[f"agent-{n}"],)).fetchall())
        assert rows == {"input": sum(1000 * n + k for k in range(5)), "output": 5 * (n + 1)}
    assert db.execute("SELECT COUNT(*) FROM payloads").fetchone()[0] == runs * 6
    assert db.execute("SELECT COUNT(*) FROM tool_sessions").fetchone()[0] == runs
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # the report's summaries agree with the rows they summarise
    assert db.execute("SELECT SUM(input), SUM(output) FROM usage_hourly").fetchone() == (
        sum(1000 * n + k for n in range(runs) for k in range(5)), sum(5 * (n + 1)
                                                                      for n in range(runs)))
    assert db.execute("SELECT SUM(sessions) FROM sessions_hourly").fetchone()[0] == runs


CREATE_AND_WRITE = """
import os, sys, time
from pathlib import Path
from aitrack.store import ledger
at = float(sys.argv[2])
while time.time() < at:  # all processes open the ledger at the same instant
    pass
db = ledger.connect(Path(sys.argv[1]))
ledger.start_session(db, ledger.SessionStart(os.urandom(8).hex(), "t", at, "/", "p", {}))
"""


def test_runs_creating_the_ledger_at_the_same_instant_all_succeed(tmp_path):
    """The first runs after an install race to create the ledger and switch it to WAL."""
    ledgers = [tmp_path / f"round-{n}" / "ledger.db" for n in range(6)]
    at = str(time.time() + 2.0)
    procs = [subprocess.Popen([sys.executable, "-c", CREATE_AND_WRITE, str(path), at],
                              stderr=subprocess.PIPE, text=True)
             for path in ledgers for _ in range(16)]
    errors = [err for p in procs if (err := p.communicate(timeout=120)[1]) or p.returncode]
    assert errors == []
    for path in ledgers:
        db = sqlite3.connect(path)
        assert db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 16
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
