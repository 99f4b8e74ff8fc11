"""A heavy user's year of Copilot CLI and opencode files, for bench/import.py.

Shaped like what Copilot CLI 1.0.102 and opencode 1.18.33 write (tests/samples):
- Copilot CLI: `~/.copilot/session-state/<id>/events.jsonl` (a `session.start` with its long
  system message, user and assistant messages, tool executions, one `session.usage_record`
  per request, `session.shutdown`) and the OTel file exporter's `~/.copilot/otel/*.jsonl`
  (per request a `chat` span, per turn an `invoke_agent` span, metric lines), the same
  requests under the same response ids, as a user who turned the exporter on has them. No
  cache writes: ccusage counts Copilot's cache writes twice (its input already holds them),
  so the totals would differ by design (README).
- opencode: `opencode.db` (tables session, message, part) with one assistant message per
  request, `tokens` without the cached input and without reasoning in `output`.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import measure

YEAR = 365 * 86400
COPILOT_MODELS = ("claude-sonnet-4.6", "gpt-5-mini", "gpt-4.1", "claude-haiku-4.5")
OPENCODE_MODELS = (("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-5"),
                   ("anthropic", "claude-haiku-4-5"))
WORDS = ("the", "test", "file", "function", "error", "import", "module", "value", "return",
         "check", "ledger", "session", "token", "request", "build", "line", "count", "fix")


def _text(rnd: random.Random, n: int) -> str:
    return " ".join(rnd.choice(WORDS) for _ in range(n))


def _ts(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def _uuid(rnd: random.Random) -> str:
    return str(uuid.UUID(int=rnd.getrandbits(128), version=4))


def _line(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"))


def build_copilot(home: Path, sessions: int, seed: int = 21, end: float | None = None,
                  span: float = YEAR) -> dict[str, int]:
    """Copilot CLI's files of `sessions` sessions under `home` (~/.copilot); what was written."""
    rnd = random.Random(seed)
    end = end or time.time() - 3600
    system = _text(rnd, 4000)  # the system message every session starts with (~25 kB)
    counts = {"sessions": 0, "requests": 0, "bytes": 0}
    otel: dict[str, list[str]] = {}
    for _ in range(sessions):
        sid, t = _uuid(rnd), end - rnd.random() * span
        model = rnd.choice(COPILOT_MODELS)
        cwd = f"/home/dev/src/project-{rnd.randrange(30)}"
        lines = [_line({"type": "session.start", "data": {
            "sessionId": sid, "version": 1, "producer": "copilot-agent",
            "copilotVersion": "1.0.102", "startTime": _ts(t), "selectedModel": model,
            "context": {"cwd": cwd}}, "id": _uuid(rnd), "timestamp": _ts(t), "parentId": None}),
            _line({"type": "system.message", "data": {"role": "system", "content": system},
                   "id": _uuid(rnd), "timestamp": _ts(t), "parentId": None})]
        for turn in range(max(1, int(rnd.lognormvariate(1.6, 0.8)))):
            t += rnd.uniform(5, 600)
            lines.append(_line({"type": "user.message", "data": {
                "content": _text(rnd, rnd.randrange(5, 80)), "turnId": str(turn)},
                "id": _uuid(rnd), "timestamp": _ts(t), "parentId": None}))
            trace = f"{rnd.getrandbits(128):032x}"
            turn_in = turn_out = 0
            for _r in range(max(1, int(rnd.lognormvariate(1.2, 0.7)))):
                t += rnd.uniform(1, 40)
                rid = f"chatcmpl-{rnd.getrandbits(64):016x}"
                inp = rnd.randrange(8_000, 90_000)
                read = int(inp * rnd.uniform(0.3, 0.95))
                out = rnd.randrange(20, 3000)
                reasoning = out // 4 if rnd.random() < 0.5 else 0
                cost = 1.0 if turn_in == 0 and model != "gpt-4.1" else 0.0
                turn_in, turn_out = turn_in + inp, turn_out + out
                lines.append(_line({"type": "session.usage_record", "data": {"usage": {
                    "model": model, "inputTokens": inp, "outputTokens": out,
                    "cacheReadTokens": read, "cacheWriteTokens": 0, "reasoningTokens": reasoning,
                    "cost": cost, "duration": rnd.randrange(300, 9000), "initiator": "user",
                    "apiCallId": rid, "accounting": {"sourceSessionId": sid,
                                                     "sequence": counts["requests"],
                                                     "usageId": rid}}},
                    "id": _uuid(rnd), "timestamp": _ts(t), "parentId": None}))
                lines.append(_line({"type": "assistant.message", "data": {
                    "messageId": _uuid(rnd), "model": model, "content": _text(rnd, 60),
                    "apiCallId": rid}, "id": _uuid(rnd), "timestamp": _ts(t), "parentId": None}))
                lines.append(_line({"type": "tool.execution_complete", "data": {
                    "toolCallId": f"call_{rnd.getrandbits(48):x}", "success": True,
                    "result": {"content": _text(rnd, rnd.randrange(20, 600))}},
                    "id": _uuid(rnd), "timestamp": _ts(t), "parentId": None}))
                month = time.strftime("%Y-%m", time.gmtime(t))
                attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "github",
                         "gen_ai.request.model": model, "gen_ai.conversation.id": sid,
                         "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out,
                         "gen_ai.usage.cache_read.input_tokens": read,
                         "gen_ai.usage.reasoning.output_tokens": reasoning,
                         "gen_ai.response.model": model, "gen_ai.response.id": rid,
                         "github.copilot.cost": cost, "github.copilot.initiator": "user"}
                otel.setdefault(month, []).append(_line({
                    "type": "span", "traceId": trace, "spanId": f"{rnd.getrandbits(64):016x}",
                    "name": f"chat {model}", "kind": 2, "startTime": [int(t), 0],
                    "endTime": [int(t) + 1, 0], "attributes": attrs, "status": {"code": 0},
                    "resource": {"attributes": {"service.name": "github-copilot"}}}))
                counts["requests"] += 1
            otel[month].append(_line({
                "type": "span", "traceId": trace, "spanId": f"{rnd.getrandbits(64):016x}",
                "name": "invoke_agent", "startTime": [int(t), 0], "endTime": [int(t) + 2, 0],
                "attributes": {"gen_ai.operation.name": "invoke_agent",
                               "gen_ai.conversation.id": sid,
                               "gen_ai.usage.input_tokens": turn_in,
                               "gen_ai.usage.output_tokens": turn_out}}))
            otel[month].append(_line({"type": "metric", "name": "gen_ai.client.inference.duration",
                                      "dataPoints": [{"attributes": {"gen_ai.request.model": model},
                                                      "value": {"count": 1, "sum": 1.5}}]}))
        lines.append(_line({"type": "session.shutdown", "data": {"totalPremiumRequests": 0},
                            "id": _uuid(rnd), "timestamp": _ts(t), "parentId": None}))
        folder = home / "session-state" / sid
        folder.mkdir(parents=True)
        data = ("\n".join(lines) + "\n").encode()
        (folder / "events.jsonl").write_bytes(data)
        counts["bytes"] += len(data)
        counts["sessions"] += 1
    (home / "otel").mkdir(parents=True, exist_ok=True)
    for month, rows in otel.items():
        data = ("\n".join(rows) + "\n").encode()
        (home / "otel" / f"copilot-{month}.jsonl").write_bytes(data)
        counts["bytes"] += len(data)
    return counts


