"""A year of Gemini CLI and Qwen Code files, shaped like the ones gemini 0.61.0 and qwen 0.24.4
write, with the truth of what was billed (bench/import.py compares aitrack and ccusage on it).

Gemini CLI: `<home>/.gemini/tmp/<project>/chats/session-*.jsonl`: a header line, user and
`gemini` messages (a message appended again, whole, when a tool call is added: same id, same
tokens), `$set` updates (a resume's `$set.messages` repeats every message so far), and now and
then a subagent's file in `chats/<session id>/`. Each user prompt also made a router call,
billed but in no file.

Qwen Code: `<home>/.qwen/projects/<slug>/chats/<session>.jsonl` (user rows, an `assistant` row
per main request, a `ui_telemetry` row per request, the memory extractor's included) and
`<home>/.qwen/usage/token-usage-YYYY-MM.jsonl` (a line per request, its time 0 or 1 ms before
the chat row's). Figures use OpenAI semantics (prompt includes cached, candidates include
reasoning).

The truth is in ledger token types: input (uncached), cache_read, output (all), reasoning.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path

DAY = 86400
YEAR = 365 * DAY
GEMINI_MODELS = ("gemini-3.8-flash",) * 4 + ("gemini-3.1-pro-preview-customtools",)
ROUTER = "gemini-3.5-flash-lite"
QWEN_MODEL = "qwen3.7-max"
FILLER = "x" * 600  # tool output, prompts: what most bytes of a chat file are


def _ts(t: float) -> str:
    ms = int(t * 1000)  # as JavaScript's toISOString: milliseconds, truncated
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{ms % 1000:03d}Z"


def _uuid(rnd: random.Random) -> str:
    return str(uuid.UUID(int=rnd.getrandbits(128), version=4))


def _add(truth: dict, model: str, figures: dict) -> None:
    row = truth.setdefault(model, dict.fromkeys(("input", "cache_read", "output",
                                                  "reasoning"), 0))
    for k, v in figures.items():
        row[k] += v


def _gemini_tokens(rnd: random.Random) -> dict:
    prompt = rnd.randrange(2_000, 90_000)
    t = {"input": prompt, "output": rnd.randrange(20, 3_000),
         "cached": rnd.randrange(0, prompt // 2), "thoughts": rnd.randrange(0, 1_500), "tool": 0}
    t["total"] = t["input"] + t["output"] + t["thoughts"]
    return t


def _gemini_ledger(t: dict) -> dict:
    return {"input": t["input"] - t["cached"], "cache_read": t["cached"],
            "output": t["output"] + t["thoughts"], "reasoning": t["thoughts"]}


def build_gemini(home: Path, sessions: int, seed: int = 21, end: float | None = None) -> dict:
    """The files, and {"sessions", "requests", "router_requests", "bytes", "truth",
    "router"}: truth what the files hold, router what the router calls billed besides."""
    rnd = random.Random(seed)
    end = end or datetime.now(UTC).timestamp() - 3600
    projects = [f"proj{i}" for i in range(12)]
    truth: dict = {}
    router: dict = {}
    stats = {"sessions": 0, "requests": 0, "router_requests": 0, "bytes": 0}
    for n in range(sessions):
        name = rnd.choice(projects)
        project = home / ".gemini" / "tmp" / name
        chats = project / "chats"
        chats.mkdir(parents=True, exist_ok=True)
        (project / ".project_root").write_text(f"/home/dev/src/{name}")
        t = end - YEAR + (n + rnd.random()) * YEAR / sessions
        sid = _uuid(rnd)
        lines = [json.dumps({"sessionId": sid, "projectHash": "0" * 64, "startTime": _ts(t),
                             "lastUpdated": _ts(t), "kind": "main"})]
        messages = []
        for _ in range(rnd.randrange(2, 30)):
            t += rnd.uniform(2, 90)
            user = {"id": _uuid(rnd), "timestamp": _ts(t), "type": "user",
                    "content": [{"text": FILLER[:rnd.randrange(20, 600)]}]}
            lines.append(json.dumps(user))
            messages.append(user)
            r = _gemini_tokens(rnd)  # the router's call: billed, in no file
            _add(router, ROUTER, _gemini_ledger(r))
            stats["router_requests"] += 1
            for _ in range(rnd.randrange(1, 5)):  # the turn's requests
                t += rnd.uniform(1, 20)
                tokens = _gemini_tokens(rnd)
                model = rnd.choice(GEMINI_MODELS)
                msg = {"id": _uuid(rnd), "timestamp": _ts(t), "type": "gemini",
                       "content": FILLER[:rnd.randrange(50, 600)], "thoughts": [],
                       "tokens": tokens, "model": model}
                lines.append(json.dumps(msg))
                if rnd.random() < 0.6:  # a tool call added: the message again, whole
                    lines.append(json.dumps({**msg, "toolCalls": [
                        {"id": "c1", "name": "read_file", "result": FILLER}]}))
                lines.append(json.dumps({"$set": {"lastUpdated": _ts(t)}}))
                messages.append(msg)
                _add(truth, model, _gemini_ledger(tokens))
                stats["requests"] += 1
            if rnd.random() < 0.05:  # resumed: every message so far, again
                lines.append(json.dumps({"$set": {"messages": messages}}))
        if rnd.random() < 0.1:  # a subagent's file under its parent's folder
            sub = _uuid(rnd)
            sub_lines = [json.dumps({"sessionId": sub, "projectHash": "0" * 64,
                                     "startTime": _ts(t), "lastUpdated": _ts(t),
                                     "kind": "subagent"})]
            for _ in range(rnd.randrange(1, 6)):
                t += rnd.uniform(1, 10)
                tokens = _gemini_tokens(rnd)
                sub_lines.append(json.dumps({"id": _uuid(rnd), "timestamp": _ts(t),
                                             "type": "gemini", "content": "done",
                                             "tokens": tokens, "model": GEMINI_MODELS[0]}))
                _add(truth, GEMINI_MODELS[0], _gemini_ledger(tokens))
                stats["requests"] += 1
            (chats / sid).mkdir(exist_ok=True)
            stats["bytes"] += _write(chats / sid / f"{sub}.jsonl", sub_lines)
        stamp = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H-%M")
        stats["bytes"] += _write(chats / f"session-{stamp}-{sid[:8]}.jsonl", lines)
        stats["sessions"] += 1
    return {**stats, "truth": truth, "router": router}


def _write(path: Path, lines: list[str]) -> int:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(data)
    return len(data)


def build_qwen(home: Path, sessions: int, seed: int = 23, end: float | None = None) -> dict:
    """The files, and {"sessions", "requests", "subagent_requests", "bytes", "truth",
    "subagents"}: truth every request, subagents the memory extractor's part of it."""
    rnd = random.Random(seed)
    end = end or datetime.now(UTC).timestamp() - 3600
    base = home / ".qwen"
    usage: dict[str, list[str]] = {}
    truth: dict = {}
    subagents: dict = {}
    stats = {"sessions": 0, "requests": 0, "subagent_requests": 0, "bytes": 0}
    for n in range(sessions):
        cwd = f"/home/dev/src/proj{rnd.randrange(12)}"
        chats = base / "projects" / cwd.replace("/", "-") / "chats"
        chats.mkdir(parents=True, exist_ok=True)
        t = end - YEAR + (n + rnd.random()) * YEAR / sessions
        sid = _uuid(rnd)
        common = {"sessionId": sid, "cwd": cwd, "version": "0.24.4"}
        lines = []
        for turn in range(rnd.randrange(2, 25)):
            t += rnd.uniform(2, 90)
            lines.append(json.dumps({"uuid": _uuid(rnd), **common, "timestamp": _ts(t),
                                     "type": "user", "message": {"role": "user", "parts": [
                                         {"text": FILLER[:rnd.randrange(20, 600)]}]}}))
            calls = [None] * rnd.randrange(1, 5) + ["managed-auto-memory-extractor"]
            for sub in calls:
                t += rnd.uniform(1, 20)
                prompt = rnd.randrange(2_000, 90_000)
                cached = rnd.randrange(0, prompt // 2)
                reasoning = rnd.randrange(0, 1_500)
                completion = reasoning + rnd.randrange(20, 3_000)
                made = t - rnd.choice((0.0, 0.001))  # the usage line's time: a moment sooner
                event = {"event.name": "qwen-code.api_response", "event.timestamp": _ts(t),
                         "response_id": f"chatcmpl-{rnd.getrandbits(48):012x}",
                         "model": QWEN_MODEL, "status_code": 200, "duration_ms": 400,
                         "input_token_count": prompt, "output_token_count": completion,
                         "cached_content_token_count": cached,
                         "thoughts_token_count": reasoning,
                         "total_token_count": prompt + completion, "auth_type": "openai",
                         "prompt_id": f"{sid}########{turn}"}
                if sub:
                    event["subagent_name"] = sub
                lines.append(json.dumps({"uuid": _uuid(rnd), **common, "timestamp": _ts(t),
                                         "type": "system", "subtype": "ui_telemetry",
                                         "systemPayload": {"uiEvent": event}}))
                if sub is None:
                    lines.append(json.dumps({"uuid": _uuid(rnd), **common, "timestamp": _ts(t),
                                             "type": "assistant", "model": QWEN_MODEL,
                                             "message": {"role": "model", "parts": [
                                                 {"text": FILLER[:rnd.randrange(50, 600)]}]},
                                             "usageMetadata": {
                                                 "promptTokenCount": prompt,
                                                 "candidatesTokenCount": completion,
                                                 "thoughtsTokenCount": reasoning,
                                                 "totalTokenCount": prompt + completion,
                                                 "cachedContentTokenCount": cached}}))
                month = datetime.fromtimestamp(made, UTC).strftime("%Y-%m")
                usage.setdefault(month, []).append(json.dumps({
                    "schemaVersion": 1, "id": _uuid(rnd), "timestamp": _ts(made),
                    "localDate": month + "-01", "localMonth": month, "sessionId": sid,
                    "model": QWEN_MODEL, "authType": "openai", "source": sub or "main",
                    "inputTokens": prompt, "outputTokens": completion, "cachedTokens": cached,
                    "thoughtsTokens": reasoning, "totalTokens": prompt + completion,
                    "apiDurationMs": 400}))
                figures = {"input": prompt - cached, "cache_read": cached, "output": completion,
                           "reasoning": reasoning}
                _add(truth, QWEN_MODEL, figures)
                stats["requests"] += 1
                if sub:
                    _add(subagents, QWEN_MODEL, figures)
                    stats["subagent_requests"] += 1
        stats["bytes"] += _write(chats / f"{sid}.jsonl", lines)
        stats["sessions"] += 1
    (base / "usage").mkdir(parents=True, exist_ok=True)
    for month, month_lines in usage.items():
        stats["bytes"] += _write(base / "usage" / f"token-usage-{month}.jsonl", month_lines)
    return {**stats, "truth": truth, "subagents": subagents}


def totals(per_model: dict) -> dict[str, int]:
    """Summed over models, in ledger types."""
    out = dict.fromkeys(("input", "cache_read", "output", "reasoning"), 0)
    for row in per_model.values():
        for k in out:
            out[k] += row.get(k, 0)
    return out
