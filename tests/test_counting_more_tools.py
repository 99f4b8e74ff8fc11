"""Gemini CLI, Qwen Code, Copilot CLI and opencode: the same requests through the tool's
telemetry (as the agent receives it) and its files (as `aitrack import` reads them), in both
orders, each request counted once; a request only one source saw counted too.

The files are the tools' real sample files (tests/samples); the telemetry records are
the same requests as the tool sends them (its own event for Qwen Code; Gemini CLI's
api_response and Copilot CLI's chat span built from the file's figures, as the real ones are).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import otlp_client as oc
from aitrack.capture import intake
from aitrack.config import profile
from aitrack.domain import pricing
from aitrack.egress import otlp
from aitrack.egress import policy as egress_policy
from aitrack.store import importer, ledger
from aitrack.store.ledger.runs import TELEMETRY, TRANSCRIPT
from test_import_copilot_opencode import opencode_db

SAMPLES = Path(__file__).resolve().parent / "samples"  # the tools' real files
GEMINI_SID = "84c91bc8-f1a0-413d-b362-084f0e55a9b1"
QWEN_SID = "a5f413e0-9444-45f2-ae10-f85b91768685"
COPILOT_SID = "fa43e9e2-7642-44a3-be82-342bdd8a2e79"
OPENCODE_SID = "ses_db9e92701ffeKJjSZAZEzNjfjX"
BOTH = TELEMETRY | TRANSCRIPT

ORDERS = pytest.mark.parametrize("telemetry_first", [True, False],
                                 ids=["telemetry-first", "files-first"])


@pytest.fixture
def db(tmp_path):
    connection = ledger.connect(tmp_path / "ledger.db")
    yield connection
    connection.close()


def receive(db, signal: str, data: dict) -> None:
    """As the agent takes a payload: through the inbox, decoded and counted."""
    intake.Inbox(db, "agent", lambda: None).put(
        intake.Delivery(signal, otlp.JSON, json.dumps(data).encode(), None))
    context = intake.Context({}, (), pricing.load(), egress_policy.FORWARD_ALL)
    assert intake.Processor(db, "agent", context).drain(5) == 0


def feed(db, telemetry_first: bool, signal: str, data: dict, env: dict, tool: str) -> None:
    steps = [lambda: receive(db, signal, data),
             lambda: importer.run(db, profile.Profile(), env=env, tools=[tool])]
    for step in steps if telemetry_first else steps[::-1]:
        step()


def usage(db, tool: str) -> dict:
    out: dict = {}
    for model, kind, n in db.execute(
            "SELECT u.model, u.token_type, u.tokens FROM usage u JOIN sessions s "
            "ON s.id = u.session_id WHERE s.tool = ?", (tool,)):
        out.setdefault(model, {})[kind] = n
    return out


def requests(db) -> list[tuple[str, int]]:
    """Each request of the ledger once: (model, which sources saw it)."""
    return sorted(db.execute("SELECT model, sources FROM requests"))


def sessions(db, tool: str) -> list[str]:
    return [r[0] for r in db.execute("SELECT tool_session_id FROM sessions WHERE tool = ?",
                                     (tool,))]


def times(*figures: dict, n: int = 1) -> dict:
    """Figures summed, each `n` times."""
    out: dict = {}
    for f in figures:
        for k, v in f.items():
            out[k] = out.get(k, 0) + n * v
    return out


# ---------------------------------------------------------------- Gemini CLI


def gemini_request(model: str, prompt: int, cached: int, candidates: int, thoughts: int,
                   role: str, stamp: str) -> dict:
    return oc.log_record("gemini_cli.api_response", **{
        "event.name": "gemini_cli.api_response", "event.timestamp": stamp,
        "session.id": GEMINI_SID, "model": model, "input_token_count": prompt,
        "cached_content_token_count": cached, "output_token_count": candidates,
        "thoughts_token_count": thoughts, "tool_token_count": 0,
        "total_token_count": prompt + candidates + thoughts, "role": role,
        "prompt_id": f"{GEMINI_SID}########0", "interactive": "false"})


@ORDERS
def test_gemini_requests_in_telemetry_and_its_chat_file_count_once(db, tmp_path,
                                                                   telemetry_first):
    """Gemini names no request id: the chat file's turn meets its api_response on session,
    model and figures; the router's call is only in telemetry and counts too."""
    chats = tmp_path / "home" / ".gemini" / "tmp" / "demo" / "chats"
    chats.mkdir(parents=True)
    (chats.parent / ".project_root").write_text("/home/dev/src/demo")
    shutil.copy(SAMPLES / "gemini" / "session-2026-12-05T11-57-84c91bc8.jsonl", chats)
    env = {"HOME": str(tmp_path / "elsewhere"), "GEMINI_CLI_HOME": str(tmp_path / "home")}
    # the chat file's turn (input 1000 of which 200 cached, 50 + 7 thoughts) and the router's
    telemetry = oc.logs(
        gemini_request("gemini-3.5-flash-lite", 640, 0, 12, 0, "utility_router",
                       "2026-12-05T11:57:56.200Z"),
        gemini_request("gemini-3.8-flash", 1000, 200, 50, 7, "main",
                       "2026-12-05T11:57:56.359Z"),
        resource={"service.name": "gemini-cli", "session.id": GEMINI_SID})
    feed(db, telemetry_first, "logs", telemetry, env, "gemini")
    assert usage(db, "gemini") == {
        "gemini-3.8-flash": {"input": 800, "cache_read": 200, "output": 57, "reasoning": 7},
        "gemini-3.5-flash-lite": {"input": 640, "output": 12}}
    assert requests(db) == [("gemini-3.5-flash-lite", TELEMETRY), ("gemini-3.8-flash", BOTH)]
    assert sessions(db, "gemini") == [GEMINI_SID]


