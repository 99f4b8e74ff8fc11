"""`aitrack import` of Copilot CLI's and opencode's own files: the real files of
tests/samples (Copilot CLI 1.0.102, opencode 1.18.33), opencode's WAL database read while
a writer holds it, and Copilot's headers helper giving the agent's key to the agent only."""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from aitrack.adapters.copilot import settings as copilot_settings
from aitrack.adapters.endpoints import AgentLink
from aitrack.config import profile
from aitrack.store import importer, ledger

SAMPLES = Path(__file__).resolve().parent / "samples"  # the tools' real files
SAMPLE_SESSION = "fa43e9e2-7642-44a3-be82-342bdd8a2e79"


def samples(name: str) -> Path:
    return SAMPLES / name


@pytest.fixture
def db(home):
    connection = ledger.connect(home.ledger)
    yield connection
    connection.close()


def usage(db, tool: str) -> dict:
    out: dict = {}
    for tsid, model, kind, n in db.execute(
            "SELECT s.tool_session_id, u.model, u.token_type, u.tokens FROM usage u "
            "JOIN sessions s ON s.id = u.session_id WHERE s.tool = ?", (tool,)):
        out.setdefault(tsid, {}).setdefault(model, {})[kind] = n
    return out


def metrics(db) -> dict:
    return {(model, name): value for model, name, value in db.execute(
        "SELECT model, name, value FROM session_metrics")}


# ---------------------------------------------------------------- Copilot CLI


def copilot_home(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    base = tmp_path / "copilot"
    folder = base / "session-state" / SAMPLE_SESSION
    folder.mkdir(parents=True)
    shutil.copy(samples("copilot/session-state-events.jsonl"), folder / "events.jsonl")
    return base, {"HOME": str(tmp_path), "COPILOT_HOME": str(base)}


def test_copilot_events_count_each_usage_record_in_ledger_types(db, tmp_path):
    _, env = copilot_home(tmp_path)
    result = importer.run(db, profile.Profile(), env=env, tools=["copilot"])
    assert result.responses == 1 and not result.skipped
    # inputTokens 1000 holds the 200 cached; outputTokens 57 holds the 7 of reasoning
    assert usage(db, "copilot") == {SAMPLE_SESSION: {"gpt-4.1": {
        "input": 800, "cache_read": 200, "output": 57, "reasoning": 7}}}
    cwd, version = db.execute("SELECT cwd, tool_version FROM sessions").fetchone()
    assert (cwd, version) == ("/home/dev/src/demo", "1.0.102")
    assert importer.run(db, profile.Profile(), env=env, tools=["copilot"]).files_read == 0


def test_copilot_exporter_lines_are_the_same_requests_as_the_events(db, tmp_path):
    """The OTel file exporter's `chat` span and the events' record of one request share its
    response id: both files together count it once."""
    base, env = copilot_home(tmp_path)
    events = base / "session-state" / SAMPLE_SESSION / "events.jsonl"
    record = next(json.loads(line) for line in events.read_text().splitlines()
                  if '"session.usage_record"' in line)
    (base / "otel").mkdir()
    lines = samples("copilot/otel-file-exporter.jsonl").read_text().splitlines()
    span = json.loads(lines[0])  # `chat gpt-4.1`, then `invoke_agent` with the turn's totals
    span["attributes"]["gen_ai.conversation.id"] = SAMPLE_SESSION
    span["attributes"]["gen_ai.response.id"] = record["data"]["usage"]["apiCallId"]
    (base / "otel" / "copilot.jsonl").write_text("\n".join([json.dumps(span), *lines[1:]]) + "\n")
    result = importer.run(db, profile.Profile(), env=env, tools=["copilot"])
    assert (result.responses, result.duplicates) == (1, 1)
    assert usage(db, "copilot")[SAMPLE_SESSION]["gpt-4.1"]["input"] == 800


def test_copilot_exporter_file_alone_is_read_like_ccusage_reads_it(db, tmp_path):
    exporter = tmp_path / "elsewhere" / "otel.log"
    exporter.parent.mkdir()
    shutil.copy(samples("copilot/otel-file-exporter.jsonl"), exporter)
    env = {"HOME": str(tmp_path), "COPILOT_HOME": str(tmp_path / "none"),
           "COPILOT_OTEL_FILE_EXPORTER_PATH": str(exporter)}
    assert importer.run(db, profile.Profile(), env=env, tools=["copilot"]).responses == 1
    assert usage(db, "copilot") == {"77b45cb3-2b18-4777-92a3-e9b1679886bc": {"gpt-4.1": {
        "input": 800, "cache_read": 200, "output": 57, "reasoning": 7}}}


def test_copilot_premium_requests_and_cache_writes(db, tmp_path):
    """A GitHub-hosted model's charge (the record's `cost`) is kept per model; cache writes
    are part of Copilot's input, as its Anthropic wire showed (1234 + 567 + 8910)."""
    base, env = copilot_home(tmp_path)
    events = base / "session-state" / SAMPLE_SESSION / "events.jsonl"
    text = events.read_text().replace('"inputTokens":1000', '"inputTokens":10711').replace(
        '"cacheReadTokens":200', '"cacheReadTokens":8910').replace(
        '"cacheWriteTokens":0', '"cacheWriteTokens":567').replace('"cost":0.0', '"cost":1.0')
    events.write_text(text)
    importer.run(db, profile.Profile(), env=env, tools=["copilot"])
    assert usage(db, "copilot")[SAMPLE_SESSION]["gpt-4.1"] == {
        "input": 1234, "cache_read": 8910, "cache_creation": 567, "output": 57,
        "reasoning": 7}
    assert metrics(db) == {("gpt-4.1", "premium_requests"): 1.0}


# ---------------------------------------------------------------- opencode


SCHEMA = """
CREATE TABLE session (id TEXT PRIMARY KEY, project_id TEXT, parent_id TEXT, directory TEXT,
    title TEXT, version TEXT, time_created INTEGER, time_updated INTEGER);
CREATE TABLE message (id TEXT PRIMARY KEY, session_id TEXT, time_created INTEGER,
    time_updated INTEGER, data TEXT);
"""


def opencode_db(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """opencode.db as 1.18.33 leaves it (WAL), with the sample's session and messages."""
    sample = json.loads(samples("opencode/opencode.db.session-message-part.json").read_text())
    folder = tmp_path / "xdg" / "opencode"
    folder.mkdir(parents=True)
    path = folder / "opencode.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.executescript(SCHEMA)
    for s in sample["session"]:
        con.execute("INSERT INTO session VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (s["id"], s["project_id"], s["parent_id"], s["directory"], s["title"],
                     s["version"], s["time_created"], s["time_updated"]))
    for m in sample["message"]:
        insert(con, m["id"], m["session_id"], m["data"], m["time_updated"])
    con.close()
    return path, {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "xdg")}