SCHEMA = """
CREATE TABLE session (id TEXT PRIMARY KEY, project_id TEXT NOT NULL, parent_id TEXT,
    slug TEXT NOT NULL, directory TEXT NOT NULL, title TEXT NOT NULL, version TEXT NOT NULL,
    time_created INTEGER NOT NULL, time_updated INTEGER NOT NULL);
CREATE TABLE message (id TEXT PRIMARY KEY, session_id TEXT NOT NULL, time_created INTEGER
    NOT NULL, time_updated INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX message_session_idx ON message (session_id);
CREATE TABLE part (id TEXT PRIMARY KEY, message_id TEXT NOT NULL, session_id TEXT NOT NULL,
    time_created INTEGER NOT NULL, time_updated INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX part_message_idx ON part (message_id);
"""


def build_opencode(data_dir: Path, sessions: int, seed: int = 23, end: float | None = None,
                   span: float = YEAR) -> dict[str, int]:
    """opencode.db of `sessions` sessions in `data_dir` (~/.local/share/opencode)."""
    rnd = random.Random(seed)
    end = end or time.time() - 3600
    data_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(data_dir / "opencode.db", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(SCHEMA)
    db.execute("BEGIN")
    counts = {"sessions": 0, "requests": 0}
    n = 0
    for _ in range(sessions):
        sid = f"ses_{rnd.getrandbits(100):025x}"
        t = int((end - rnd.random() * span) * 1000)
        provider, model = rnd.choice(OPENCODE_MODELS)
        started = t
        for _turn in range(max(1, int(rnd.lognormvariate(1.5, 0.8)))):
            t += rnd.randrange(5_000, 600_000)
            n += 1
            user = f"msg_{n:012x}u"
            db.execute("INSERT INTO message VALUES (?, ?, ?, ?, ?)", (user, sid, t, t, json.dumps(
                {"role": "user", "time": {"created": t}, "agent": "build",
                 "model": {"providerID": provider, "modelID": model}})))
            db.execute("INSERT INTO part VALUES (?, ?, ?, ?, ?, ?)", (
                f"prt_{n:012x}u", user, sid, t, t,
                json.dumps({"type": "text", "text": _text(rnd, rnd.randrange(5, 80))})))
            for _r in range(max(1, int(rnd.lognormvariate(1.2, 0.7)))):
                t += rnd.randrange(1_000, 40_000)
                n += 1
                inp, read = rnd.randrange(100, 9_000), rnd.randrange(5_000, 80_000)
                out, reasoning = rnd.randrange(20, 2500), rnd.randrange(0, 400)
                write = rnd.randrange(0, 3000) if provider == "anthropic" else 0
                tokens = {"total": inp + read + write + out + reasoning, "input": inp,
                          "output": out, "reasoning": reasoning,
                          "cache": {"read": read, "write": write}}
                mid = f"msg_{n:012x}a"
                db.execute("INSERT INTO message VALUES (?, ?, ?, ?, ?)", (mid, sid, t, t + 900,
                           json.dumps({"parentID": user, "role": "assistant", "mode": "build",
                                       "cost": round((inp * 3 + out * 15) / 1e6, 6),
                                       "tokens": tokens, "modelID": model,
                                       "providerID": provider,
                                       "time": {"created": t, "completed": t + 900},
                                       "finish": "tool-calls"})))
                db.execute("INSERT INTO part VALUES (?, ?, ?, ?, ?, ?)", (
                    f"prt_{n:012x}a", mid, sid, t, t, json.dumps(
                        {"type": "tool", "tool": "bash", "state": {
                            "status": "completed", "output": _text(rnd, rnd.randrange(20, 500))}})))
                counts["requests"] += 1
        db.execute("INSERT INTO session VALUES (?, 'global', NULL, 'quick-star', ?, ?, "
                   "'1.18.33', ?, ?)", (sid, f"/home/dev/src/project-{rnd.randrange(30)}",
                                        _text(rnd, 4), started, t + 1000))
        counts["sessions"] += 1
    db.execute("COMMIT")
    db.close()
    counts["bytes"] = sum(p.stat().st_size for p in data_dir.glob("opencode.db*"))
    return counts


# ---------------------------------------------------------------- measuring


def _ccusage_totals(out: str) -> dict[str, int]:
    t = json.loads(out)["totals"]
    return {"input": t["inputTokens"], "cache_read": t["cacheReadTokens"],
            "cache_creation": t["cacheCreationTokens"], "total": t["totalTokens"]}


def _ledger_totals(home: Path, tool: str) -> dict[str, int]:
    db = sqlite3.connect(home / "data" / "ledger.db")
    got = dict(db.execute("SELECT u.token_type, SUM(u.tokens) FROM usage u JOIN sessions s "
                          "ON s.id = u.session_id WHERE s.tool = ? GROUP BY 1", (tool,)))
    db.close()
    out = {k: got.get(k, 0) for k in ("input", "cache_read", "cache_creation")}
    out["total"] = sum(got.get(k, 0) for k in ("input", "output", "cache_read", "cache_creation"))
    return out


def compare(tool: str, work: Path, sessions: int, cc: Path | None, repeat: int,
            base_env: dict[str, str]) -> None:
    """`aitrack import --tool TOOL` against `ccusage TOOL daily --json --offline` on one tree:
    first imports (medians of `repeat`, alternately), token totals, a second import."""
    tree = work / "tools" / tool
    user_home = tree / "home"
    marker = tree / f".built-{sessions}"
    if not marker.exists():
        shutil.rmtree(tree, ignore_errors=True)
        started = time.perf_counter()
        built = (build_copilot(user_home / ".copilot", sessions) if tool == "copilot" else
                 build_opencode(user_home / ".local" / "share" / "opencode", sessions))
        marker.write_text(json.dumps(built))
        print(f"built {tool} in {time.perf_counter() - started:.0f} s", flush=True)
    built = json.loads(marker.read_text())
    print(f"{tool}: {built['sessions']:,} sessions, {built['requests']:,} requests, "
          f"{built['bytes'] / 1e6:,.0f} MB", flush=True)
    home = work / f"aitrack-home-{tool}"
    env = {**base_env, "HOME": str(user_home), "AITRACK_HOME": str(home)}
    env.pop("COPILOT_HOME", None)
    env.pop("XDG_DATA_HOME", None)
    for path in tree.rglob("*"):
        if path.is_file():
            path.read_bytes()  # the page cache holds the files for every reader alike
    ours_cmd = [sys.executable, "-m", "aitrack", "import", "--tool", tool, "--json"]
    subprocess.run(ours_cmd[:3] + ["--version"], env=env, capture_output=True)
    ours, theirs = [], []
    for _ in range(repeat):
        if cc is not None:
            theirs.append(measure.run([str(cc), tool, "daily", "--json", "--offline"], env=env))
        shutil.rmtree(home, ignore_errors=True)
        ours.append(measure.run(ours_cmd, env=env))

    def median(runs):
        return sorted(runs, key=lambda m: m.elapsed_s)[len(runs) // 2]

    first = median(ours)
    print(f"  aitrack import --tool {tool} (first): {first.elapsed_s:.2f} s, "
          f"{first.peak_rss_mb:.0f} MB  (runs: "
          f"{', '.join(f'{m.elapsed_s:.2f}' for m in ours)} s)", flush=True)
    if first.returncode:
        print(f"  exit {first.returncode}: {first.stderr[-300:]}")
    if cc is not None:
        cc_first = median(theirs)
        print(f"  ccusage {tool} daily --json --offline: {cc_first.elapsed_s:.2f} s, "
              f"{cc_first.peak_rss_mb:.0f} MB  (runs: "
              f"{', '.join(f'{m.elapsed_s:.2f}' for m in theirs)} s)")
        print(f"  ratio aitrack / ccusage: {first.elapsed_s / cc_first.elapsed_s:.2f}x")
        mine, theirs_totals = _ledger_totals(home, tool), _ccusage_totals(cc_first.stdout)
        print(f"  token totals equal to ccusage's: {'yes' if mine == theirs_totals else 'NO'} "
              f"(aitrack {mine}, ccusage {theirs_totals})")
    again = median([measure.run(ours_cmd, env=env) for _ in range(5)])
    print(f"  aitrack import --tool {tool}, nothing new (median of 5): {again.elapsed_s:.2f} s")
