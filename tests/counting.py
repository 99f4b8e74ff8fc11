"""What the end-to-end counting tests share: the ledger as a user sees it, the stub's log of
billed requests to compare it with, and driving the tools' terminal UIs.

`AITRACK_COUNTING_TABLE=FILE` appends one JSON line per scenario (billed requests, the
ledger's requests-equivalent, sessions expected and seen): the table of issue 19's note.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import model_stub
from terminal import Terminal

ANSWER = "Hello from the stub."
BASE = ("input", "output", "cache_read", "cache_creation")


class View:
    """The ledger of one tool as reports show it: usage per model (base types and
    reasoning), reported cost per model, and its sessions."""

    def __init__(self, path: Path, tool: str):
        db = sqlite3.connect(path)
        try:
            self.usage: dict[str, dict[str, int]] = {}
            for model, name, n in db.execute(
                    "SELECT u.model, u.token_type, SUM(u.tokens) FROM usage u JOIN sessions s "
                    "ON s.id = u.session_id WHERE s.tool = ? AND u.token_type IN "
                    "('input', 'output', 'cache_read', 'cache_creation', 'reasoning') "
                    "GROUP BY 1, 2", (tool,)):
                self.usage.setdefault(model, {})[name] = n
            self.cost = {m: v for m, v in db.execute(
                "SELECT c.model, SUM(c.value) FROM session_metrics c JOIN sessions s "
                "ON s.id = c.session_id WHERE s.tool = ? AND c.name = 'cost_usd' GROUP BY 1",
                (tool,))}
            self.sessions = db.execute(
                "SELECT tool_session_id, run_id, exit_code, sources FROM sessions "
                "WHERE tool = ? ORDER BY started_at", (tool,)).fetchall()
            self.aliases = db.execute("SELECT requested, answered FROM model_aliases "
                                      "WHERE tool = ?", (tool,)).fetchall()
        finally:
            db.close()

    def total(self) -> int:
        return sum(v for types in self.usage.values() for k, v in types.items() if k in BASE)


def view(path: Path, tool: str) -> View | None:
    try:
        return View(path, tool)
    except sqlite3.Error:  # not created yet
        return None


def wait_for_usage(path: Path, tool: str, want: dict, timeout: float = 45.0) -> View | None:
    """The ledger once its usage of `tool` is `want` (the agent ledgers a moment after the
    tool exported), else as it is at the timeout (the caller's assertion shows it)."""
    deadline = time.monotonic() + timeout
    while True:
        v = view(path, tool)
        if v is not None and v.usage == want or time.monotonic() > deadline:
            return v
        time.sleep(0.3)


def expected(stub: model_stub.ModelStub, path: str, calls: list | None = None,
             by_requested: bool = False) -> dict[str, dict[str, int]]:
    """What the stub billed, per model (the answered one; `by_requested`: as requested, the
    name Codex records)."""
    out: dict[str, dict[str, int]] = {}
    for call in stub.billed(path) if calls is None else calls:
        row = out.setdefault(call.model if by_requested else call.answered, {})
        for k, v in call.tokens.items():
            row[k] = row.get(k, 0) + v
    return out


def requests_equivalent(total: int, calls: list) -> float:
    """How many of the billed requests the ledger's total stands for: their number when it
    equals their total to the token, else the total over the mean request."""
    billed = [sum(v for k, v in c.tokens.items() if k in BASE) for c in calls]
    if not billed:
        return 0.0
    if total == sum(billed):
        return float(len(billed))
    return round(total / (sum(billed) / len(billed)), 2)


def record(scenario: str, calls: list, ledger_total: int, sessions_expected: int,
           sessions_seen: int) -> None:
    """One row of the counting table (see the module docstring)."""
    out = os.environ.get("AITRACK_COUNTING_TABLE")
    if not out:
        return
    row = {"scenario": scenario, "billed": len(calls),
           "ledger": requests_equivalent(ledger_total, calls),
           "sessions_expected": sessions_expected, "sessions_seen": sessions_seen}
    with open(out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


def cost_states(config_dir: Path) -> dict[str, float]:
    """Claude Code's own cost per model: the last cost-state line of each session file."""
    out: dict[str, float] = {}
    for path in (config_dir / "projects").rglob("*.jsonl"):
        last = None
        for line in path.read_text().splitlines():
            if '"cost-state"' in line:
                last = json.loads(line)
        for model, u in (last or {}).get("modelUsage", {}).items():
            out[model] = out.get(model, 0.0) + u.get("costUSD", 0.0)
    return out


# ---------------------------------------------------------------- terminal UIs


def claude_tui_ready(config_dir: Path, project: Path) -> None:
    """Claude Code's first-run questions answered (onboarding, the folder's trust, the API
    key from the environment), as a user who has used it before."""
    config_dir.mkdir(parents=True, exist_ok=True)
    state = config_dir / ".claude.json"
    data = json.loads(state.read_text()) if state.exists() else {}
    data.update({"hasCompletedOnboarding": True, "theme": "dark",
                 "customApiKeyResponses": {"approved": ["sk-ant-test"], "rejected": []}})
    data.setdefault("projects", {})[str(project)] = {"hasTrustDialogAccepted": True}
    state.write_text(json.dumps(data))


def prompt(term: Terminal, stub: model_stub.ModelStub, text: str, calls: int,
           timeout: float = 60.0) -> None:
    """Type a prompt as a user would, and wait until the model has been called `calls` times
    in all and the answer shows. Codex takes keys typed fast for a paste, whose Enter is a
    new line: the Enter comes after a pause."""
    before = len(stub.calls)
    term.send(text, literal=True)
    time.sleep(2.0)
    term.send("Enter")
    deadline = time.monotonic() + timeout
    retry = time.monotonic() + 5.0
    while len(stub.calls) < calls and time.monotonic() < deadline:
        if len(stub.calls) == before and time.monotonic() > retry:
            term.send("Enter")  # taken while the UI was still settling: once more
            retry = deadline
        time.sleep(0.2)
    assert len(stub.calls) >= calls, (len(stub.calls), calls, term.screen()[-2000:])
    term.wait_for(ANSWER, timeout=timeout)
    time.sleep(1.0)  # the turn's end (its transcript lines, its export) after the answer


def quit_tui(term: Terminal, keys: list[tuple[str, bool]], timeout: float = 30.0) -> None:
    """Leave the UI with these keys ((key, literal)), and wait until it has exited."""
    for key, literal in keys:
        if not term.alive():
            break
        term.send(key, literal=literal)
        time.sleep(0.8)
    deadline = time.monotonic() + timeout
    while term.alive() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not term.alive(), term.screen()[-2000:]
