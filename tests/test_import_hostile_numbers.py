"""Issue 18: hostile numbers in transcripts.

Counts above 2^63-1 or 1e300 floats raised OverflowError and rolled the whole import back
(every later import and report failed); 9223372036854775807 tokens was accepted ($2.6e14);
`costUSD: 1e30` was shown; dates 0001-01-01 and 9999-12-31 crashed report and dashboard.
A bad record is skipped by reason, one file never rolls back another, and implausible values
(over 1e9 tokens in one request, a cost over $10,000, a date outside 2020..now+1 day) are
skipped and counted. Reports and the dashboard never crash on what a ledger already holds.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time

import pytest

from aitrack.domain.records import TranscriptSession
from aitrack.store import ledger
from aitrack.store.importing import files
from transcript_tree import (
    CS1,
    OPUS,
    S1,
    S2,
    assistant,
    cost,
    cost_state,
    figures,
    meta,
    run,
    token_count,
    turn,
    usage,
    user,
)

pytest_plugins = ("transcript_tree",)  # fixtures: tree, db

THREAD = "019a0000-0000-7000-8000-000000000001"
INT64_MAX = 2**63 - 1


def hostile_usage(value) -> dict:
    u = usage(10, 10)
    u["input_tokens"] = value
    return u


def raw_line(obj: dict, replace: dict[str, str]) -> bytes:
    """A JSON line with numbers no json.dumps writes (1e400, a 30-digit integer)."""
    text = json.dumps(obj, separators=(",", ":"))
    for old, new in replace.items():
        text = text.replace(old, new)
    return text.encode() + b"\n"


def test_hostile_token_counts_are_skipped_by_reason(db, tree):
    big = assistant(S1, "msg_big", "req_big", hostile_usage(987654321))
    tree.claude(S1, [
        user(S1),
        assistant(S1, "msg_1", "req_1", usage(10, 10)),
        raw_line(big, {"987654321": "1" + "0" * 30}),  # beyond any 64-bit integer
        raw_line(big, {"987654321": "1e300"}),
        raw_line(big, {"987654321": "1e400"}),  # beyond a double: infinity
        assistant(S1, "msg_max", "req_max", hostile_usage(INT64_MAX)),
        assistant(S1, "msg_b", "req_b", hostile_usage(1_000_000_001)),  # over 1e9 in a request
        assistant(S1, "msg_nan", "req_nan", hostile_usage(-5)),
        assistant(S1, "msg_2", "req_2", usage(20, 20)),
    ])
    result = run(db, tree)
    assert figures(db, CS1) == {OPUS: {"input": 30, "output": 30}}
    assert result.skipped == {"implausible_tokens": 4, "out_of_range": 1, "bad_record": 1}
    assert "4 over 1e9 tokens in one request" in result.summary()


def test_a_cost_over_10000_dollars_is_skipped_and_counted(db, tree):
    tree.claude(S1, [user(S1), assistant(S1, "msg_1", "req_1", usage(10, 10)),
                     cost_state(S1, {OPUS: 0.25})])
    run(db, tree)
    tree.claude(S1, [cost_state(S1, {OPUS: 1e30})], mode="a")  # the last one counts
    result = run(db, tree)
    assert cost(db, CS1) == {OPUS: 0.25}
    assert result.skipped == {"implausible_cost": 1}


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z",
                                   "2019-12-31T23:59:59.000Z", "+99999-01-01T00:00:00Z"])
def test_implausible_dates_are_skipped_and_counted(db, tree, stamp):
    tree.claude(S1, [user(S1), assistant(S1, "msg_1", "req_1", usage(10, 10)),
                     assistant(S1, "msg_2", "req_2", usage(20, 20), ts=stamp)])
    result = run(db, tree)
    assert figures(db, CS1) == {OPUS: {"input": 10, "output": 10}}
    assert result.skipped.get("implausible_date") == 1
    started, ended = db.execute("SELECT started_at, ended_at FROM sessions").fetchone()
    assert 1.5e9 < started <= ended < time.time() + 86400


def test_a_date_of_tomorrow_is_kept(db, tree):
    tomorrow = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 3600 * 20))
    tree.claude(S1, [user(S1), assistant(S1, "msg_1", "req_1", usage(10, 10), ts=tomorrow)])
    result = run(db, tree)
    assert figures(db, CS1) == {OPUS: {"input": 10, "output": 10}} and not result.skipped


def test_codex_hostile_totals_are_skipped(db, tree):
    ts = "2026-11-20T10:00:0{}.000Z"
    tree.codex(THREAD, [
        meta(THREAD), turn("gpt-5.1-codex"),
        token_count(ts.format(1), (100, 0, 0, 10, 0)),
        raw_line(token_count(ts.format(2), (123456789, 0, 0, 20, 0)),
                 {"123456789": "1e400"}),
        token_count(ts.format(3), (100 + 2_000_000_000, 0, 0, 20, 0)),  # a 2e9 request
        token_count(ts.format(4), (INT64_MAX, 0, 0, 30, 0)),
    ])
    result = run(db, tree)
    got = figures(db, f"codex:{THREAD}")
    assert got == {"gpt-5.1-codex": {"input": 100, "output": 10}}, got
    assert result.skipped == {"implausible_tokens": 2, "out_of_range": 1}


def test_one_bad_file_never_rolls_back_another(db, tree, monkeypatch):
    """Whatever a reader's bug raises for one file costs that file only."""
    tree.claude(S1, [user(S1), assistant(S1, "msg_1", "req_1", usage(10, 10))])
    tree.claude(S2, [user(S2), assistant(S2, "msg_2", "req_2", usage(20, 20))], project="-bad")
    real = files.Lines.read

    def failing(self, fh, start, st):
        if "-bad" in str(self.reader.file.path):
            raise RuntimeError("a reader's bug")
        return real(self, fh, start, st)

    monkeypatch.setattr(files.Lines, "read", failing)
    result = run(db, tree)
    assert figures(db, CS1) == {OPUS: {"input": 10, "output": 10}}
    assert result.skipped == {"reader_error": 1}


