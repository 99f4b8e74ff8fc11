"""How fast `aitrack import` reads a heavy user's year of transcripts, next to ccusage.

Builds, in a temporary directory, a year of Claude Code transcripts shaped like the files
claude 2.1.328 writes (about 400 MB, 4,000+ sessions, 250,000+ API responses, most lines
carrying no usage: prompts, tool results, attachments, request blobs; responses written as
several lines, subagent logs, forked sessions, `<synthetic>` lines, cost-state lines) and a
year of Codex rollouts (token_count and token_usage_record per response, re-emitted counts,
archived copies). Then measures, each whole process from a minimal launcher (measure.py):

- the first `aitrack import` against `ccusage claude daily --json --offline` (ccusage
  20.0.24 from npm, installed into a cache directory of this benchmark) on the same files:
  target at most 1.0x ccusage's wall time, peak RSS under 150 MB; on the year's tree and on
  a small one (120 days x 12 sessions x 60 responses: fixed costs weigh more there);
- a second import with nothing new: target under 0.2 s;
- `aitrack report` right after a day of new transcripts: target under 0.5 s;
- Gemini CLI and Qwen Code (bench/import_gemini_qwen.py): a year of each tool's files, the
  first import against ccusage's, token totals against the truth of what was billed.

With `--tool copilot` or `--tool opencode` (tool_trees.py) only: a year of that tool's files,
the first `aitrack import --tool TOOL` against `ccusage TOOL daily --json --offline` on them
(token totals equal, time), and a second import with nothing new.

Usage: python bench/import.py [--sessions N] [--size year|small] [--small DAYS PER_DAY RESPONSES]
                              [--codex-sessions N] [--keep DIR] [--repeat N]
                              [--no-ccusage] [--gemini-qwen-sessions N]
                              [--tool copilot|opencode [--tool-sessions N]]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import import_gemini_qwen
import measure
import tool_trees

CCUSAGE_VERSION = "20.0.24"
CCUSAGE_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / (
    f"aitrack-bench/ccusage-{CCUSAGE_VERSION}")
DAY = 86400
YEAR = 365 * DAY
TARGET_RSS_MB = 150
TARGET_SECOND_S = 0.2
TARGET_REPORT_S = 0.5

CLAUDE_MODELS = ("claude-opus-5-5", "claude-sonnet-5-5", "claude-opus-5")
SMALL_MODEL = "claude-haiku-4-5"
VERSIONS = ("2.0.31", "2.1.90", "2.1.152", "2.1.240", "2.1.328")  # before 2.1.97: placeholders
ENTRYPOINTS = ("cli",) * 7 + ("claude-vscode",) * 2 + ("sdk-cli",)
WORDS = ("the", "test", "file", "function", "error", "import", "module", "value", "return",
         "check", "ledger", "session", "token", "request", "build", "line", "count", "fix",
         "path", "config", "größe", "naïve", "→", "data", "report", "parse", "stream")


class Text:
    """A pool of JSON-escaped random texts, so building 400 MB stays quick."""

    def __init__(self, rnd: random.Random):
        self.rnd = rnd
        self.pool = [json.dumps(" ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(5, 400))),
                                ensure_ascii=False)[1:-1] for _ in range(400)]

    def __call__(self, min_len: int, max_len: int) -> str:
        want = self.rnd.randrange(min_len, max_len)
        out = []
        size = 0
        while size < want:
            piece = self.rnd.choice(self.pool)
            out.append(piece)
            size += len(piece) + 1
        return " ".join(out)[:want].rstrip("\\")


def _id(rnd: random.Random, prefix: str, n: int = 24) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789"
    return prefix + "".join(rnd.choice(alphabet) for _ in range(n))


def _uuid(rnd: random.Random) -> str:
    return str(uuid.UUID(int=rnd.getrandbits(128), version=4))


def _ts(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def _slug(cwd: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in cwd)


# ---------------------------------------------------------------- Claude Code


class ClaudeSession:
    def __init__(self, rnd: random.Random, text: Text, sid: str, cwd: str, started: float):
        self.rnd = rnd
        self.text = text
        self.sid = sid
        self.cwd = cwd
        self.t = started
        self.version = rnd.choice(VERSIONS)
        self.entrypoint = rnd.choice(ENTRYPOINTS)
        self.model = rnd.choice(CLAUDE_MODELS)
        self.lines: list[str] = []
        self.parent = None
        self.costs: dict[str, list[float]] = {}
        self.responses: list[list[str]] = []  # each response's lines, for replays and forks

    def _common(self, side: bool) -> str:
        return (f'"userType":"external","entrypoint":"{self.entrypoint}","cwd":"{self.cwd}",'
                f'"sessionId":"{self.sid}","version":"{self.version}","gitBranch":"main"')

    def _tick(self, lo: float = 0.5, hi: float = 20.0) -> str:
        self.t += self.rnd.uniform(lo, hi)
        return _ts(self.t)

    def user(self, side: bool = False) -> None:
        uid = _uuid(self.rnd)
        self.lines.append(
            f'{{"parentUuid":{json.dumps(self.parent)},"isSidechain":{str(side).lower()},'
            f'"promptId":"{_uuid(self.rnd)}","type":"user","message":{{"role":"user",'
            f'"content":"{self.text(20, 250)}"}},"uuid":"{uid}","timestamp":"{self._tick()}",'
            f'"permissionMode":"default",{self._common(side)}}}')
        self.parent = uid

    def tool_result(self, side: bool = False) -> None:
        uid = _uuid(self.rnd)
        self.lines.append(
            f'{{"parentUuid":"{self.parent}","isSidechain":{str(side).lower()},"type":"user",'
            f'"message":{{"role":"user","content":[{{"tool_use_id":"{_id(self.rnd, "toolu_")}",'
            f'"type":"tool_result","content":"{self.text(20, 200)}"}}]}},"uuid":"{uid}",'
            f'"timestamp":"{self._tick(0.1, 5)}",{self._common(side)}}}')
        self.parent = uid

    def attachment(self, size: int) -> None:
        uid = _uuid(self.rnd)
        self.lines.append(
            f'{{"parentUuid":"{self.parent}","isSidechain":false,"attachment":{{"type":'
            f'"prompt_snapshot","text":"{self.text(size // 2, size)}"}},"type":"attachment",'
            f'"uuid":"{uid}","timestamp":"{self._tick(0, 0.1)}",{self._common(False)}}}')
        self.parent = uid

    def response(self, side: bool = False, model: str | None = None) -> None:
        rnd = self.rnd
        model = model or (SMALL_MODEL if rnd.random() < 0.08 else self.model)
        mid, rid = _id(rnd, "msg_01"), _id(rnd, "req_011C", 20)
        inp = rnd.randrange(1, 40) if rnd.random() < 0.8 else rnd.randrange(100, 8000)
        read = rnd.randrange(5_000, 180_000)
        write = rnd.randrange(0, 12_000) if rnd.random() < 0.7 else 0
        one_h = write if rnd.random() < 0.15 else 0
        out = rnd.randrange(20, 2500)
        thinking = out // 3 if rnd.random() < 0.4 else 0
        blocks = ["thinking", "tool_use"] if rnd.random() < 0.15 else [rnd.choice(
            ("text", "tool_use"))]
        placeholder = self.version < "2.1.97"
        lines = []
        for i, block in enumerate(blocks):
            last = i == len(blocks) - 1
            out_here = out if last or not placeholder else rnd.randrange(1, 10)
            if block == "tool_use":
                content = (f'{{"type":"tool_use","id":"{_id(rnd, "toolu_")}","name":"Bash",'
                           f'"input":{{"command":"{self.text(20, 200)}"}}}}')
            else:
                content = f'{{"type":"{block}","{block}":"{self.text(20, 200)}"}}'
            uid = _uuid(rnd)
            lines.append(
                f'{{"parentUuid":"{self.parent}","isSidechain":{str(side).lower()},'
                f'"message":{{"id":"{mid}","type":"message","role":"assistant","model":"{model}",'
                f'"content":[{content}],"stop_reason":"{"tool_use" if last else "null"}",'
                f'"stop_sequence":null,"usage":{{"input_tokens":{inp},'
                f'"cache_creation_input_tokens":{write},"cache_read_input_tokens":{read},'
                f'"output_tokens":{out_here},"output_tokens_details":{{"thinking_tokens":'
                f'{thinking if last else 0}}},"server_tool_use":{{"web_search_requests":0,'
                f'"web_fetch_requests":0}},"service_tier":"standard","cache_creation":'
                f'{{"ephemeral_1h_input_tokens":{one_h},"ephemeral_5m_input_tokens":'
                f'{write - one_h}}},"inference_geo":"","iterations":[],"speed":"standard"}}}},'
                f'"requestId":"{rid}","type":"assistant","uuid":"{uid}",'
                f'"timestamp":"{self._tick(1, 30)}",{self._common(side)}}}')
            self.parent = uid
        self.lines += lines
        self.responses.append(lines)
        cost = (inp * 5 + write * 6.25 + read * 0.5 + out * 25) / 1e6
        self.costs.setdefault(model, [0, 0, 0, 0, 0.0])
        for i, v in enumerate((inp, out, read, write, cost)):
            self.costs[model][i] += v

    def synthetic(self) -> None:
        self.lines.append(
            f'{{"parentUuid":"{self.parent}","isSidechain":false,"message":{{"id":"{_uuid(self.rnd)}",'
            f'"type":"message","role":"assistant","model":"<synthetic>","content":[{{"type":"text",'
            f'"text":"API Error: 529 overloaded"}}],"usage":{{"input_tokens":0,"output_tokens":0,'
            f'"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}},'
            f'"isApiErrorMessage":true,"type":"assistant","uuid":"{_uuid(self.rnd)}",'
            f'"timestamp":"{self._tick()}",{self._common(False)}}}')

    def cost_state(self) -> None:
        usage = {m: {"inputTokens": c[0], "outputTokens": c[1], "cacheReadInputTokens": c[2],
                     "cacheCreationInputTokens": c[3], "costUSD": round(c[4], 6)}
                 for m, c in self.costs.items()}
        total = round(sum(c[4] for c in self.costs.values()), 6)
        self.lines.append(json.dumps({"type": "cost-state", "sessionId": self.sid,
                                      "totalCostUSD": total, "modelUsage": usage},
                                     separators=(",", ":")))

    def other(self) -> None:
        kind = self.rnd.random()
        if kind < 0.5:
            self.lines.append(f'{{"type":"queue-operation","operation":"enqueue","timestamp":'
                              f'"{self._tick(0, 1)}","sessionId":"{self.sid}","content":'
                              f'"{self.text(10, 200)}"}}')
        elif kind < 0.8:
            self.lines.append(f'{{"type":"last-prompt","lastPrompt":"{self.text(10, 200)}",'
                              f'"leafUuid":"{self.parent}","sessionId":"{self.sid}"}}')
        elif kind < 0.9:
            self.lines.append(f'{{"type":"api-request-blob","sessionId":"{self.sid}","hash":'
                              f'"{_id(self.rnd, "", 64)}","message":{{"role":"system","content":'
                              f'[{{"type":"text","text":"{self.text(400, 1500)}"}}]}}}}')
        else:
            self.lines.append(f'{{"type":"mode","mode":"normal","sessionId":"{self.sid}"}}')


def build_claude(projects: Path, sessions: int, seed: int = 7, end: float | None = None,
                 span: float = YEAR, responses: int | None = None) -> dict[str, int]:
    """A year of Claude Code transcripts under `projects` (or `span` seconds of them); what was
    written. `responses`: each session's own (subagents and forks add theirs), instead of
    turns of a random length."""
    rnd = random.Random(seed)
    text = Text(rnd)
    end = end or time.time() - 3600
    counts = {"sessions": 0, "responses": 0, "lines": 0, "usage_lines": 0, "bytes": 0}
    cwds = [f"/home/dev/src/project-{i}" for i in range(30)]
    made: list[ClaudeSession] = []
    for _ in range(sessions):
        cwd = rnd.choice(cwds)
        s = ClaudeSession(rnd, text, _uuid(rnd), cwd, end - rnd.random() * span)
        turns = max(1, int(rnd.lognormvariate(2.5, 0.8))) if responses is None else responses
        for _turn in range(turns):
            if responses is not None and len(s.responses) >= responses:
                break
            s.other()
            s.user()
            if rnd.random() < 0.15:
                s.attachment(rnd.randrange(600, 2000))
            in_turn = max(1, int(rnd.lognormvariate(1.3, 0.7)))
            if responses is not None:
                in_turn = min(in_turn, responses - len(s.responses))
            for _r in range(in_turn):
                s.response()
                if rnd.random() < 0.7:
                    s.tool_result()
                for _o in range(rnd.randrange(0, 2)):
                    s.other()
            if rnd.random() < 0.01:
                s.synthetic()
        sub = None
        if rnd.random() < 0.12:  # a subagent: its own requests, sidechain lines
            sub = ClaudeSession(rnd, text, s.sid, cwd, s.t)
            sub.entrypoint, sub.version, sub.model = s.entrypoint, s.version, SMALL_MODEL
            sub.user(side=True)
            for _r in range(rnd.randrange(3, 25)):
                sub.response(side=True)
                sub.tool_result(side=True)
            if rnd.random() < 0.3 and s.responses:  # a /btw side question replays the parent
                sub.lines += [line.replace('"isSidechain":false', '"isSidechain":true')
                              for line in rnd.choice(s.responses)]
            for model, c in sub.costs.items():
                mine = s.costs.setdefault(model, [0, 0, 0, 0, 0.0])
                for i, v in enumerate(c):
                    mine[i] += v
        s.cost_state()
        folder = projects / _slug(cwd)
        folder.mkdir(parents=True, exist_ok=True)
        _write(folder / f"{s.sid}.jsonl", s.lines, counts)
        counts["responses"] += len(s.responses)
        if sub is not None:
            (folder / s.sid / "subagents").mkdir(parents=True, exist_ok=True)
            _write(folder / s.sid / "subagents" / f"agent-{_id(rnd, '', 16)}.jsonl", sub.lines,
                   counts)
            counts["responses"] += len(sub.responses)
        counts["sessions"] += 1
        made.append(s)
        if rnd.random() < 0.02 and len(s.responses) > 2:  # a fork copies the history
            fork_id = _uuid(rnd)
            copied = [line.replace(f'"sessionId":"{s.sid}"', f'"sessionId":"{fork_id}",'
                                   f'"requestSessionId":"{s.sid}"') if '"assistant"' in line
                      else line.replace(s.sid, fork_id) for line in s.lines[:-1]]
            f = ClaudeSession(rnd, text, fork_id, cwd, s.t)
            f.entrypoint, f.version, f.model = s.entrypoint, s.version, s.model
            f.lines = copied
            f.user()
            for _r in range(rnd.randrange(1, 10)):
                f.response()
            f.cost_state()
            _write(folder / f"{fork_id}.jsonl", f.lines, counts)
            counts["responses"] += len(f.responses)
            counts["sessions"] += 1
    return counts


def _write(path: Path, lines: list[str], counts: dict[str, int]) -> None:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(data)
    counts["lines"] += len(lines)
    counts["usage_lines"] += sum(1 for line in lines if '"usage":{' in line)
    counts["bytes"] += len(data)


# ---------------------------------------------------------------- Codex


def build_codex(codex_home: Path, sessions: int, seed: int = 11, end: float | None = None,
                span: float = YEAR) -> dict[str, int]:
    rnd = random.Random(seed)
    text = Text(rnd)
    end = end or time.time() - 3600
    counts = {"sessions": 0, "responses": 0, "lines": 0, "bytes": 0}
    instructions = text(15000, 20000)
    for _ in range(sessions):
        tid = _uuid(rnd)
        t = end - rnd.random() * span
        cwd = f"/home/dev/src/project-{rnd.randrange(30)}"
        model = rnd.choice(("gpt-5.5", "gpt-5-codex", "gpt-5.4-mini"))
        lines = [json.dumps({"timestamp": _ts(t), "type": "session_meta", "payload": {
            "id": tid, "timestamp": _ts(t), "cwd": cwd, "originator": rnd.choice(
                ("codex_cli_rs", "codex_exec", "codex-app-server")), "cli_version": "0.169.0",
            "source": "cli", "model_provider": "openai",
            "base_instructions": {"text": instructions}}}, separators=(",", ":"))]
        total = dict.fromkeys(("input_tokens", "cached_input_tokens",
                               "cache_write_input_tokens", "output_tokens",
                               "reasoning_output_tokens", "total_tokens"), 0)
        for _turn in range(max(1, int(rnd.lognormvariate(1.5, 0.8)))):
            t += rnd.uniform(5, 600)
            lines.append(json.dumps({"timestamp": _ts(t), "type": "turn_context", "payload": {
                "cwd": cwd, "model": model, "approval_policy": "on-request"}},
                separators=(",", ":")))
            for _r in range(max(1, int(rnd.lognormvariate(1.2, 0.7)))):
                t += rnd.uniform(1, 60)
                lines.append(f'{{"timestamp":"{_ts(t)}","type":"response_item","payload":'
                             f'{{"type":"function_call_output","call_id":"{_id(rnd, "call_")}",'
                             f'"output":"{text(200, 3000)}"}}}}')
                inp = rnd.randrange(3_000, 120_000)
                usage = {"input_tokens": inp, "cached_input_tokens": int(inp * rnd.random()),
                         "cache_write_input_tokens": 0, "output_tokens": rnd.randrange(50, 3000)}
                usage["reasoning_output_tokens"] = usage["output_tokens"] // 3
                usage["total_tokens"] = inp + usage["output_tokens"]
                for k in total:
                    total[k] += usage[k]
                lines.append(json.dumps({"timestamp": _ts(t), "type": "token_usage_record",
                                         "payload": {"thread_id": tid, "turn_id": _uuid(rnd),
                                                     "response_id": _id(rnd, "resp_"),
                                                     "usage": usage,
                                                     "thread_token_usage": dict(total)}},
                                        separators=(",", ":")))
                for _again in range(1 + (rnd.random() < 0.3)):  # re-emitted, unchanged
                    lines.append(json.dumps({"timestamp": _ts(t), "type": "event_msg", "payload": {
                        "type": "token_count", "info": {"total_token_usage": dict(total),
                                                        "last_token_usage": usage,
                                                        "model_context_window": 258400},
                        "rate_limits": {"primary": None}}}, separators=(",", ":")))
                    t += 0.01
                counts["responses"] += 1
        day = time.strftime("%Y/%m/%d", time.gmtime(t))
        name = f"rollout-{time.strftime('%Y-%m-%dT%H-%M-%S', time.gmtime(t))}-{tid}.jsonl"
        folder = codex_home / "sessions" / day
        folder.mkdir(parents=True, exist_ok=True)
        data = ("\n".join(lines) + "\n").encode()
        (folder / name).write_bytes(data)
        if rnd.random() < 0.05:  # archived, and the old copy left behind
            (codex_home / "archived_sessions").mkdir(parents=True, exist_ok=True)
            (codex_home / "archived_sessions" / name).write_bytes(data)
            counts["bytes"] += len(data)
        counts["sessions"] += 1
        counts["lines"] += len(lines)
        counts["bytes"] += len(data)
    return counts


# ---------------------------------------------------------------- measuring


def ccusage_bin() -> Path | None:
    """ccusage CCUSAGE_VERSION from npm, installed once into this benchmark's cache."""
    binary = CCUSAGE_CACHE / "node_modules" / ".bin" / "ccusage"
    have = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                          check=False).stdout if binary.exists() else ""
    if CCUSAGE_VERSION not in have:
        if not shutil.which("npm"):
            return None
        print(f"installing ccusage {CCUSAGE_VERSION} into {CCUSAGE_CACHE}", flush=True)
        CCUSAGE_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(CCUSAGE_CACHE), "--no-save",
                        "--no-audit", "--no-fund", "--loglevel=error",
                        f"ccusage@{CCUSAGE_VERSION}"], check=True, stdout=subprocess.DEVNULL)
    return binary


