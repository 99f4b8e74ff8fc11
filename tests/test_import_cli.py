"""`aitrack import` as a user runs it, the report's import first, and one session per tool
session whichever way aitrack learnt of it."""

from __future__ import annotations

import json
import sqlite3

from aitrack.domain.records import Contribution
from aitrack.store import ledger
from transcript_tree import (
    OPUS,
    S1,
    Tree,
    assistant,
    cost_state,
    figures,
    meta,
    token_count,
    turn,
    usage,
    user,
)

pytest_plugins = ("transcript_tree",)  # fixtures: tree, db



C1 = "019a0000-0000-7000-8000-0000000000c1"


def _cli(home, tree: Tree, *args: str):
    return home.run(*args, env=tree.env)


def _seed(tree: Tree) -> None:
    tree.claude(S1, [user(S1), assistant(S1, "msg_1", "req_1", usage(100, 10, 1000, 50)),
                     cost_state(S1, {OPUS: 0.2})])
    tree.codex(C1, [meta(C1), turn("gpt-5"),
                    token_count("2026-11-20T10:00:01.000Z", (5000, 1200, 0, 700, 250))])


def test_help_explains_with_examples(home):
    proc = home.run("import", "--help")
    assert proc.returncode == 0
    assert "Examples:" in proc.stdout and "aitrack import --dry-run --json" in proc.stdout
    assert "--since" in proc.stdout and "--tool" in proc.stdout


def test_json_figures_and_one_summary_line(home, tree):
    _seed(tree)
    proc = _cli(home, tree, "import", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert {k: data[k] for k in ("files_seen", "files_read", "sessions_new",
                                 "sessions_updated", "responses", "skipped", "dry_run")} == {
        "files_seen": 2, "files_read": 2, "sessions_new": 2, "sessions_updated": 0,
        "responses": 2, "skipped": {}, "dry_run": False}
    assert data["bytes"] > 0 and data["seconds"] >= 0
    proc = _cli(home, tree, "import")
    assert proc.returncode == 0
    assert proc.stdout.count("\n") == 1
    assert proc.stdout.startswith("nothing new in 2 transcript files in ")


def test_tool_and_since_choose_what_is_read(home, tree):
    import os
    import time

    _seed(tree)
    proc = _cli(home, tree, "import", "--tool", "codex", "--json")
    assert json.loads(proc.stdout)["sessions_new"] == 1
    db = sqlite3.connect(home.ledger)
    assert [t for (t,) in db.execute("SELECT tool FROM sessions")] == ["codex"]
    old = time.time() - 40 * 86400
    claude_file = next((tree.claude_dir / "projects").rglob("*.jsonl"))
    os.utime(claude_file, (old, old))
    since = time.strftime("%Y-%m-%d", time.localtime(time.time() - 86400))
    proc = _cli(home, tree, "import", "--since", since, "--json")
    assert json.loads(proc.stdout)["files_read"] == 0
    proc = _cli(home, tree, "import", "--json")  # left for a later import, not lost
    assert json.loads(proc.stdout)["sessions_new"] == 1
    assert "not a date" in _cli(home, tree, "import", "--since", "yesterday").stderr


def test_dry_run_writes_nothing(home, tree):
    _seed(tree)
    proc = _cli(home, tree, "import", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["dry_run"], data["sessions_new"], data["responses"]) == (True, 2, 2)
    assert not home.ledger.exists(), "no ledger was created"
    assert "would import 2 responses" in _cli(home, tree, "import", "--dry-run").stdout

    home.ledger.parent.mkdir(parents=True, exist_ok=True)
    ledger.connect(home.ledger).close()
    before = _dump(home)
    proc = _cli(home, tree, "import", "--dry-run", "--json")
    assert json.loads(proc.stdout)["sessions_new"] == 2
    assert _dump(home) == before
    assert json.loads(_cli(home, tree, "import", "--json").stdout)["sessions_new"] == 2


def _dump(home) -> dict:
    db = sqlite3.connect(home.ledger)
    tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: sorted(map(repr, db.execute(f"SELECT * FROM {t}"))) for t in tables
            if t != "emission_state"}


