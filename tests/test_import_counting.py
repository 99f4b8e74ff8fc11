"""`aitrack import` counts each API response once: every duplicate pattern of
transcripts.md, in trees written here, with exact totals.

The builders are in transcript_tree.py, shared by every test_import_* file.
"""

from __future__ import annotations

import json
import multiprocessing.spawn
import os
import sys
import threading

import pytest

from aitrack.adapters import reading
from aitrack.store import ledger
from aitrack.store.importing import merge, workers
from transcript_tree import (
    CS1,
    OPUS,
    S1,
    S2,
    S3,
    Tree,
    assistant,
    codex_figures,
    cost,
    cost_state,
    figures,
    meta,
    open_db,
    rate_limits_only,
    row,
    run,
    token_count,
    turn,
    usage,
    usage_record,
    user,
)

pytest_plugins = ("transcript_tree",)  # fixtures: tree, db

def test_a_response_written_as_several_lines_counts_once_at_its_largest(db, tree):
    # before 2.1.97 the earlier content blocks carried placeholder output tokens
    tree.claude(S1, [
        user(S1),
        assistant(S1, "msg_a", "req_a", usage(10, 1, 100, 20), text="thinking"),
        assistant(S1, "msg_a", "req_a", usage(10, 1, 100, 20), text="tool use"),
        assistant(S1, "msg_a", "req_a", usage(10, 250, 100, 20), text="final"),
        assistant(S1, "msg_b", "req_b", usage(5, 40, 300, 0), ts="2026-11-20T10:01:00.000Z"),
    ])
    result = run(db, tree)
    assert figures(db, CS1) == {OPUS: {"input": 15, "output": 290, "cache_read": 400,
                                       "cache_creation": 20}}
    # the second line repeats the first; the third replaces it, larger
    assert (result.responses, result.sessions_new, result.duplicates) == (2, 1, 1)


def test_resumed_and_forked_copies_count_once_in_the_session_that_made_the_request(db, tree):
    # as claude 2.1.328 writes a fork (checked): the copies carry the new session id, and
    # requestSessionId naming the session that made the request
    parent = [user(S1), assistant(S1, "msg_1", "req_1", usage(100, 10, 1000, 50)),
              assistant(S1, "msg_2", "req_2", usage(200, 20, 2000, 0),
                        ts="2026-11-20T10:05:00.000Z"),
              cost_state(S1, {OPUS: 0.25})]
    copies = [assistant(S2, "msg_1", "req_1", usage(100, 10, 1000, 50), request_session=S1),
              assistant(S2, "msg_2", "req_2", usage(200, 20, 2000, 0), request_session=S1,
                        ts="2026-11-20T10:05:00.000Z")]
    fork = [{"type": "queue-operation", "timestamp": "2026-11-20T11:00:00.000Z",
             "sessionId": S2, "operation": "enqueue"}, *copies,
            assistant(S2, "msg_3", "req_3", usage(7, 3, 500, 0), ts="2026-11-20T11:00:05.000Z"),
            cost_state(S2, {OPUS: 0.31})]  # Claude's figure includes the copied requests
    tree.claude(S2, fork)  # the fork is read first: the copies still go to the parent
    tree.claude(S1, parent)
    run(db, tree)
    assert figures(db, CS1) == {OPUS: {"input": 300, "output": 30, "cache_read": 3000,
                                       "cache_creation": 50}}
    assert figures(db, f"claude:{S2}") == {OPUS: {"input": 7, "output": 3, "cache_read": 500}}
    assert cost(db, CS1) == {OPUS: 0.25}
    assert cost(db, f"claude:{S2}") == {}  # priced from the table instead
    assert row(db, f"claude:{S2}")["started_at"] == pytest.approx(1795172400.0)  # 11:00 UTC