def aitrack(*args: str) -> list[str]:
    return [sys.executable, "-m", "aitrack", *args]


def ccusage_totals(out: str) -> dict[str, int]:
    t = json.loads(out)["totals"]
    return {"input": t["inputTokens"], "output": t["outputTokens"],
            "cache_read": t["cacheReadTokens"], "cache_creation": t["cacheCreationTokens"]}


def ledger_totals(home: Path, tool: str) -> dict[str, int]:
    import sqlite3

    db = sqlite3.connect(home / "data" / "ledger.db")
    rows = db.execute("SELECT u.token_type, SUM(u.tokens) FROM usage u JOIN sessions s "
                      "ON s.id = u.session_id WHERE s.tool = ? GROUP BY 1", (tool,))
    got = dict(rows)
    return {k: got.get(k, 0) for k in ("input", "output", "cache_read", "cache_creation")}


def show(name: str, m: measure.Measured, target: str = "") -> None:
    status = "" if m.returncode == 0 else f"  (exit {m.returncode}: {m.stderr.strip()[-200:]})"
    print(f"{name:<44} {m.elapsed_s:7.2f} s  {m.peak_rss_mb:6.0f} MB peak RSS  {target}{status}",
          flush=True)


def _median(runs: list[measure.Measured]) -> measure.Measured:
    return sorted(runs, key=lambda m: m.elapsed_s)[len(runs) // 2]


def _list(runs: list[measure.Measured]) -> str:
    return ", ".join(f"{m.elapsed_s:.2f}" for m in runs) + " s"


def _claude_first(name: str, claude_dir: Path, home: Path, env: dict[str, str],
                  cc: Path | None, repeat: int) -> None:
    """The first Claude import of one tree against ccusage on it: alternately, medians (a
    shared machine's load moves under both alike), the ratio of each pair's median too."""
    env = {**env, "CLAUDE_CONFIG_DIR": str(claude_dir)}
    ours_runs, theirs_runs = [], []
    for _ in range(repeat):
        if cc is not None:
            theirs_runs.append(measure.run([str(cc), "claude", "daily", "--json", "--offline"],
                                           env=env))
        shutil.rmtree(home, ignore_errors=True)
        ours_runs.append(measure.run(aitrack("import", "--tool", "claude", "--json"), env=env))
    first = _median(ours_runs)
    if cc is not None:
        theirs = _median(theirs_runs)
        show(f"ccusage {CCUSAGE_VERSION} claude daily ({name})", theirs,
             f"(median of {repeat}: {_list(theirs_runs)})")
    show(f"aitrack import --tool claude, first ({name})", first,
         f"(median of {repeat}: {_list(ours_runs)}) target: <= 1.0x ccusage, "
         f"< {TARGET_RSS_MB} MB")
    if cc is not None:
        pairs = sorted(o.elapsed_s / t.elapsed_s
                       for o, t in zip(ours_runs, theirs_runs, strict=True))
        print(f"  ratio aitrack / ccusage: {first.elapsed_s / theirs.elapsed_s:.2f}x "
              f"(median of the pairs' ratios: {pairs[len(pairs) // 2]:.2f}x)")
        same = ccusage_totals(theirs.stdout) == ledger_totals(home, "claude")
        print(f"  token totals equal to ccusage's: {'yes' if same else 'NO'} "
              f"{ledger_totals(home, 'claude')}")
    if first.returncode == 0:
        print(f"  {json.loads(first.stdout)}")


def _built(marker: Path, build) -> dict:
    """What a tree holds, building it first unless `marker` says it is there."""
    if not marker.exists():
        shutil.rmtree(marker.parent, ignore_errors=True)
        started = time.perf_counter()
        marker.parent.mkdir(parents=True)
        marker.write_text(json.dumps(build()))
        print(f"built {marker.parent.name} in {time.perf_counter() - started:.0f} s", flush=True)
    return json.loads(marker.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3_950,
                        help="Claude sessions of the year (forks add about 2%%)")
    parser.add_argument("--size", choices=("year", "small"), action="append",
                        help="the Claude trees to import (default both): a heavy user's year, "
                             "and a small one of DAYS x PER-DAY sessions x RESPONSES")
    parser.add_argument("--small", type=int, nargs=3, default=(120, 12, 60),
                        metavar=("DAYS", "PER_DAY", "RESPONSES"),
                        help="the small tree's shape (default: 120 days x 12 sessions x 60 "
                             "responses)")
    parser.add_argument("--codex-sessions", type=int, default=1_500)
    parser.add_argument("--gemini-qwen-sessions", type=int, default=1_500,
                        help="sessions of each (0: skip their section)")
    parser.add_argument("--keep", type=Path, help="build the trees here, or reuse them")
    parser.add_argument("--no-ccusage", action="store_true")
    parser.add_argument("--repeat", type=int, default=3,
                        help="first imports (and ccusage runs), alternately; the median counts")
    parser.add_argument("--tool", choices=("copilot", "opencode"), action="append",
                        help="only these tools' year (tool_trees.py), against ccusage")
    parser.add_argument("--tool-sessions", type=int, default=1_500)
    args = parser.parse_args()
    sizes = args.size or ["year", "small"]

    work = args.keep or Path(tempfile.mkdtemp(prefix="aitrack-bench-import-"))
    if args.tool:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AITRACK_", "OTEL_"))
               and k != "PYTHONDONTWRITEBYTECODE"}
        env["AITRACK_MANAGED_PROFILE"] = str(work / "no-managed.toml")
        cc = None if args.no_ccusage else ccusage_bin()
        for tool in args.tool:
            tool_trees.compare(tool, work, args.tool_sessions, cc, args.repeat, env)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
        return
    tools = work / "tools"
    claude_dir, codex_home = tools / "claude", tools / "codex"
    built = _built(tools / f".built-{args.sessions}-{args.codex_sessions}", lambda: {
        "claude": build_claude(claude_dir / "projects", args.sessions),
        "codex": build_codex(codex_home, args.codex_sessions)})
    c, x = built["claude"], built["codex"]
    days, per_day, responses = args.small
    small_dir = work / "tools-small" / "claude"
    small = _built(small_dir.parent / f".built-{days}-{per_day}-{responses}", lambda: {
        "claude": build_claude(small_dir / "projects", days * per_day, seed=17,
                               span=days * DAY, responses=responses)})["claude"]
    for name, b in (("year", c), ("small", small)):
        if name in sizes:
            print(f"Claude Code ({name}): {b['sessions']:,} sessions, {b['responses']:,} "
                  f"responses, {b['lines']:,} lines ({b['usage_lines']:,} with usage), "
                  f"{b['bytes'] / 1e6:,.0f} MB")
    print(f"Codex:       {x['sessions']:,} sessions, {x['responses']:,} responses, "
          f"{x['lines']:,} lines, {x['bytes'] / 1e6:,.0f} MB", flush=True)

    home = work / "aitrack-home"
    shutil.rmtree(home, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AITRACK_", "OTEL_"))
           and k != "PYTHONDONTWRITEBYTECODE"}  # timed as installed: bytecode cached
    env.update(AITRACK_HOME=str(home), AITRACK_MANAGED_PROFILE=str(work / "no-managed.toml"),
               HOME=str(work / "home"), CLAUDE_CONFIG_DIR=str(claude_dir),
               CODEX_HOME=str(codex_home))
    # the page cache holds the files for every reader alike
    for path in (*tools.rglob("*.jsonl"), *small_dir.rglob("*.jsonl")):
        path.read_bytes()
    subprocess.run([sys.executable, "-c", "import aitrack.cli, aitrack.store.importer, "
                    "aitrack.reports.tables, aitrack.adapters.claude.transcripts, "
                    "aitrack.adapters.codex.transcripts"],
                   env=env, capture_output=True, check=True)

    cc = None if args.no_ccusage else ccusage_bin()
    if "small" in sizes:
        _claude_first("small", small_dir, home, env, cc, args.repeat)
    if "year" not in sizes:
        return
    _claude_first("year", claude_dir, home, env, cc, args.repeat)
    if cc is not None:
        theirs_x = measure.run([str(cc), "codex", "daily", "--json", "--offline"], env=env)
        show(f"ccusage {CCUSAGE_VERSION} codex daily --json --offline", theirs_x)
    first_x = measure.run(aitrack("import", "--tool", "codex", "--json"), env=env)
    show("aitrack import --tool codex (first)", first_x)
    if cc is not None:
        print(f"  ratio aitrack / ccusage: {first_x.elapsed_s / theirs_x.elapsed_s:.2f}x")

    runs = [measure.run(aitrack("import", "--json"), env=env) for _ in range(5)]
    second = sorted(runs, key=lambda m: m.elapsed_s)[2]
    show("aitrack import, nothing new (median of 5)", second, f"target: < {TARGET_SECOND_S} s")
    print(f"  ratio to target: {second.elapsed_s / TARGET_SECOND_S:.2f}")

    before = set(tools.rglob("*.jsonl"))
    day_end = time.time() - 60
    d = build_claude(claude_dir / "projects", 12, seed=99, end=day_end, span=DAY)
    dx = build_codex(codex_home, 6, seed=98, end=day_end, span=DAY)
    print(f"a day of new transcripts: {d['sessions']} Claude sessions ({d['responses']:,} "
          f"responses, {d['bytes'] / 1e6:.1f} MB), {dx['sessions']} Codex sessions", flush=True)
    report = measure.run(aitrack("report"), env=env)
    show("aitrack report (imports the day first)", report, f"target: < {TARGET_REPORT_S} s")
    print(f"  ratio to target: {report.elapsed_s / TARGET_REPORT_S:.2f}")
    again = measure.run(aitrack("report"), env=env)
    show("aitrack report (nothing new)", again)
    if args.gemini_qwen_sessions:
        import_gemini_qwen.compare(work, env, cc, args.gemini_qwen_sessions, args.repeat)
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    else:  # the kept trees stay a year, for the next run
        for path in set(tools.rglob("*.jsonl")) - before:
            path.unlink()

if __name__ == "__main__":
    main()