def insert(con: sqlite3.Connection, mid: str, sid: str, data: dict, at: int) -> None:
    con.execute("INSERT INTO message VALUES (?, ?, ?, ?, ?)",
                (mid, sid, at, at, json.dumps(data)))


def test_opencode_messages_count_in_ledger_types_with_its_cost_and_the_title_gap(db, tmp_path):
    _, env = opencode_db(tmp_path)
    result = importer.run(db, profile.Profile(), env=env, tools=["opencode"])
    assert result.responses == 1
    # its input excludes the 200 cached, its output the 7 of reasoning
    assert usage(db, "opencode") == {"ses_db9e92701ffeKJjSZAZEzNjfjX": {"fake-model": {
        "input": 800, "cache_read": 200, "output": 57, "reasoning": 7}}}
    cwd, version = db.execute("SELECT cwd, tool_version FROM sessions").fetchone()
    assert (cwd, version) == ("/home/dev/src/demo", "1.18.33")
    # the model wrote the title: a request stored nowhere, marked as the known gap
    assert metrics(db) == {("", "unrecorded_requests"): 1.0}
    assert importer.run(db, profile.Profile(), env=env, tools=["opencode"]).files_read == 0


def assistant(tokens: int, done: bool = True, cost: float = 0.0) -> dict:
    data = {"role": "assistant", "modelID": "claude-sonnet-4-5", "providerID": "anthropic",
            "cost": cost, "time": {"created": int(time.time() * 1000)},
            "tokens": {"input": tokens, "output": 10, "reasoning": 0,
                       "cache": {"read": 0, "write": 5}}}
    if done:
        data["time"]["completed"] = data["time"]["created"] + 1
        data["finish"] = "stop"
    return data