# ---------------------------------------------------------------- what a ledger already holds


def hostile_ledger(path) -> None:
    """Values an older aitrack let into a ledger."""
    db = ledger.connect(path)
    sessions = [
        TranscriptSession("claude", "year-1", -62135596800.0, -62135596800.0, cwd="/w",
                          project="w", usage={OPUS: {"input": INT64_MAX, "output": INT64_MAX}}),
        TranscriptSession("claude", "year-9999", 253402300799.0, 253402300799.0, cwd="/w",
                          project="w", usage={OPUS: {"input": INT64_MAX}},
                          totals={OPUS: {"cost_usd": 1e30}}),
        TranscriptSession("codex", "huge", 1.79e308, 1.79e308, usage={"m": {"input": 1}}),
        TranscriptSession("codex", "ok", time.time() - 3600, time.time(),
                          usage={"gpt-5.1": {"input": 1000}}),
        # dated now, with what an older aitrack accepted: 2^63-1 tokens, a $1e30 cost
        TranscriptSession("claude", "max-now", time.time() - 60, 1e300,
                          usage={OPUS: {"input": INT64_MAX, "cache_read": INT64_MAX}},
                          totals={OPUS: {"cost_usd": 1e30}}),
        TranscriptSession("claude", "max-now-2", time.time() - 30, time.time(),
                          usage={OPUS: {"input": INT64_MAX, "output": INT64_MAX}}),
    ]
    with ledger.write(db):
        ledger.record_transcripts(db, sessions, {"user.id": "dev"})
    db.close()


@pytest.mark.parametrize("args", [
    ["report"], ["report", "session"], ["report", "model"], ["report", "weekly"],
    ["report", "monthly"], ["report", "--json"], ["report", "session", "--json"],
    ["report", "--csv"], ["report", "--breakdown"], ["prices"]])
def test_reports_never_crash_on_what_a_ledger_holds(home, args):
    hostile_ledger(home.ledger)
    result = home.run(*args, env={"CLAUDE_CONFIG_DIR": "/nonexistent",
                                  "CODEX_HOME": "/nonexistent"})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "unexpected error" not in result.stderr
    if "--json" in args:
        data = json.loads(result.stdout)
        assert all(not isinstance(v, float) or math.isfinite(v)
                   for v in _numbers(data))


def test_the_dashboard_never_crashes_on_what_a_ledger_holds(home, tmp_path):
    hostile_ledger(home.ledger)
    result = home.run("dashboard", "--out", str(tmp_path / "d.html"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d.html").stat().st_size > 1000


def test_a_ledger_with_hostile_rows_still_imports(home, tree):
    hostile_ledger(home.ledger)
    tree.claude(S1, [user(S1), assistant(S1, "msg_1", "req_1", usage(10, 10))])
    db = ledger.connect(home.ledger)
    run(db, tree)
    assert figures(db, CS1) == {OPUS: {"input": 10, "output": 10}}
    assert sqlite3.connect(home.ledger).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def _numbers(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _numbers(v)
    elif isinstance(node, list):
        for v in node:
            yield from _numbers(v)
    elif isinstance(node, (int, float)):
        yield node

