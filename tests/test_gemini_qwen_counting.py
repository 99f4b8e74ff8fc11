"""Gemini CLI and Qwen Code counted once per billed request: their real files and OTLP
payloads (tests/samples, from gemini 0.61.0 and qwen 0.24.4), and the duplicate patterns
their readers must see through."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

import otlp_client as oc
from aitrack.adapters.gemini import telemetry as gemini_telemetry
from aitrack.adapters.qwen import telemetry as qwen_telemetry
from aitrack.capture import loopback
from aitrack.capture.receiver import Receiver
from aitrack.config import profile
from aitrack.domain.tokens import FIGURES
from aitrack.egress import otlp
from aitrack.store import importer
from test_receiver import Recorder
from transcript_tree import figures, open_db

# real files from the runs more-tools.md describes (tests/samples/README.md)
SAMPLES = Path(__file__).resolve().parent / "samples"  # the tools' real files
GEMINI_SID = "84c91bc8-f1a0-413d-b362-084f0e55a9b1"
QWEN_SID = "a5f413e0-9444-45f2-ae10-f85b91768685"



def run(db, env: dict) -> importer.ImportResult:
    return importer.run(db, profile.Profile(), env=env)


@pytest.fixture
def db(tmp_path):
    return open_db(tmp_path / "ledger.db")


def gemini_tree(tmp_path: Path) -> tuple[dict, Path]:
    home = tmp_path / "home"
    chats = home / ".gemini" / "tmp" / "demo" / "chats"
    chats.mkdir(parents=True)
    (chats.parent / ".project_root").write_text("/home/dev/src/demo")
    shutil.copy(SAMPLES / "gemini" / "session-2026-12-05T11-57-84c91bc8.jsonl", chats)
    return {"HOME": str(tmp_path / "elsewhere"), "GEMINI_CLI_HOME": str(home)}, chats


def qwen_tree(tmp_path: Path, usage_file: bool = True) -> tuple[dict, Path]:
    base = tmp_path / "qwen"
    chats = base / "projects" / "-home-dev-src-demo" / "chats"
    chats.mkdir(parents=True)
    shutil.copy(SAMPLES / "qwen" / "chat-a5f413e0.jsonl", chats / f"{QWEN_SID}.jsonl")
    if usage_file:
        (base / "usage").mkdir()
        shutil.copy(SAMPLES / "qwen" / "token-usage-2026-12.jsonl", base / "usage")
    return {"HOME": str(tmp_path / "elsewhere"), "QWEN_HOME": str(base)}, chats


# ---------------------------------------------------------------- Gemini CLI's chat files


def test_a_gemini_chat_file_counts_its_main_turn_thoughts_as_output(db, tmp_path):
    env, _ = gemini_tree(tmp_path)
    result = run(db, env)
    assert result.responses == 1
    # input 1000 of which 200 cached; candidates 50 and thoughts 7, both billed as output
    assert figures(db) == {"gemini-3.8-flash": {"input": 800, "cache_read": 200,
                                                "output": 57, "reasoning": 7}}
    session = db.execute("SELECT tool, tool_session_id, cwd FROM sessions").fetchone()
    assert session == ("gemini", GEMINI_SID, "/home/dev/src/demo")
    again = run(db, env)
    assert again.responses == 0 and figures(db)["gemini-3.8-flash"]["input"] == 800


def test_a_rewritten_message_a_resume_and_a_subagent_count_once_each(db, tmp_path):
    env, chats = gemini_tree(tmp_path)
    main = chats / "session-2026-12-05T11-57-84c91bc8.jsonl"
    lines = main.read_text().splitlines()
    message = json.loads(lines[4])
    message["toolCalls"] = [{"id": "c1", "name": "read_file"}]  # appended again, whole
    lines.append(json.dumps(message))
    lines.append(json.dumps({"$set": {"messages": [message]}}))  # a resume lists it again
    lines.append(json.dumps({"$rewindTo": message["id"]}))  # removed from the chat, not the bill
    main.write_text("\n".join(lines) + "\n")
    sub = chats / GEMINI_SID
    sub.mkdir()
    (sub / "sub-1.jsonl").write_text("\n".join(json.dumps(r) for r in (
        {"sessionId": "sub-1", "projectHash": "0", "startTime": "2026-12-05T11:58:00.000Z",
         "kind": "subagent"},
        {"id": "m-sub", "timestamp": "2026-12-05T11:58:01.000Z", "type": "gemini",
         "model": "gemini-3.8-flash",
         "tokens": {"input": 100, "output": 10, "cached": 0, "thoughts": 3, "tool": 5}},
    )) + "\n")
    run(db, env)
    assert figures(db) == {"gemini-3.8-flash": {"input": 800 + 105, "cache_read": 200,
                                                "output": 57 + 13, "reasoning": 10}}
    owners = db.execute("SELECT tool_session_id FROM sessions").fetchall()
    assert owners == [(GEMINI_SID,)]  # the subagent's request is its parent session's


# ---------------------------------------------------------------- Qwen Code's two files


def test_qwen_chat_and_usage_files_count_each_request_once(db, tmp_path):
    env, _ = qwen_tree(tmp_path)
    result = run(db, env)
    # two requests (the main one, the memory extractor's), each in both files
    assert (result.responses, result.duplicates) == (2, 2)
    # OpenAI semantics: prompt includes cached, completion (57) includes reasoning (7)
    assert figures(db) == {"fake-model": {"input": 1600, "cache_read": 400, "output": 114,
                                          "reasoning": 14}}
    assert db.execute("SELECT tool_session_id, cwd, tool_version FROM sessions").fetchone() \
        == (QWEN_SID, "/home/dev/src/demo", "0.24.4")


def test_qwen_chat_file_alone_counts_the_subagent_too(db, tmp_path):
    """`usageStatisticsEnabled: false`: no token-usage file; the chat rows have every call."""
    env, _ = qwen_tree(tmp_path, usage_file=False)
    assert run(db, env).responses == 2
    assert figures(db)["fake-model"]["output"] == 114


@pytest.mark.parametrize("chat_ms, usage_ms", [(720, 720), (720, 719), (710, 709), (0, 999)])
def test_qwen_lines_a_moment_apart_are_one_request(db, tmp_path, chat_ms, usage_ms):
    """The usage line's time is taken a moment before the chat row's, across a 10 ms step
    (and a second) too."""
    env, chats = qwen_tree(tmp_path)
    usage = Path(env["QWEN_HOME"]) / "usage" / "token-usage-2026-12.jsonl"
    first = json.loads(usage.read_text().splitlines()[0])
    second_of = 36 if chat_ms == 0 else 35
    first["timestamp"] = f"2026-12-05T12:07:35.{usage_ms:03d}Z"
    usage.write_text(json.dumps(first) + "\n")
    rows = [json.loads(line) for line in (chats / f"{QWEN_SID}.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r.get("subtype") == "ui_telemetry"][:1]
    rows[0]["systemPayload"]["uiEvent"]["event.timestamp"] = \
        f"2026-12-05T12:07:{second_of}.{chat_ms:03d}Z"
    (chats / f"{QWEN_SID}.jsonl").write_text(json.dumps(rows[0]) + "\n")
    result = run(db, env)
    assert (result.responses, result.duplicates) == (1, 1)
    assert figures(db)["fake-model"]["input"] == 800


def test_a_gemini_backend_in_qwen_keeps_its_thoughts_apart():
    """With Gemini semantics the total adds thoughts to candidates: output gets both."""
    assert qwen_telemetry.ledger_figures(1000, 200, 50, 7, 1057, "gemini") == (800, 57, 200, 7)
    assert qwen_telemetry.ledger_figures(1000, 200, 57, 7, 1057, "openai") == (800, 57, 200, 7)
    assert qwen_telemetry.ledger_figures(1000, 200, 50, 7, 0, "vertex-ai") == (800, 57, 200, 7)


# ---------------------------------------------------------------- their telemetry


def _log_attrs(path: Path) -> list[dict[str, str]]:
    request = otlp.decode("logs", path.read_bytes(), otlp.JSON)
    return [attrs for attrs, _ in otlp.log_records(request)]


def _usage(requests) -> dict:
    """Requests summed per model, in ledger types (the ones they have)."""
    out: dict = {}
    for r in requests:
        assert r is not None
        row = out.setdefault(r.model, {})
        for name, v in zip(FIGURES, r.figures, strict=False):
            if v:
                row[name] = row.get(name, 0) + v
    return out


def test_gemini_api_response_records_count_the_router_and_the_main_turn():
    records = _log_attrs(SAMPLES / "gemini" / "otlp" / "002-logs.json")
    got = _usage(gemini_telemetry.log_request(attrs, None) for attrs in records
                 if attrs.get("event.name") == gemini_telemetry.EVENT)
    row = {"input": 800, "cache_read": 200, "output": 57, "reasoning": 7}
    assert got == {"gemini-3.5-flash-lite": row, "gemini-3.8-flash": row}
    assert {gemini_telemetry.tool_session_id(a) for a in records} == \
        {"33f79f4d-65b3-4d16-816f-ced6c0b7fd07"}
    metrics = otlp.decode("metrics", (SAMPLES / "gemini" / "otlp" / "003-metrics.json")
                          .read_bytes(), otlp.JSON)
    points = list(otlp.points(metrics))
    assert any(p.metric == "gemini_cli.token.usage" for p in points)
    assert all(gemini_telemetry.contributions(p, p.value) == [] for p in points)


def test_qwen_api_response_records_count_the_main_call_and_the_subagent():
    records = [a for name in ("001-logs.json", "002-logs.json")
               for a in _log_attrs(SAMPLES / "qwen" / "otlp" / name)]
    got = _usage(qwen_telemetry.log_request(attrs, None) for attrs in records
                 if attrs.get("event.name") == qwen_telemetry.EVENT)
    assert got == {"fake-model": {"input": 1600, "cache_read": 400, "output": 114,
                                  "reasoning": 14}}


@pytest.fixture
def rx():
    store = Recorder()
    listener = loopback.bind()
    receiver = Receiver(socket.socket(fileno=listener.sock.detach()), listener.secret,
                        store).start()
    yield SimpleNamespace(port=listener.port, secret=listener.secret, store=store)
    receiver.stop(2)


@pytest.mark.parametrize("tool, name", [("gemini", "002-logs.json"), ("qwen", "001-logs.json")])
def test_their_chunked_json_exports_are_received(rx, tool, name):
    """Both send OTLP/HTTP JSON with transfer-encoding: chunked and no Content-Length."""
    body = (SAMPLES / tool / "otlp" / name).read_bytes()
    headers = {**oc.otlp_headers(rx.port, rx.secret, oc.JSON), "Transfer-Encoding": "chunked"}
    chunks = [body[i:i + 8192] for i in range(0, len(body), 8192)]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    with oc.Conn(rx.port) as conn:
        answer = conn.request("POST", "/v1/logs", headers, framed, length=False)
    assert answer is not None and answer.status == 200
    assert len(rx.store.got) == 1