def test_opencode_database_is_read_while_opencode_writes_it_and_left_as_it_was(db, tmp_path):
    """A writer holds an open write transaction: the import neither waits for it nor sees
    its rows, reads what was committed, and leaves the WAL to opencode (no checkpoint, no
    lock left behind: the writer commits and checkpoints at once afterwards)."""
    path, env = opencode_db(tmp_path)
    writer = sqlite3.connect(path, isolation_level=None, timeout=0)
    writer.execute("PRAGMA journal_mode = WAL")
    sid = "ses_db9e92701ffeKJjSZAZEzNjfjX"
    insert(writer, "msg_committed", sid, assistant(100, cost=0.5), int(time.time() * 1000))
    wal = Path(f"{path}-wal").stat().st_size
    writer.execute("BEGIN IMMEDIATE")
    insert(writer, "msg_uncommitted", sid, assistant(1000), int(time.time() * 1000))
    started = time.monotonic()
    first = importer.run(db, profile.Profile(), env=env, tools=["opencode"])
    assert time.monotonic() - started < 2.0
    assert first.responses == 2  # the sample's message and the committed one
    assert usage(db, "opencode")[sid]["claude-sonnet-4-5"] == {
        "input": 100, "cache_creation": 5, "output": 10}
    assert Path(f"{path}-wal").stat().st_size >= wal  # nothing checkpointed by the reader
    writer.execute("COMMIT")  # the import holds no lock
    assert writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    second = importer.run(db, profile.Profile(), env=env, tools=["opencode"])
    assert second.responses == 1
    assert usage(db, "opencode")[sid]["claude-sonnet-4-5"]["input"] == 1100
    assert metrics(db)[("claude-sonnet-4-5", "tool_cost_usd")] == 0.5
    writer.close()


def test_opencode_message_being_written_waits_for_its_end(db, tmp_path):
    path, env = opencode_db(tmp_path)
    con = sqlite3.connect(path, isolation_level=None)
    sid = "ses_db9e92701ffeKJjSZAZEzNjfjX"
    insert(con, "msg_live", sid, assistant(40, done=False), int(time.time() * 1000))
    importer.run(db, profile.Profile(), env=env, tools=["opencode"])
    assert "claude-sonnet-4-5" not in usage(db, "opencode")[sid]
    con.execute("UPDATE message SET data = ?, time_updated = ? WHERE id = 'msg_live'",
                (json.dumps(assistant(40)), int(time.time() * 1000) + 5))
    con.close()
    importer.run(db, profile.Profile(), env=env, tools=["opencode"])
    assert usage(db, "opencode")[sid]["claude-sonnet-4-5"]["input"] == 40


def test_opencode_older_message_documents_count_once_beside_the_database(db, tmp_path):
    _, env = opencode_db(tmp_path)
    sample = json.loads(samples("opencode/opencode.db.session-message-part.json").read_text())
    message = sample["message"][1]
    folder = tmp_path / "xdg" / "opencode" / "storage" / "message" / message["session_id"]
    folder.mkdir(parents=True)
    (folder / f"{message['id']}.json").write_text(json.dumps(
        {"id": message["id"], "sessionID": message["session_id"], **message["data"]}, indent=2))
    older = {"id": "msg_old", "sessionID": "ses_old", **assistant(70)}
    (folder.parent / "ses_old").mkdir()
    (folder.parent / "ses_old" / "msg_old.json").write_text(json.dumps(older, indent=2))
    result = importer.run(db, profile.Profile(), env=env, tools=["opencode"])
    assert (result.responses, result.duplicates) == (2, 1)
    assert usage(db, "opencode")["ses_old"]["claude-sonnet-4-5"]["input"] == 70


# ---------------------------------------------------------------- Copilot's headers helper


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize(("endpoints", "gets_key"), [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:{port}"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:{port}/"}, True),
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example.com"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:{port}",
      "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector.example.com/v1/traces"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:{port_prefix}"}, False),
])
def test_copilot_helper_gives_the_key_to_the_agent_only(tmp_path, endpoints, gets_key):
    """Copilot runs the helper with HOME, PATH, TMPDIR and LANG only: where its Copilot sends
    is the environment of its parent, here a shell standing in for copilot. This user holds
    the agent's port (the helper asks the OS before it prints the key)."""
    secret = tmp_path / "secret"
    secret.write_text("k3y-of-the-agent\n")
    with socket.socket() as agent_port:  # any free port: another run's agent may hold 47318
        agent_port.bind(("127.0.0.1", 0))
        agent_port.listen(1)
        port = agent_port.getsockname()[1]
        link = AgentLink(port, "x-aitrack-key", None, None, "x-aitrack-run", profile.Telemetry())
        helper = tmp_path / "otel-headers-copilot"
        helper.write_text(copilot_settings.helper_script(link, secret, windows=False))
        endpoints = {name: url.format(port=port, port_prefix=str(port)[:-1])
                     for name, url in endpoints.items()}
        out = subprocess.run(["sh", "-c", f"sh {helper}; true"], capture_output=True,
                             text=True, env={"PATH": "/usr/bin:/bin", **endpoints}, timeout=10)
    assert out.returncode == 0 and out.stderr == ""
    assert json.loads(out.stdout) == ({"x-aitrack-key": "k3y-of-the-agent"} if gets_key else {})