def test_sidechain_replay_of_a_main_line_counts_once_and_subagent_requests_count(db, tree):
    tree.claude(S1, [user(S1), assistant(S1, "msg_main", "req_main", usage(50, 5, 9000, 0))])
    tree.subagent(S1, "agent-1", [
        # a /btw side question replays the parent's request as a sidechain line
        assistant(S1, "msg_main", "req_main", usage(50, 5, 9000, 0), side=True),
        assistant(S1, "msg_sub1", "req_sub1", usage(3, 30, 100, 10), side=True,
                  model="claude-haiku-4-5"),
        assistant(S1, "msg_sub2", "req_sub2", usage(4, 40, 200, 0), side=True,
                  model="claude-haiku-4-5"),
    ])
    run(db, tree)
    assert figures(db, CS1) == {
        OPUS: {"input": 50, "output": 5, "cache_read": 9000},
        "claude-haiku-4-5": {"input": 7, "output": 70, "cache_read": 300, "cache_creation": 10},
    }


def test_a_replay_imported_before_its_main_line_is_not_counted_again(db, tree):
    # the subagent's log reached an import before the main log's line did
    tree.subagent(S1, "agent-1", [
        assistant(S1, "msg_x", "req_x", usage(9, 9, 9, 0), side=True),
        assistant(S1, "msg_own", "req_own", usage(1, 1, 1, 0), side=True)])
    run(db, tree)
    assert figures(db, CS1) == {OPUS: {"input": 10, "output": 10, "cache_read": 10}}
    tree.claude(S1, [user(S1), assistant(S1, "msg_x", "req_x", usage(9, 9, 9, 0))])
    run(db, tree)
    assert figures(db, CS1) == {OPUS: {"input": 10, "output": 10, "cache_read": 10}}
    assert db.execute("SELECT side FROM transcript_responses WHERE key = ?",
                      (reading.identity("claude\x1fmsg_x"),)).fetchone() == (0,)


def test_synthetic_lines_are_not_billed(db, tree):
    tree.claude(S1, [
        assistant(S1, "msg_1", "req_1", usage(10, 10)),
        assistant(S1, "synthetic-1", None, usage(0, 0), model="<synthetic>"),
        assistant(S1, "synthetic-2", None, usage(100, 100), model="<synthetic>"),
    ])
    result = run(db, tree)
    assert figures(db, CS1) == {OPUS: {"input": 10, "output": 10}}
    assert result.not_billed == 2


def test_cache_writes_are_the_larger_of_the_field_and_its_breakdown_1h_kept(db, tree):
    tree.claude(S1, [
        # before 2.1.152: top-level 0, the breakdown holds the writes
        assistant(S1, "msg_1", "req_1", usage(1, 1, 0, 0, five_m=300, one_h=200)),
        # 2.1.328 against a server without the breakdown: top-level holds them
        assistant(S1, "msg_2", "req_2", usage(1, 1, 0, 567, five_m=0, one_h=0)),
        # both agree
        assistant(S1, "msg_3", "req_3", usage(1, 1, 0, 1000, five_m=400, one_h=600)),
    ])
    run(db, tree)
    assert figures(db, CS1) == {OPUS: {"input": 3, "output": 3, "cache_creation": 2067,
                                       "cache_creation_1h": 800}}


def test_thinking_tokens_are_the_reasoning_part_of_output(db, tree):
    tree.claude(S1, [assistant(S1, "msg_1", "req_1", usage(1, 900, thinking=600))])
    run(db, tree)
    assert figures(db, CS1) == {OPUS: {"input": 1, "output": 900, "reasoning": 600}}


def test_request_id_keys_responses_and_message_id_alone_when_it_is_missing(db, tree):
    tree.claude(S1, [
        # a server giving every response the same message id: the request ids tell them apart
        assistant(S1, "msg_same", "req_1", usage(10, 1)),
        assistant(S1, "msg_same", "req_2", usage(20, 2)),
        assistant(S1, "msg_same", "req_2", usage(20, 2), text="second block"),
        # no request id (the header was missing): the message id alone
        assistant(S1, "msg_norid", None, usage(100, 1)),
        assistant(S1, "msg_norid", None, usage(100, 5), text="final"),
    ])
    result = run(db, tree)
    assert figures(db, CS1) == {OPUS: {"input": 130, "output": 8}}
    assert result.responses == 3


