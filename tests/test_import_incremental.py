"""A second import reads only what was added; what was imported stays imported."""

from __future__ import annotations

import json
import os
import time

from aitrack.config import profile
from aitrack.store import importer
from aitrack.store.importing import lines
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
    write_jsonl,
)

pytest_plugins = ("transcript_tree",)  # fixtures: tree, db




def test_a_second_import_with_nothing_new_opens_no_file(db, tree):
    tree.claude(S1, [user(S1), assistant(S1, "msg_1", "req_1", usage(10, 10))])
    tree.claude(S2, [user(S2), assistant(S2, "msg_2", "req_2", usage(20, 20))])
    first = run(db, tree)
    assert (first.files_read, first.responses) == (2, 2)
    second = run(db, tree)
    assert (second.files_seen, second.files_read, second.bytes, second.responses) == (2, 0, 0, 0)
    assert second.summary().startswith("nothing new in 2 transcript files")


def test_an_appended_file_is_read_from_where_the_last_import_stopped(db, tree):
    path = tree.claude(S1, [user(S1), assistant(S1, "msg_1", "req_1", usage(10, 1)),
                            cost_state(S1, {OPUS: 0.1})])
    run(db, tree)
    before = path.stat().st_size
    appended = tree.claude(S1, [
        assistant(S1, "msg_1", "req_1", usage(10, 90), text="the final block"),  # larger
        assistant(S1, "msg_2", "req_2", usage(5, 5)),
        cost_state(S1, {OPUS: 0.3})], mode="a")
    again = run(db, tree)
    assert again.bytes == appended.stat().st_size - before
    assert (again.files_read, again.responses, again.sessions_updated) == (1, 1, 1)
    assert figures(db, CS1) == {OPUS: {"input": 15, "output": 95}}
    assert cost(db, CS1) == {OPUS: 0.3}


def test_a_file_rewritten_shorter_keeps_what_was_imported(db, tree):
    lines = [user(S1), *(assistant(S1, f"msg_{i}", f"req_{i}", usage(10, 10)) for i in range(6))]
    path = tree.claude(S1, lines)
    run(db, tree)
    # compaction: the file is rewritten without its old lines, then goes on
    tmp = path.with_suffix(".tmp")
    write_jsonl(tmp, [user(S1, "summary"), lines[5],
                      assistant(S1, "msg_new", "req_new", usage(1, 1))])
    os.replace(tmp, path)
    again = run(db, tree)
    assert (again.responses, again.duplicates) == (1, 1)
    assert figures(db, CS1) == {OPUS: {"input": 61, "output": 61}}


def test_a_file_rewritten_in_place_at_a_larger_size_is_read_again(db, tree):
    path = tree.claude(S1, [user(S1, "a" * 50), assistant(S1, "msg_1", "req_1", usage(10, 10))])
    run(db, tree)
    write_jsonl(path, [user(S1, "b" * 80), assistant(S1, "msg_1", "req_1", usage(10, 10)),
                       assistant(S1, "msg_2", "req_2", usage(7, 7)),
                       assistant(S1, "msg_3", "req_3", usage(3, 3))])
    again = run(db, tree)
    assert again.skipped == {}, "not read on from the old offset, mid-line"
    assert figures(db, CS1) == {OPUS: {"input": 20, "output": 20}}


def test_a_new_file_and_a_deleted_file(db, tree):
    gone = tree.claude(S1, [assistant(S1, "msg_1", "req_1", usage(10, 10))])
    run(db, tree)
    gone.unlink()  # Claude Code's cleanup after 30 days
    tree.claude(S2, [assistant(S2, "msg_2", "req_2", usage(5, 5))])
    again = run(db, tree)
    assert (again.files_seen, again.files_read, again.sessions_new) == (1, 1, 1)
    assert figures(db, CS1) == {OPUS: {"input": 10, "output": 10}}, "history stays"
    assert [p for (p,) in db.execute("SELECT path FROM transcript_files")] == [
        str(tree.claude_dir / "projects" / "-work-shop" / f"{S2}.jsonl")]


def test_a_half_written_last_line_is_read_when_it_is_whole(db, tree):
    whole = assistant(S1, "msg_2", "req_2", usage(20, 20))
    raw = (json.dumps(whole, separators=(",", ":"))).encode()
    path = tree.claude(S1, [assistant(S1, "msg_1", "req_1", usage(10, 10)), raw[:57]])
    first = run(db, tree)
    assert first.incomplete == 1 and first.skipped == {}
    assert figures(db, CS1) == {OPUS: {"input": 10, "output": 10}}
    with open(path, "ab") as fh:
        fh.write(raw[57:] + b"\n")
    second = run(db, tree)
    assert (second.incomplete, second.responses, second.skipped) == (0, 1, {})
    assert figures(db, CS1) == {OPUS: {"input": 30, "output": 30}}


def test_a_last_line_left_without_its_newline_is_read_once_the_file_is_idle(db, tree):
    raw = json.dumps(assistant(S1, "msg_1", "req_1", usage(10, 10))).encode()
    path = tree.claude(S1, [raw])  # the tool died before writing the newline
    old = time.time() - lines.IDLE_S - 60
    os.utime(path, (old, old))
    result = run(db, tree)
    assert (result.incomplete, result.responses) == (0, 1)
    with open(path, "ab") as fh:  # and if it comes back to it, nothing is lost or doubled
        fh.write(b"\n" + json.dumps(assistant(S1, "msg_2", "req_2",
                                                       usage(1, 1))).encode() + b"\n")
    again = run(db, tree)
    assert (again.skipped, again.responses) == ({}, 1)
    assert figures(db, CS1) == {OPUS: {"input": 11, "output": 11}}


def test_an_archived_rollout_moved_between_imports_counts_once(db, tree):
    c1 = "019a0000-0000-7000-8000-0000000000aa"
    live = tree.codex(c1, [meta(c1), turn("gpt-5"), token_count("2026-11-20T10:00:01.000Z",
                                                                (1000, 0, 0, 10, 0))])
    run(db, tree)
    archived = tree.codex_home / "archived_sessions" / live.name
    archived.parent.mkdir(parents=True)
    os.rename(live, archived)  # `codex archive`
    with open(archived, "ab") as fh:
        fh.write(json.dumps(token_count("2026-11-20T10:00:05.000Z", (1500, 0, 0, 15, 0),
                                                 last=(500, 0, 0, 5, 0))).encode() + b"\n")
    again = run(db, tree)
    assert again.duplicates == 1 and again.responses == 1
    assert figures(db, f"codex:{c1}") == {"gpt-5": {"input": 1500, "output": 15}}


def test_import_files_reads_a_runs_own_transcripts_incrementally(db, tree):
    mine = tree.claude(S1, [assistant(S1, "msg_1", "req_1", usage(10, 10))])
    tree.claude(S2, [assistant(S2, "msg_2", "req_2", usage(99, 99))])  # another session's
    result = importer.import_files(db, "claude", [mine], profile.Profile(), env=tree.env)
    assert (result.files_seen, result.files_read, result.sessions_new) == (1, 1, 1)
    assert figures(db) == {OPUS: {"input": 10, "output": 10}}
    again = importer.import_files(db, "claude", [mine], profile.Profile(), env=tree.env)
    assert (again.files_read, again.responses) == (0, 0)
    everything = run(db, tree)  # the periodic import then reads only the other file
    assert (everything.files_read, everything.responses) == (1, 1)
