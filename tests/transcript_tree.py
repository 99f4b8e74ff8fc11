"""Transcript trees for the import tests: builders of the lines Claude Code and Codex write
(shapes checked against claude 2.1.328 and codex 0.169.0), and the `tree` and `db` fixtures.

Test modules load it with `pytest_plugins = ("transcript_tree",)` and import the builders.
PYTEST_DONT_REWRITE: it holds no assertions.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from aitrack.config import profile
from aitrack.store import importer, ledger

OPUS = "claude-opus-5-5"
T0 = "2026-11-20T10:00:00.000Z"


# ---------------------------------------------------------------- builders


def usage(inp: int, out: int, read: int = 0, write: int = 0, five_m: int | None = None,
          one_h: int | None = None, thinking: int | None = None) -> dict:
    u: dict = {"input_tokens": inp, "cache_creation_input_tokens": write,
               "cache_read_input_tokens": read, "output_tokens": out,
               "service_tier": "standard", "speed": "standard"}
    if five_m is not None or one_h is not None:
        u["cache_creation"] = {"ephemeral_5m_input_tokens": five_m or 0,
                               "ephemeral_1h_input_tokens": one_h or 0}
    if thinking is not None:
        u["output_tokens_details"] = {"thinking_tokens": thinking}
    return u


def assistant(session: str, mid: str | None, rid: str | None, u: dict, *, model: str = OPUS,
              ts: str = T0, side: bool = False, request_session: str | None = None,
              cwd: str = "/work/shop", entrypoint: str = "cli", version: str = "2.1.328",
              text: str = "ok", uuid: str | None = None) -> dict:
    line = {"parentUuid": None, "isSidechain": side,
            "message": {"id": mid, "type": "message", "role": "assistant", "model": model,
                        "content": [{"type": "text", "text": text}], "usage": u},
            "type": "assistant", "uuid": uuid or f"u-{mid}-{rid}-{len(text)}",
            "timestamp": ts, "userType": "external", "entrypoint": entrypoint, "cwd": cwd,
            "sessionId": session, "version": version, "gitBranch": "main"}
    if mid is None:
        del line["message"]["id"]
    if rid is not None:
        line["requestId"] = rid
    if request_session is not None:
        line["requestSessionId"] = request_session
    return line


def user(session: str, text: str = "hello", ts: str = T0, cwd: str = "/work/shop") -> dict:
    return {"parentUuid": None, "isSidechain": False, "type": "user",
            "message": {"role": "user", "content": text}, "uuid": f"user-{text}",
            "timestamp": ts, "userType": "external", "entrypoint": "cli", "cwd": cwd,
            "sessionId": session, "version": "2.1.328"}


def cost_state(session: str, costs: dict[str, float],
               tokens: dict[str, dict[str, int]] | None = None) -> dict:
    """Claude Code's cost-state line: its cost per model, and (`tokens`: model -> the file's
    names, e.g. inputTokens) its token totals; without them, a cost-only line (the cost of
    all the model's requests, whatever they are)."""
    return {"type": "cost-state", "sessionId": session, "totalCostUSD": sum(costs.values()),
            "modelUsage": {m: {**(tokens or {}).get(m, {}), "costUSD": c}
                           for m, c in costs.items()}}


def write_jsonl(path: Path, lines: list, mode: str = "w") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode + "b") as fh:
        for line in lines:
            fh.write(line if isinstance(line, bytes) else
                     json.dumps(line, separators=(",", ":")).encode() + b"\n")
    return path


class Tree:
    """Tool homes in a temporary directory, and an env naming them (nothing of the real user's)."""

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.claude_dir = root / "claude-config"
        self.codex_home = root / "codex-home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = {"HOME": str(self.home), "CLAUDE_CONFIG_DIR": str(self.claude_dir),
                    "CODEX_HOME": str(self.codex_home)}

    def claude(self, session: str, lines: list, project: str = "-work-shop",
               mode: str = "w") -> Path:
        return write_jsonl(self.claude_dir / "projects" / project / f"{session}.jsonl",
                           lines, mode)

    def subagent(self, session: str, name: str, lines: list,
                 project: str = "-work-shop") -> Path:
        return write_jsonl(self.claude_dir / "projects" / project / session / "subagents" /
                           f"{name}.jsonl", lines)

    def codex(self, thread: str, lines: list, day: str = "2026/11/20",
              archived: bool = False, mode: str = "w") -> Path:
        name = f"rollout-2026-11-20T10-00-00-{thread}.jsonl"
        folder = self.codex_home / ("archived_sessions" if archived else f"sessions/{day}")
        return write_jsonl(folder / name, lines, mode)