# ---------------------------------------------------------------- Qwen Code


@ORDERS
def test_qwen_requests_in_telemetry_its_chat_and_usage_files_count_once(db, tmp_path,
                                                                       telemetry_first):
    """The main call and the memory extractor's have equal figures: they meet their files'
    records on the response id, never on figures alone; a side query only telemetry saw
    counts too."""
    base = tmp_path / "qwen"
    chats = base / "projects" / "-home-dev-src-demo" / "chats"
    chats.mkdir(parents=True)
    chat = chats / f"{QWEN_SID}.jsonl"
    shutil.copy(SAMPLES / "qwen" / "chat-a5f413e0.jsonl", chat)
    (base / "usage").mkdir()
    shutil.copy(SAMPLES / "qwen" / "token-usage-2026-12.jsonl", base / "usage")
    env = {"HOME": str(tmp_path / "elsewhere"), "QWEN_HOME": str(base)}
    events = [row["systemPayload"]["uiEvent"] for row in map(json.loads, chat.open())
              if row.get("subtype") == "ui_telemetry"
              and row["systemPayload"]["uiEvent"].get("event.name") == "qwen-code.api_response"]
    assert len(events) == 2  # the main call and the memory extractor's
    side = {**events[0], "response_id": "chatcmpl-side", "input_token_count": 300,
            "cached_content_token_count": 0, "output_token_count": 9,
            "thoughts_token_count": 0, "total_token_count": 309,
            "prompt_id": f"{QWEN_SID}#prompt_suggestion#0"}
    records = [oc.log_record("qwen-code.api_response", **{k: v for k, v in e.items()
                                                         if not isinstance(v, dict)},
                             **{"session.id": QWEN_SID}) for e in (*events, side)]
    telemetry = oc.logs(*records, resource={"service.name": "qwen-code"})
    feed(db, telemetry_first, "logs", telemetry, env, "qwen")
    one = {"input": 800, "cache_read": 200, "output": 57, "reasoning": 7}
    assert usage(db, "qwen") == {"fake-model": times(times(one, n=2),
                                                     {"input": 300, "output": 9})}
    assert requests(db) == [("fake-model", TELEMETRY), ("fake-model", BOTH),
                            ("fake-model", BOTH)]
    assert sessions(db, "qwen") == [QWEN_SID]


# ---------------------------------------------------------------- Copilot CLI


def copilot_span(record: dict, answered: str, span_id: str) -> dict:
    """The `chat` span Copilot CLI sends for a usage record (the exporter sample's shape),
    naming the model that answered as the provider did: another string than requested."""
    u = record["data"]["usage"]
    attributes = {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": u["model"],
        "gen_ai.response.model": answered, "gen_ai.conversation.id": COPILOT_SID,
        "gen_ai.response.id": u["apiCallId"], "gen_ai.usage.input_tokens": u["inputTokens"],
        "gen_ai.usage.output_tokens": u["outputTokens"],
        "gen_ai.usage.cache_read.input_tokens": u["cacheReadTokens"],
        "gen_ai.usage.cache_write.input_tokens": u["cacheWriteTokens"],
        "gen_ai.usage.reasoning.output_tokens": u["reasoningTokens"],
        "github.copilot.cost": u["cost"]}
    return {"traceId": "3ebedddc436b21413ef729bb6c9ba6cf", "spanId": span_id,
            "name": f"chat {u['model']}", "kind": 2, "startTimeUnixNano": "1796472093287000000",
            "endTimeUnixNano": "1796472093342000000", "attributes": oc.attrs(**attributes)}