def test_cost_state_is_claude_codes_own_cost_of_record(db, tree):
    tree.claude(S1, [assistant(S1, "msg_1", "req_1", usage(10, 10)),
                     cost_state(S1, {OPUS: 0.5, "claude-haiku-4-5": 0.01}),
                     assistant(S1, "msg_2", "req_2", usage(10, 10)),
                     cost_state(S1, {OPUS: 0.75, "claude-haiku-4-5": 0.02})])
    run(db, tree)
    # the last (largest) one; the haiku title requests are in it though no line shows them
    assert cost(db, CS1) == {OPUS: 0.75, "claude-haiku-4-5": 0.02}


def test_fast_mode_keeps_the_model_name_the_file_reports(db, tree):
    fast = usage(10, 10)
    fast["speed"] = "fast"
    tree.claude(S1, [assistant(S1, "msg_1", "req_1", fast)])
    run(db, tree)
    assert list(figures(db, CS1)) == [OPUS]


def test_long_context_requests_fill_the_long_subsets(db, tree):
    sonnet = "claude-sonnet-4-5"  # long tier above 200,000 prompt tokens in prices.toml
    tree.claude(S1, [
        assistant(S1, "msg_1", "req_1", usage(1000, 100, 190_000, 20_000, five_m=15_000,
                                              one_h=5_000), model=sonnet),
        assistant(S1, "msg_2", "req_2", usage(1000, 50, 150_000, 0), model=sonnet),
    ])
    run(db, tree)
    assert figures(db, CS1) == {sonnet: {
        "input": 2000, "output": 150, "cache_read": 340_000, "cache_creation": 20_000,
        "cache_creation_1h": 5_000, "long_input": 1000, "long_output": 100,
        "long_cache_read": 190_000, "long_cache_creation": 20_000,
        "long_cache_creation_1h": 5_000}}


def test_a_session_only_in_transcripts_gets_its_facts_from_the_file(db, tree, tmp_path):
    repo = tmp_path / "repos" / "shop"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()
    cwd = str(repo / "src")
    tree.claude(S1, [
        {"type": "queue-operation", "timestamp": "2026-11-20T09:59:58.000Z", "sessionId": S1},
        user(S1, cwd=cwd, ts="2026-11-20T09:59:59.000Z"),
        assistant(S1, "msg_1", "req_1", usage(1, 1), cwd=cwd, entrypoint="claude-vscode",
                  ts="2026-11-20T10:00:00.000Z"),
        assistant(S1, "msg_2", "req_2", usage(1, 1), cwd=cwd, model="claude-haiku-4-5",
                  ts="2026-11-20T10:30:00.000Z"),
    ])
    run(db, tree)
    r = row(db, CS1)
    assert r["started_at"] == pytest.approx(1795168798.0)  # the first line, 09:59:58 UTC
    assert r["ended_at"] == pytest.approx(1795170600.0)  # the last response, 10:30 UTC
    assert (r["cwd"], r["project"], r["entrypoint"], r["tool_version"]) == (
        cwd, "shop", "claude-vscode", "2.1.328")
    assert r["tool_session_id"] == S1 and r["sources"] == ledger.TRANSCRIPT
    assert set(figures(db, CS1)) == {OPUS, "claude-haiku-4-5"}
    attrs = json.loads(r["attributes"])
    assert attrs["user.id"], "the enforced attributes of sessions aitrack creates"


# ---------------------------------------------------------------- Codex

C1 = "019a0000-0000-7000-8000-000000000001"
C2 = "019a0000-0000-7000-8000-000000000002"
C3 = "019a0000-0000-7000-8000-000000000003"


def _ts(second: float) -> str:
    return f"2026-11-20T10:00:{second:06.3f}Z"