def open_db(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    return ledger.connect(path)


def run(db: sqlite3.Connection, tree: Tree, **kw) -> importer.ImportResult:
    return importer.run(db, kw.pop("profile", profile.Profile()), env=tree.env, **kw)


def figures(db: sqlite3.Connection, session_id: str | None = None) -> dict:
    """model -> token type -> tokens of record, for one ledger session or all of them."""
    out: dict = {}
    query = "SELECT model, token_type, SUM(tokens) FROM usage"
    args: tuple = ()
    if session_id is not None:
        query, args = query + " WHERE session_id = ?", (session_id,)
    for model, kind, n in db.execute(query + " GROUP BY model, token_type", args):
        out.setdefault(model, {})[kind] = n
    return out


def row(db: sqlite3.Connection, session_id: str) -> dict:
    cur = db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,))
    values = cur.fetchone()
    assert values is not None, f"no session {session_id}"
    return dict(zip([c[0] for c in cur.description], values, strict=True))


def cost(db: sqlite3.Connection, session_id: str) -> dict[str, float]:
    return dict(db.execute("SELECT model, value FROM session_metrics WHERE session_id = ? AND "
                           "name = 'cost_usd'", (session_id,)))


def token_count(ts: str, total: tuple, last: tuple | None = None) -> dict:
    def block(v):
        return {"input_tokens": v[0], "cached_input_tokens": v[1],
                "cache_write_input_tokens": v[2], "output_tokens": v[3],
                "reasoning_output_tokens": v[4], "total_tokens": v[0] + v[3]}

    return {"timestamp": ts, "type": "event_msg", "payload": {
        "type": "token_count", "info": {"total_token_usage": block(total),
                                        "last_token_usage": block(last or total),
                                        "model_context_window": 258400},
        "rate_limits": {"primary": None}}}


def usage_record(ts: str, thread: str, response: str, u: tuple, thread_total: tuple) -> dict:
    def block(v):
        return {"input_tokens": v[0], "cached_input_tokens": v[1],
                "cache_write_input_tokens": v[2], "output_tokens": v[3],
                "reasoning_output_tokens": v[4], "total_tokens": v[0] + v[3]}

    return {"timestamp": ts, "type": "token_usage_record", "payload": {
        "thread_id": thread, "turn_id": "turn-1", "response_id": response, "usage": block(u),
        "turn_token_usage": block(u), "thread_token_usage": block(thread_total)}}


def meta(thread: str, ts: str = T0, cwd: str = "/work/shop", originator: str = "codex_cli_rs",
         source: object = "cli", forked_from: str | None = None) -> dict:
    return {"timestamp": ts, "type": "session_meta", "payload": {
        "id": thread, "timestamp": ts, "cwd": cwd, "originator": originator,
        "cli_version": "0.169.0", "source": source, "forked_from_id": forked_from,
        "model_provider": "openai", "base_instructions": {"text": "x" * 2000}}}


def turn(model: str, ts: str = T0) -> dict:
    return {"timestamp": ts, "type": "turn_context", "payload": {"model": model, "cwd": "/w"}}


def rate_limits_only(ts: str) -> dict:
    return {"timestamp": ts, "type": "event_msg",
            "payload": {"type": "token_count", "info": None, "rate_limits": {"primary": None}}}


def codex_figures(inp: int, cached: int, out: int, reasoning: int, write: int = 0) -> dict:
    """OpenAI figures in ledger types: input excludes cached input and cache writes."""
    out_ = {"input": inp - cached - write, "cache_read": cached, "output": out,
            "reasoning": reasoning, "cache_creation": write}
    return {k: v for k, v in out_.items() if v}


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "tools")


@pytest.fixture
def db(tmp_path: Path, home):
    db = open_db(home.ledger)
    yield db
    db.close()


S1 = "11111111-1111-4111-8111-111111111111"
S2 = "22222222-2222-4222-8222-222222222222"
S3 = "33333333-3333-4333-8333-333333333333"
CS1 = f"claude:{S1}"


# ---------------------------------------------------------------- Claude