@ORDERS
def test_copilot_spans_and_its_events_count_each_request_once(db, tmp_path, telemetry_first):
    """Two requests in the events file, both also as spans that name the answering model
    by a dated string: each once, under the model requested (the events' name)."""
    lines = (SAMPLES / "copilot" / "session-state-events.jsonl").read_text().splitlines()
    first = next(json.loads(x) for x in lines if '"session.usage_record"' in x)
    second = json.loads(json.dumps(first))
    u = second["data"]["usage"]
    u.update(inputTokens=1310, outputTokens=61, cacheReadTokens=900, reasoningTokens=0,
             apiCallId="chatcmpl-second")
    u["accounting"].update(sequence=2, usageId="chatcmpl-second")
    second["id"] = "second-usage-record"
    folder = tmp_path / "copilot" / "session-state" / COPILOT_SID
    folder.mkdir(parents=True)
    (folder / "events.jsonl").write_text("\n".join([*lines, json.dumps(second)]) + "\n")
    env = {"HOME": str(tmp_path), "COPILOT_HOME": str(tmp_path / "copilot")}
    telemetry = {"resourceSpans": [{
        "resource": {"attributes": oc.attrs(**{"service.name": "github-copilot",
                                                "service.version": "1.0.102"})},
        "scopeSpans": [{"scope": {"name": "github.copilot"}, "spans": [
            copilot_span(first, "gpt-4.1-2025-04-14", "356fe06078ac35cb"),
            copilot_span(second, "gpt-4.1-2025-04-14", "356fe06078ac35cc")]}]}]}
    feed(db, telemetry_first, "traces", telemetry, env, "copilot")
    assert usage(db, "copilot") == {"gpt-4.1": {"input": 800 + 410, "cache_read": 200 + 900,
                                                "output": 57 + 61, "reasoning": 7}}
    assert requests(db) == [("gpt-4.1", BOTH), ("gpt-4.1", BOTH)]
    assert sessions(db, "copilot") == [COPILOT_SID]


# ---------------------------------------------------------------- opencode


@ORDERS
def test_opencode_telemetry_adds_nothing_to_its_database_messages(db, tmp_path,
                                                                  telemetry_first):
    """opencode's telemetry carries no request it counts (its logs are application lines;
    token spans only with a flag, and unflushed): its database's message counts once, and
    the title request it stores nowhere is said, not guessed."""
    _, env = opencode_db(tmp_path)  # the sample's session and message, as 1.18.33 writes
    telemetry = oc.logs(oc.log_record("session.prompt", **{"session.id": OPENCODE_SID,
                                                           "service": "session.prompt"}),
                        resource={"service.name": "opencode"})
    feed(db, telemetry_first, "logs", telemetry, env, "opencode")
    assert usage(db, "opencode") == {"fake-model": {"input": 800, "cache_read": 200,
                                                    "output": 57, "reasoning": 7}}
    assert requests(db) == []  # one source per request: its sums are its requests
    assert sessions(db, "opencode") == [OPENCODE_SID]
    notes = db.execute("SELECT kind FROM session_notes").fetchall()
    assert notes == [("title_request",)]


def test_copilot_session_end_totals_are_a_floor_under_its_records(db, tmp_path):
    """A request the events file has no usage record of (a killed write), but its session's
    end totals include: counted once from the totals, and not again when its span arrives."""
    lines = (SAMPLES / "copilot" / "session-state-events.jsonl").read_text().splitlines()
    record = next(json.loads(x) for x in lines if '"session.usage_record"' in x)
    missing = json.loads(json.dumps(record))
    missing["data"]["usage"].update(inputTokens=500, outputTokens=20, cacheReadTokens=100,
                                    reasoningTokens=0, apiCallId="chatcmpl-missing")
    out = []
    for line in lines:
        row = json.loads(line)
        if row["type"] == "session.shutdown":  # the end counts both requests
            end = row["data"]["modelMetrics"]["gpt-4.1"]["usage"]
            end.update(inputTokens=1500, outputTokens=77, cacheReadTokens=300)
            line = json.dumps(row)
        out.append(line)
    folder = tmp_path / "copilot" / "session-state" / COPILOT_SID
    folder.mkdir(parents=True)
    (folder / "events.jsonl").write_text("\n".join(out) + "\n")
    env = {"HOME": str(tmp_path), "COPILOT_HOME": str(tmp_path / "copilot")}
    importer.run(db, profile.Profile(), env=env, tools=["copilot"])
    both = {"gpt-4.1": {"input": 1200, "cache_read": 300, "output": 77, "reasoning": 7}}
    assert usage(db, "copilot") == both
    receive(db, "traces", {"resourceSpans": [{
        "resource": {"attributes": oc.attrs(**{"service.name": "github-copilot"})},
        "scopeSpans": [{"scope": {"name": "github.copilot"}, "spans": [
            copilot_span(missing, "gpt-4.1", "356fe06078ac35cd")]}]}]})
    assert usage(db, "copilot") == both
    assert requests(db) == [("gpt-4.1", TELEMETRY), ("gpt-4.1", TRANSCRIPT)]