def test_codex_counts_the_advance_of_the_cumulative_total_only_when_it_moves(db, tree):
    tree.codex(C1, [
        meta(C1), turn("gpt-5.5"),
        token_count(_ts(1), (1000, 200, 0, 100, 40)),
        token_count(_ts(2), (1000, 200, 0, 100, 40)),  # re-emitted (a UI refresh)
        rate_limits_only(_ts(3)),
        token_count(_ts(4), (3000, 1200, 0, 300, 90), last=(2000, 1000, 0, 200, 50)),
        token_count(_ts(5), (3000, 1200, 0, 300, 90), last=(2000, 1000, 0, 200, 50)),
        turn("gpt-5.4-mini", _ts(6)),  # the model changes within the session
        token_count(_ts(7), (3500, 1300, 0, 310, 90), last=(500, 100, 0, 10, 0)),
    ])
    run(db, tree)
    assert figures(db, f"codex:{C1}") == {
        "gpt-5.5": codex_figures(3000, 1200, 300, 90),
        "gpt-5.4-mini": codex_figures(500, 100, 10, 0)}


def test_codex_usage_records_and_their_token_counts_count_once(db, tree):
    # codex 0.169.0 writes both for every response (checked)
    tree.codex(C1, [
        meta(C1), turn("gpt-5"),
        usage_record(_ts(1), C1, "resp_1", (5000, 1200, 0, 700, 250), (5000, 1200, 0, 700, 250)),
        token_count(_ts(1.1), (5000, 1200, 0, 700, 250)),
        usage_record(_ts(2), C1, "resp_1", (5000, 1200, 0, 700, 250), (5000, 1200, 0, 700, 250)),
        # an automatic compaction: in the record, not in the cumulative total
        usage_record(_ts(3), C1, "resp_compact", (800, 0, 0, 100, 0), (5000, 1200, 0, 700, 250)),
        usage_record(_ts(4), C1, "resp_2", (6000, 5000, 300, 100, 0), (11000, 6200, 300, 800, 250)),
        token_count(_ts(4.1), (11000, 6200, 300, 800, 250), last=(6000, 5000, 300, 100, 0)),
    ])
    run(db, tree)
    want = {"input": 5000 - 1200 + 800 + 6000 - 5000 - 300, "cache_read": 6200,
            "cache_creation": 300, "output": 900, "reasoning": 250}
    assert figures(db, f"codex:{C1}") == {"gpt-5": want}


def test_the_same_rollout_in_sessions_and_archived_sessions_counts_once(db, tree):
    lines = [meta(C1), turn("gpt-5"), token_count(_ts(1), (1000, 0, 0, 10, 0)),
             token_count(_ts(2), (2500, 500, 0, 30, 5), last=(1500, 500, 0, 20, 5))]
    tree.codex(C1, lines)
    tree.codex(C1, lines, archived=True)
    result = run(db, tree)
    assert figures(db, f"codex:{C1}") == {"gpt-5": codex_figures(2500, 500, 30, 5)}
    assert result.sessions_new == 1


def test_a_forked_rollout_counts_only_its_own_responses(db, tree):
    # codex 0.169.0 `exec fork` (checked): the fork's cumulative total goes on from its
    # parent's; older builds write only token_count, newer ones a usage record too
    tree.codex(C1, [meta(C1), turn("gpt-5"),
                    token_count(_ts(1), (5000, 1200, 0, 700, 250)),
                    token_count(_ts(2), (10000, 2400, 0, 1400, 500),
                                last=(5000, 1200, 0, 700, 250))])
    tree.codex(C2, [meta(C2, forked_from=C1, ts=_ts(30)), turn("gpt-5", _ts(30)),
                    token_count(_ts(31), (15000, 3600, 0, 2100, 750),
                                last=(5000, 1200, 0, 700, 250))])
    tree.codex(C3, [meta(C3, forked_from=C1, ts=_ts(40)), turn("gpt-5", _ts(40)),
                    usage_record(_ts(41), C3, "resp_c3", (5000, 1200, 0, 700, 250),
                                 (15000, 3600, 0, 2100, 750)),
                    token_count(_ts(41.1), (15000, 3600, 0, 2100, 750),
                                last=(5000, 1200, 0, 700, 250))])
    run(db, tree)
    one = codex_figures(5000, 1200, 700, 250)
    assert figures(db, f"codex:{C1}") == {"gpt-5": {k: 2 * v for k, v in one.items()}}
    assert figures(db, f"codex:{C2}") == {"gpt-5": one}
    assert figures(db, f"codex:{C3}") == {"gpt-5": one}