def test_report_imports_first_and_no_import_skips_it(home, tree):
    _seed(tree)
    proc = _cli(home, tree, "report", "session", "--json", "--no-import")
    assert proc.returncode == 0, proc.stderr
    assert not home.ledger.exists()
    proc = _cli(home, tree, "report", "session", "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    sessions = json.loads(proc.stdout)["sessions"]
    assert sorted(s["tool"] for s in sessions) == ["claude", "codex"]


def _telemetry(db: sqlite3.Connection, tool: str, tsid: str, figures_: dict[str, dict]) -> str:
    """A session as the telemetry path makes it: session_for + add."""
    with ledger.write(db):
        sid = ledger.session_for(db, tool, tsid, started_at=1795168700.0,
                                 attributes={"user.id": "dev"}, entrypoint="cli",
                                 sources=ledger.TELEMETRY)
        for model, types in figures_.items():
            for name, value in types.items():
                kind = "metric" if name == "cost_usd" else "tokens"
                ledger.add(db, sid, Contribution(kind, model, name, value), "telemetry")
    return sid


def test_a_session_from_telemetry_and_its_transcript_is_one_counting_each_request_once(
        home, tree):
    # telemetry's totals saw the main request and the title request (never a transcript
    # line); the transcript has the main request and one whose telemetry was lost, and its
    # cost-state the session's totals: the union, each request once
    home.ledger.parent.mkdir(parents=True, exist_ok=True)
    db = ledger.connect(home.ledger)
    sid = _telemetry(db, "claude", S1, {
        OPUS: {"input": 100, "output": 10, "cache_read": 1000, "cache_creation": 50,
               "cost_usd": 0.1},
        "claude-haiku-4-5": {"input": 40, "output": 8, "cost_usd": 0.001}})
    tree.claude(S1, [user(S1), assistant(S1, "msg_1", "req_1", usage(100, 10, 1000, 50)),
                     assistant(S1, "msg_2", "req_2", usage(7, 3, 500, 0)),
                     cost_state(S1, {OPUS: 0.2, "claude-haiku-4-5": 0.001}, tokens={
                         OPUS: {"inputTokens": 107, "outputTokens": 13,
                                "cacheReadInputTokens": 1500, "cacheCreationInputTokens": 50},
                         "claude-haiku-4-5": {"inputTokens": 40, "outputTokens": 8}})])
    proc = _cli(home, tree, "import", "--json")
    data = json.loads(proc.stdout)
    assert (data["sessions_new"], data["sessions_updated"]) == (0, 1)
    assert [r[0] for r in db.execute("SELECT id FROM sessions")] == [sid]
    assert figures(db, sid) == {
        OPUS: {"input": 107, "output": 13, "cache_read": 1500, "cache_creation": 50},
        "claude-haiku-4-5": {"input": 40, "output": 8}}
    assert dict(db.execute("SELECT model, value FROM session_metrics WHERE name = 'cost_usd'")
                ) == {OPUS: 0.2, "claude-haiku-4-5": 0.001}
    sources = db.execute("SELECT sources, started_at FROM sessions").fetchone()
    assert sources == (ledger.TELEMETRY | ledger.TRANSCRIPT, 1795168700.0)
    report = json.loads(_cli(home, tree, "report", "session", "--json").stdout)
    (session,) = report["sessions"]
    assert "transcript" in json.dumps(session) and "telemetry" in json.dumps(session)


def test_a_codex_run_whose_final_export_was_lost_shows_after_the_next_report(home, tree):
    # killed by a quick second Ctrl-C: telemetry had the first response only
    home.ledger.parent.mkdir(parents=True, exist_ok=True)
    db = ledger.connect(home.ledger)
    sid = _telemetry(db, "codex", C1, {"gpt-5": {"input": 3800, "cache_read": 1200,
                                                 "output": 700, "reasoning": 250}})
    tree.codex(C1, [meta(C1), turn("gpt-5"),
                    token_count("2026-11-20T10:00:01.000Z", (5000, 1200, 0, 700, 250)),
                    token_count("2026-11-20T10:00:09.000Z", (10000, 2400, 0, 1400, 500),
                                last=(5000, 1200, 0, 700, 250))])
    proc = _cli(home, tree, "report", "daily", "--json")
    assert proc.returncode == 0, proc.stderr
    assert figures(db, sid) == {"gpt-5": {"input": 7600, "cache_read": 2400, "output": 1400,
                                          "reasoning": 500}}
    totals = json.loads(proc.stdout)["totals"]
    assert totals["input"] == 7600 and totals["output"] == 1400 and totals["sessions"] == 1
    again = json.loads(_cli(home, tree, "report", "daily", "--json").stdout)["totals"]
    assert again == totals
