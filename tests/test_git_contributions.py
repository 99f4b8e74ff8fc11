"""Commits made during a wrapped run, read from a real git repository, for tools that report
none of their own (Codex, `aitrack run`); Claude Code's own figures are never doubled."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from aitrack.capture import commits

USER = "dev@example.com"
ENV_CLEAN = ("GIT_DIR", "GIT_WORK_TREE", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL",
             "GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE")


def git(repo: Path, *args: str, env: dict | None = None) -> str:
    full = {k: v for k, v in os.environ.items() if k not in ENV_CLEAN}
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env={**full, **(env or {})}).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Dev")
    git(path, "config", "user.email", USER)
    (path / "README").write_text("hello\n")
    git(path, "add", "README")
    git(path, "commit", "-qm", "before the run", env={"GIT_AUTHOR_DATE": "2024-01-01T00:00:00"})
    return path


# A tool that works in the repository while aitrack wraps it: it reports usage through the
# OTLP environment aitrack gives it when it can, and commits with the user's git identity.
TOOL = textwrap.dedent("""\
    #!{python}
    import json, os, subprocess, sys, time, urllib.request

    def git(*args, env=None):
        subprocess.run([os.environ.get("REAL_GIT", "git"), *args], check=True,
                       capture_output=True,
                       env={{**os.environ, **(env or {{}})}})

    def write(name, text):
        with open(name, "w") as fh:
            fh.write(text)

    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        key, value = os.environ["OTEL_EXPORTER_OTLP_HEADERS"].split("=", 1)
        kv = lambda k, v: {{"key": k, "value": {{"stringValue": v}}}}
        point = {{"sum": 2_000_000, "count": "1", "timeUnixNano": str(time.time_ns()),
                 "attributes": [kv("gen_ai.token.type", "input"),
                                kv("gen_ai.response.model", "gpt-5")]}}
        body = {{"resourceMetrics": [{{"scopeMetrics": [{{"metrics": [{{
            "name": "gen_ai.client.token.usage",
            "histogram": {{"aggregationTemporality": 1, "dataPoints": [point]}}}}]}}]}}]}}
        urllib.request.urlopen(urllib.request.Request(
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] + "/v1/metrics",
            data=json.dumps(body).encode(),
            headers={{"Content-Type": "application/json", key: value}}))

    time.sleep(0.3)  # a tool thinks before it commits: aitrack notes HEAD meanwhile
    for step in os.environ.get("STEPS", "").split(","):
        if step == "add3":
            write("a.txt", "1\\n2\\n3\\n"); git("add", "a.txt"); git("commit", "-qm", "add")
        elif step == "edit1":
            write("a.txt", "1\\nTWO\\n3\\n"); git("commit", "-qam", "edit")
        elif step == "binary":
            with open("b.bin", "wb") as fh:
                fh.write(bytes(range(256)))
            git("add", "b.bin"); git("commit", "-qm", "binary")
        elif step == "other":
            write("o.txt", "x\\n"); git("add", "o.txt")
            git("commit", "-qm", "not mine", "--author", "Other <other@example.com>")
        elif step == "branch":
            git("checkout", "-qb", "side"); write("s.txt", "s\\ns\\n"); git("add", "s.txt")
            git("commit", "-qm", "side"); git("checkout", "-q", "main")
            git("merge", "-q", "--no-ff", "-m", "merge", "side")
        elif step == "rebase":
            git("rebase", "-q", "main", "feature"); git("checkout", "-q", "main")
        elif step == "abort":
            git("rebase", "--abort")
    sys.exit(int(os.environ.get("EXIT_WITH", "0")))
    """)


@pytest.fixture
def tool(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "tool"
    path.parent.mkdir()
    path.write_text(TOOL.format(python=sys.executable))
    path.chmod(0o755)
    return path


def run(home, repo: Path, command: list[str], steps: str, **env):
    full = {k: v for k, v in home.env.items() if k not in ENV_CLEAN}
    return subprocess.run([sys.executable, "-m", "aitrack", *command], cwd=repo,
                          env={**full, "STEPS": steps, **env}, capture_output=True, text=True,
                          timeout=60)


def git_figures(home) -> dict[str, dict[str, float]]:
    """session id -> {name: value} of the figures git gave (source 'git')."""
    db = sqlite3.connect(home.ledger)
    try:
        out: dict = {}
        for sid, name, value in db.execute("SELECT session_id, name, value FROM source_figures "
                                           "WHERE source = 'git'"):
            out.setdefault(sid, {})[name] = value
        return out
    finally:
        db.close()


def test_the_users_commits_during_an_aitrack_run_count_for_its_session(home, repo, tool):
    result = run(home, repo, ["run", "--", str(tool)], "add3,edit1,binary,other,branch")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # add3 (+3), edit1 (+1 -1), binary (no lines), side (+2); not the merge, not Other's
    [(sid, figures)] = git_figures(home).items()
    assert figures == {"commits": 4, "lines_added": 6, "lines_removed": 1}
    report = json.loads(home.run("report", "session", "--json").stdout)
    [session] = report["sessions"]
    assert session["id"] == sid
    assert (session["commits"], session["lines_added"], session["lines_removed"]) == (4, 6, 1)
    assert session["cost_usd"] > 0  # 2M input tokens of gpt-5, estimated
    assert session["cost_per_commit"] == pytest.approx(session["cost_usd"] / 4, abs=1e-6)


def test_a_commit_by_codex_counts_and_one_by_claude_is_left_to_claudes_own_figures(
        home, repo, tool):
    codex = run(home, repo, ["codex", "exec", "fix it"], "add3", AITRACK_CODEX_BIN=str(tool))
    assert codex.returncode == 0, codex.stderr
    claude = run(home, repo, ["claude", "-p", "fix it"], "edit1", AITRACK_CLAUDE_BIN=str(tool))
    assert claude.returncode == 0, claude.stderr
    db = sqlite3.connect(home.ledger)
    tools = dict(db.execute("SELECT id, tool FROM sessions"))
    assert sorted(tools.values()) == ["claude", "codex"]
    assert {tools[sid]: f for sid, f in git_figures(home).items()} == {
        "codex": {"commits": 1, "lines_added": 3}}


def test_outside_a_work_tree_the_run_has_no_git_figures(home, tmp_path, tool):
    plain = tmp_path / "plain"
    plain.mkdir()
    result = run(home, plain, ["run", "--", str(tool)], "", EXIT_WITH="3")
    assert (result.returncode, result.stderr) == (3, "")
    assert git_figures(home) == {}


def test_without_git_on_path_the_run_goes_on(home, repo, tool, tmp_path):
    empty = tmp_path / "no-git-here"
    empty.mkdir()
    # the tool commits with a git of its own: aitrack, finding HEAD moved, has none to ask
    result = run(home, repo, ["run", "--", str(tool)], "add3", PATH=str(empty),
                 REAL_GIT=shutil.which("git"))
    assert (result.returncode, result.stderr) == (0, "")
    assert git_figures(home) == {}


def test_a_git_that_hangs_costs_the_run_a_bounded_wait(home, repo, tool, tmp_path):
    slow = tmp_path / "slow-bin"
    slow.mkdir()
    (slow / "git").write_text("#!/bin/sh\nsleep 30\n")
    (slow / "git").chmod(0o755)
    started = time.monotonic()
    result = run(home, repo, ["run", "--", str(tool)], "add3", PATH=f"{slow}:{os.environ['PATH']}",
                 REAL_GIT=shutil.which("git"))
    elapsed = time.monotonic() - started
    assert (result.returncode, result.stderr) == (0, "")
    assert elapsed < 10, f"the run took {elapsed:.1f} s with a git that never answers"
    assert git_figures(home) == {}


def test_a_run_on_a_detached_head_counts_its_commits(home, repo, tool):
    git(repo, "checkout", "-q", "--detach")
    result = run(home, repo, ["run", "--", str(tool)], "add3")
    assert (result.returncode, result.stderr) == (0, "")
    assert list(git_figures(home).values()) == [{"commits": 1, "lines_added": 3}]


def test_commits_rewritten_by_a_rebase_during_the_run_are_not_counted(home, repo, tool):
    old = {"GIT_AUTHOR_DATE": "2024-02-01T00:00:00", "GIT_COMMITTER_DATE": "2024-02-01T00:00:00"}
    git(repo, "checkout", "-qb", "feature")
    for n in range(2):
        (repo / f"f{n}.txt").write_text("f\n" * 10)
        git(repo, "add", f"f{n}.txt")
        git(repo, "commit", "-qm", f"feature {n}", env=old)
    git(repo, "checkout", "-q", "main")
    (repo / "m.txt").write_text("m\n")
    git(repo, "add", "m.txt")
    git(repo, "commit", "-qm", "main moved", env=old)
    # the tool rebases feature onto main (two commits rewritten), then commits on main
    result = run(home, repo, ["run", "--", str(tool)], "rebase,add3")
    assert (result.returncode, result.stderr) == (0, "")
    assert list(git_figures(home).values()) == [{"commits": 1, "lines_added": 3}]


def test_a_run_started_inside_a_conflicted_rebase_goes_on(home, repo, tool):
    old = {"GIT_AUTHOR_DATE": "2024-02-01T00:00:00"}
    (repo / "README").write_text("main\n")
    git(repo, "commit", "-qam", "main edit", env=old)
    git(repo, "checkout", "-qb", "feature", "HEAD~1")
    (repo / "README").write_text("feature\n")
    git(repo, "commit", "-qam", "feature edit", env=old)
    conflicted = subprocess.run(["git", "rebase", "main"], cwd=repo, capture_output=True)
    assert conflicted.returncode != 0 and (repo / ".git" / "rebase-merge").is_dir()
    result = run(home, repo, ["run", "--", str(tool)], "abort")
    assert (result.returncode, result.stderr) == (0, "")
    assert git_figures(home) == {}


# ---------------------------------------------------------------- the module itself


def test_a_repository_without_commits_counts_its_first(tmp_path):
    path = tmp_path / "fresh"
    path.mkdir()
    git(path, "init", "-q")
    git(path, "config", "user.email", USER)
    git(path, "config", "user.name", "Dev")
    begin = commits.start(str(path / "."), time.time())
    assert begin is not None and begin.head is None
    (path / "x").write_text("1\n2\n")
    git(path, "add", "x")
    git(path, "commit", "-qm", "first")
    assert commits.made_since(begin) == commits.Made(1, 2, 0)


def test_head_is_read_from_the_files_as_git_reads_it(repo, tmp_path):
    sub = repo / "deep" / "er"
    sub.mkdir(parents=True)
    assert commits.read_head(str(sub)) == (git(repo, "rev-parse", "HEAD"),)
    git(repo, "pack-refs", "--all")  # the branch now only in packed-refs
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert commits.read_head(str(repo)) == (git(repo, "rev-parse", "HEAD"),)
    other = tmp_path / "other-tree"
    git(repo, "worktree", "add", "-q", "-b", "wt", str(other))
    (other / "w.txt").write_text("w\n")
    git(other, "add", "w.txt")
    git(other, "commit", "-qm", "in the worktree")
    assert commits.read_head(str(other)) == (git(other, "rev-parse", "HEAD"),)
    git(repo, "checkout", "-q", "--detach")
    assert commits.read_head(str(repo)) == (git(repo, "rev-parse", "HEAD"),)
    assert commits.read_head(str(tmp_path)) is None  # no work tree around it


def test_when_head_did_not_move_git_is_not_run(repo, tmp_path, monkeypatch):
    begin = commits.start(str(repo), time.time())
    assert begin is not None and len(begin.head) == 40
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))  # no git from here on
    assert commits.made_since(begin) == commits.Made(0, 0, 0)
    assert commits.Made(0, 0, 0).figures() == {}
    monkeypatch.undo()
    (repo / "n.txt").write_text("n\n")
    git(repo, "add", "n.txt")
    git(repo, "commit", "-qm", "now")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert commits.made_since(begin) is None  # it moved, and only git can say how
    monkeypatch.undo()
    assert commits.made_since(begin) == commits.Made(1, 1, 0)