def test_a_subagent_rollout_replaying_its_parent_counts_only_its_own(db, tree):
    spawn = {"subagent": {"thread_spawn": {"parent_thread_id": C1, "depth": 1}}}
    tree.codex(C2, [
        meta(C2, ts=_ts(10), source=spawn), turn("gpt-5", _ts(10)),
        # the replay of the parent's events, within the first second
        token_count(_ts(10.2), (1000, 0, 0, 10, 0)),
        usage_record(_ts(10.3), C1, "resp_parent", (1500, 0, 0, 20, 0), (2500, 0, 0, 30, 0)),
        token_count(_ts(10.4), (2500, 0, 0, 30, 0), last=(1500, 0, 0, 20, 0)),
        # its own response
        token_count(_ts(15), (2900, 100, 0, 70, 0), last=(400, 100, 0, 40, 0)),
    ])
    run(db, tree)
    assert figures(db, f"codex:{C2}") == {"gpt-5": codex_figures(400, 100, 40, 0)}


def test_a_branched_copy_of_another_rollout_counts_once(db, tree):
    # desktop branching copies the history into a new file: the same events, same times
    history = [token_count(_ts(1), (1000, 0, 0, 10, 0)),
               token_count(_ts(2), (3000, 0, 0, 30, 0), last=(2000, 0, 0, 20, 0))]
    tree.codex(C1, [meta(C1), turn("gpt-5"), *history])
    tree.codex(C2, [meta(C2, ts=_ts(50)), turn("gpt-5", _ts(50)), *history,
                    token_count(_ts(55), (3600, 0, 0, 36, 0), last=(600, 0, 0, 6, 0))])
    run(db, tree)
    assert figures(db, f"codex:{C1}") == {"gpt-5": codex_figures(3000, 0, 30, 0)}
    assert figures(db, f"codex:{C2}") == {"gpt-5": codex_figures(600, 0, 6, 0)}


def test_codex_session_facts_and_a_rollout_without_a_model(db, tree):
    tree.codex(C1, [meta(C1, cwd="/work/shop", originator="codex_exec"),
                    token_count(_ts(1), (100, 0, 0, 1, 0)),
                    token_count(_ts(9), (300, 0, 0, 3, 0), last=(200, 0, 0, 2, 0))])
    run(db, tree)
    r = row(db, f"codex:{C1}")
    assert (r["cwd"], r["project"], r["entrypoint"], r["tool_version"]) == (
        "/work/shop", "shop", "codex_exec", "0.169.0")
    assert r["started_at"] == pytest.approx(1795168800.0)
    assert r["ended_at"] == pytest.approx(1795168809.0)
    # rollouts from before September 2025 name no model: kept, unpriced, not guessed
    assert figures(db, f"codex:{C1}") == {"unknown": codex_figures(300, 0, 3, 0)}


def _mixed_tree(tree: Tree) -> None:
    """Every Claude pattern above at once, over several files."""
    tree.claude(S1, [user(S1), assistant(S1, "msg_1", "req_1", usage(10, 1, 100, 20)),
                     assistant(S1, "msg_1", "req_1", usage(10, 90, 100, 20), text="final"),
                     assistant(S1, "msg_2", "req_2", usage(5, 5, 50, 0, five_m=7, one_h=3)),
                     cost_state(S1, {OPUS: 0.3})])
    tree.subagent(S1, "agent-1", [assistant(S1, "msg_2", "req_2", usage(5, 5, 50, 0),
                                            side=True),
                                  assistant(S1, "msg_s", "req_s", usage(1, 2, 3, 4), side=True)])
    tree.claude(S2, [assistant(S2, "msg_1", "req_1", usage(10, 90, 100, 20), request_session=S1),
                     assistant(S2, "msg_3", "req_3", usage(4, 4, 4, 4)),
                     cost_state(S2, {OPUS: 0.5})])
    tree.claude(S3, [assistant(S3, f"msg_x{i}", f"req_x{i}", usage(i, i, i, i))
                     for i in range(1, 40)], project="-work-other")


def _use_workers(monkeypatch, cores: int, task_bytes: int | None = None) -> None:
    """Any import reads in worker processes, on `cores` idle cores."""
    monkeypatch.setattr(merge, "PARALLEL_BYTES", 0)
    if task_bytes is not None:
        monkeypatch.setattr(workers, "TASK_BYTES", task_bytes)
    monkeypatch.setattr(workers.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(workers, "busy_cores", lambda cores: 0.0)


def _spy_on_workers(monkeypatch) -> tuple[list[int], list[int]]:
    """The pools started (their sizes), and those that failed."""
    started, failed = [], []
    real_init, real_map = workers.Workers.__init__, workers.Workers.map

    def init(self, n, *args):
        started.append(n)
        real_init(self, n, *args)

    def answers(self, tasks, *here):
        try:
            yield from real_map(self, tasks, *here)
        except workers.WorkerFailed:
            failed.append(started[-1])
            raise

    monkeypatch.setattr(workers.Workers, "__init__", init)
    monkeypatch.setattr(workers.Workers, "map", answers)
    return started, failed


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes_count_exactly_as_one_process(db, tree, tmp_path, monkeypatch, method):
    _mixed_tree(tree)
    run(db, tree)
    alone = (figures(db), dict(db.execute("SELECT session_id, value FROM session_metrics")))
    _use_workers(monkeypatch, cores=3, task_bytes=1)  # one file per task
    monkeypatch.setattr(workers, "start_method", lambda: method)
    spawned, _ = _spy_on_workers(monkeypatch)
    other = open_db(tmp_path / "other" / "ledger.db")
    result = run(other, tree)
    assert spawned == [2] and result.files_read == 4
    assert (figures(other), dict(other.execute("SELECT session_id, value FROM session_metrics"))
            ) == alone


def test_batches_merged_while_the_workers_read_count_as_one_process(db, tree, tmp_path,
                                                                    monkeypatch):
    _mixed_tree(tree)
    run(db, tree)
    alone = (figures(db), dict(db.execute("SELECT session_id, value FROM session_metrics")))
    _use_workers(monkeypatch, cores=2, task_bytes=1)  # one file per task
    monkeypatch.setattr(merge, "WAIT_BATCH_BYTES", 1)
    real_map, real_merge = workers.Workers.map, merge.Import._merge
    merged = []

    def waits(self, tasks, *here):  # the workers keep the merge waiting before every answer
        for answer in real_map(self, tasks):
            yield None
            yield answer

    def counted(self, tool, transcripts, book, batch, *rest):
        merged.append(len(batch))
        real_merge(self, tool, transcripts, book, batch, *rest)

    monkeypatch.setattr(workers.Workers, "map", waits)
    monkeypatch.setattr(merge.Import, "_merge", counted)
    other = open_db(tmp_path / "other" / "ledger.db")
    result = run(other, tree)
    assert result.files_read == 4 and merged == [1, 1, 1, 1, 0]  # each file its own batch
    assert (figures(other), dict(other.execute("SELECT session_id, value FROM session_metrics"))
            ) == alone


def test_tasks_read_here_while_the_workers_have_not_answered_count_as_one_process(
        db, tree, tmp_path, monkeypatch):
    _mixed_tree(tree)
    run(db, tree)
    alone = (figures(db), dict(db.execute("SELECT session_id, value FROM session_metrics")))
    _use_workers(monkeypatch, cores=2, task_bytes=1)  # one file per task
    monkeypatch.setattr(workers, "AHEAD", 0)  # one task sent ahead: the others wait here
    monkeypatch.setattr(workers, "HELD", 2)  # two of them read here at most
    monkeypatch.setattr(workers.Future, "done", lambda self: False)  # never answered yet
    real_read = merge.Import._read_task
    here = []

    def read_here(self, transcripts, task):
        here.append(len(task))
        return real_read(self, transcripts, task)

    monkeypatch.setattr(merge.Import, "_read_task", read_here)
    other = open_db(tmp_path / "other" / "ledger.db")
    result = run(other, tree)
    assert result.files_read == 4 and sum(here) == 2  # the rest: the worker's
    assert (figures(other), dict(other.execute("SELECT session_id, value FROM session_metrics"))
            ) == alone


def test_workers_that_cannot_start_leave_the_reading_to_this_process(db, tree, monkeypatch):
    _mixed_tree(tree)
    _use_workers(monkeypatch, cores=2)
    # a new interpreter for each worker, and none can start
    monkeypatch.setattr(workers, "start_method", lambda: "spawn")
    monkeypatch.setattr(multiprocessing.spawn, "get_executable", lambda: "/nonexistent/python")
    _, failed = _spy_on_workers(monkeypatch)
    result = run(db, tree)
    assert failed == [1]
    assert result.files_read == 4 and result.responses == 43
    assert figures(db, CS1)[OPUS]["output"] == 90 + 5 + 2


def test_a_worker_that_dies_leaves_the_rest_to_this_process(db, tree, tmp_path, monkeypatch):
    _mixed_tree(tree)
    run(db, tree)
    alone = (figures(db), dict(db.execute("SELECT session_id, value FROM session_metrics")))
    _use_workers(monkeypatch, cores=2, task_bytes=1)
    # forked workers run this test's read_file, which dies (as if killed) at S2's file
    monkeypatch.setattr(workers, "start_method", lambda: "fork")
    importing, real_read = os.getpid(), workers.read_file

    def read_or_die(reader, path, *args):
        if S2 in path and os.getpid() != importing:
            os._exit(9)
        return real_read(reader, path, *args)

    monkeypatch.setattr(workers, "read_file", read_or_die)
    _, failed = _spy_on_workers(monkeypatch)
    other = open_db(tmp_path / "other" / "ledger.db")
    result = run(other, tree)
    assert failed == [1] and result.files_read == 4
    assert (figures(other), dict(other.execute("SELECT session_id, value FROM session_metrics"))
            ) == alone


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: Linux only")
def test_workers_are_forked_only_from_a_process_without_other_threads(monkeypatch):
    with monkeypatch.context() as alone:  # `aitrack import`: one thread
        alone.setattr(workers.threading, "active_count", lambda: 1)
        assert workers.start_method() == "fork"
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:  # the agent, a wrapped run: a forked child could inherit a lock held for good
        assert workers.start_method() == "spawn"
    finally:
        stop.set()
        other.join()


def test_a_busy_machine_gets_one_worker_and_a_single_core_none(db, tree, tmp_path,
                                                                monkeypatch):
    _mixed_tree(tree)
    _use_workers(monkeypatch, cores=4)
    monkeypatch.setattr(workers, "busy_cores", lambda cores: cores)  # all busy
    spawned, _ = _spy_on_workers(monkeypatch)
    assert run(db, tree).responses == 43 and spawned == [1]
    _use_workers(monkeypatch, cores=1)

    def no_workers(self, *args):
        raise AssertionError("a worker on a single core")

    monkeypatch.setattr(workers.Workers, "__init__", no_workers)
    assert run(open_db(tmp_path / "other" / "ledger.db"), tree).responses == 43
