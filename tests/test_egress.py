"""The egress policy: which families leave the machine, and which attributes never do."""

from __future__ import annotations

import json
import sqlite3
import sys
import time

import pytest
from google.protobuf.message import Message

from aitrack.capture import intake
from aitrack.config import paths, profile, profile_file, schema
from aitrack.domain import pricing
from aitrack.egress import otlp
from aitrack.egress import policy as egress
from aitrack.store import ledger
from test_normalized import ATTRIBUTES, ATTRIBUTES_TOML, ENDPOINT, Ledger, claude_metrics, kv

# ---------------------------------------------------------------- the profile keys


def test_the_defaults_forward_both_families_and_drop_nothing(home):
    home.write_managed_profile(ENDPOINT)
    p = profile.load(paths.resolve())
    assert p.endpoint.forward == ("normalized", "raw")
    assert p.endpoint.drop_attributes == ()
    assert p.endpoint.forward_imported is False
    policy = egress.of(p)
    assert policy.normalized and policy.raw and not policy.drop
    shown = json.loads(home.run("profile", "show", "--json").stdout)
    assert shown["endpoint"]["forward"] == ["normalized", "raw"]
    assert shown["endpoint"]["drop_attributes"] == []


def test_local_only_sends_no_family():
    policy = egress.of(profile.Profile())
    assert not policy.normalized and not policy.raw and not policy.queues_raw("metrics")


@pytest.mark.parametrize("text, problem", [
    ('forward = ["normalised"]',
     "endpoint.forward (line 3): unknown 'normalised'; must list one or both of normalized, "
     "raw (to send nothing, remove [endpoint])"),
    ("forward = []", "endpoint.forward (line 3): must list one or both of normalized, raw"),
    ('forward = "raw"', "endpoint.forward (line 3): must be an array, got string"),
    ('drop_attributes = ["user.email", "has space"]',
     "endpoint.drop_attributes (line 3): 'has space' is not an attribute name"),
    ("drop_attributes = [1]", "endpoint.drop_attributes (line 3): 1 is not an attribute name"),
    ('forward_imported = "yes"', "endpoint.forward_imported (line 3): must be a boolean, got "
                                 "string"),
    ('forward = ["normalized"]\nsignals = ["logs"]',
     'endpoint.forward (line 3): "normalized" is sent as metrics, but endpoint.signals does not '
     'list metrics: add it, or forward only "raw"'),
])
def test_each_policy_mistake_is_named_with_its_line(tmp_path, text, problem):
    path = tmp_path / "profile.toml"
    path.write_text(f'[endpoint]\nurl = "https://otlp.example.com"\n{text}\n')
    with pytest.raises(schema.ProfileError) as caught:
        profile_file.read_file(path)
    [found] = caught.value.problems
    assert found.startswith(problem), found


def test_a_logs_only_endpoint_stays_valid_with_the_default_policy(tmp_path):
    path = tmp_path / "profile.toml"
    path.write_text('[endpoint]\nurl = "https://otlp.example.com"\nsignals = ["logs"]\n')
    assert profile_file.read_file(path)["endpoint"]["signals"] == ["logs"]
    p = profile.merge([profile_file.Layer("user", str(path), profile_file.read_file(path))])
    assert not egress.of(p).normalized and egress.of(p).queues_raw("logs")


def test_the_policy_is_the_managed_profiles_whole(home):
    """[endpoint] is taken whole from the managed profile: a user cannot widen what leaves."""
    home.write_managed_profile(ENDPOINT + 'forward = ["normalized"]\n'
                               'drop_attributes = ["user.email"]\n')
    home.write_user_profile('[endpoint]\nurl = "https://mine.example.com"\n'
                            'forward = ["normalized", "raw"]\n')
    p = profile.load(paths.resolve())
    assert p.endpoint.forward == ("normalized",) and p.endpoint.drop_attributes == ("user.email",)


# ---------------------------------------------------------------- what is queued


def queued_families(db) -> tuple[list[str], list[str]]:
    """(raw signals queued, aitrack metric names queued)."""
    raw, ours = [], []
    for signal, body in db.execute("SELECT signal, body FROM outbox ORDER BY id"):
        request = otlp.decode(signal, body, otlp.PROTOBUF)
        if otlp.resource_attributes(request).get("service.name") == "aitrack":
            ours += [m.name for rm in request.resource_metrics for sm in rm.scope_metrics
                     for m in sm.metrics]
        else:
            raw.append(signal)
    return raw, ours


CODEX_LOG = {"resourceLogs": [{"resource": {"attributes": [kv("service.name", "codex_exec")]},
                               "scopeLogs": [{"logRecords": [{
                                   "timeUnixNano": str(time.time_ns()),
                                   "attributes": [kv("event.name", "codex.sse_event"),
                                                  kv("event.kind", "response.completed"),
                                                  kv("conversation.id", "t-1"),
                                                  kv("model", "gpt-5"),
                                                  kv("input_token_count", "100"),
                                                  kv("output_token_count", "9")]}]}]}]}


@pytest.mark.parametrize("forward, raw, ours", [
    ('["normalized"]', [], ["aitrack.cost.usage", "aitrack.token.usage"]),
    ('["raw"]', ["metrics", "logs"], []),
    ('["normalized", "raw"]', ["metrics", "logs"],
     ["aitrack.cost.usage", "aitrack.token.usage"]),
])
def test_forward_decides_which_families_are_queued(home, forward, raw, ours):
    led = Ledger(home, ENDPOINT + f"forward = {forward}\n" + ATTRIBUTES_TOML)
    led.receive("metrics", claude_metrics("s-1", {"input": 100, "output": 5}, cost=0.02))
    led.receive("logs", CODEX_LOG)
    led.emit()
    assert queued_families(led.db) == (raw, ours)
    # the ledger counts the same whatever leaves the machine
    assert dict(led.db.execute("SELECT model, SUM(tokens) FROM usage GROUP BY model")) == {
        "claude-opus-5-5": 105, "gpt-5": 109}


def everywhere(key: str, value: str) -> dict:
    """A trace export carrying `key` at every level a backend could read it."""
    attr = [kv(key, value), kv("kept", "yes")]
    return {"resourceSpans": [{
        "resource": {"attributes": [kv("service.name", "tool"), *attr]},
        "scopeSpans": [{"scope": {"name": "s", "attributes": attr}, "spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": "op", "startTimeUnixNano": "1", "endTimeUnixNano": "2", "attributes": attr,
            "events": [{"name": "e", "timeUnixNano": "1", "attributes": attr}],
            "links": [{"traceId": "5b8efff798038103d269b633813fc60c",
                       "spanId": "eee19b7ec3c1b175", "attributes": attr}]}]}]}]}


def attribute_keys(message) -> list[list[str]]:
    """Every attribute list in an OTLP message, as its keys, found by walking all fields."""
    found = []

    def walk(m) -> None:
        for field, value in m.ListFields():
            if field.name in ("attributes", "filtered_attributes"):
                found.append([kv.key for kv in value])
            elif field.message_type is not None:
                for item in ([value] if isinstance(value, Message) else value):
                    walk(item)
    walk(message)
    return found


def test_drop_attributes_removes_a_name_at_every_level_of_a_raw_payload(home):
    led = Ledger(home, ENDPOINT + 'signals = ["metrics", "logs", "traces"]\n'
                 'drop_attributes = ["Secret.Project"]\n' + ATTRIBUTES_TOML)
    db, receiver = led.db, "agent"
    intake.Inbox(db, receiver, lambda: None).put(intake.Delivery(
        "traces", otlp.JSON, json.dumps(everywhere("secret.project", "apollo")).encode(), None))
    context = intake.Context(ATTRIBUTES, ("metrics", "logs", "traces"), pricing.load(),
                             egress.of(led.profile))
    assert intake.Processor(db, receiver, context).drain(5) == 0
    [(body,)] = db.execute("SELECT body FROM outbox WHERE signal = 'traces'").fetchall()
    assert b"apollo" not in body
    lists = attribute_keys(otlp.decode("traces", body, otlp.PROTOBUF))
    assert len(lists) == 5  # resource, scope, span, event, link
    assert all("secret.project" not in keys and "kept" in keys for keys in lists)


def test_dropping_the_session_id_from_what_is_sent_leaves_the_ledger_whole(home):
    led = Ledger(home, ENDPOINT + 'drop_attributes = ["session.id", "user.email"]\n'
                 + ATTRIBUTES_TOML)
    led.receive("metrics", claude_metrics("s-1", {"input": 100}))
    led.receive("metrics", claude_metrics("s-2", {"input": 1}))
    assert led.db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 2
    led.emit()
    for signal, body in led.db.execute("SELECT signal, body FROM outbox"):
        assert b"s-1" not in body and b"dev@example.com" not in body
        for keys in attribute_keys(otlp.decode(signal, body, otlp.PROTOBUF)):
            assert "session.id" not in keys and "user.email" not in keys
            assert "user.id" not in keys or keys.count("user.id") == 1


def test_drop_attributes_applies_to_aitracks_own_metrics(home):
    led = Ledger(home, ENDPOINT + 'forward = ["normalized"]\n'
                 'drop_attributes = ["model", "team.id", "service.instance.id"]\n'
                 + ATTRIBUTES_TOML)
    led.receive("metrics", claude_metrics("s-1", {"input": 100}, cost=0.5))
    led.emit()
    [point, cost] = sorted(led.points(), key=lambda p: p["metric"], reverse=True)
    assert point["attrs"] == {"tool": "claude", "type": "input", "source": "telemetry"}
    assert cost["attrs"] == {"tool": "claude", "cost_source": "reported"}
    assert "team.id" not in point["resource"] and "service.instance.id" not in point["resource"]
    assert point["resource"]["cost_center"] == ATTRIBUTES["cost_center"]


def test_nothing_dropped_leaves_payloads_byte_for_byte(home):
    led = Ledger(home)
    payload = everywhere("secret.project", "apollo")
    request = otlp.decode("traces", json.dumps(payload).encode(), otlp.JSON)
    before = request.SerializeToString()
    egress.of(led.profile).strip(request)
    assert request.SerializeToString() == before


# ---------------------------------------------------------------- a wrapped run


CHILD = r"""
import json, os, sys, time, urllib.request
key, value = os.environ["OTEL_EXPORTER_OTLP_HEADERS"].split("=", 1)
base = os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
def kv(k, v):
    return {"key": k, "value": {"stringValue": v}}
point = {"sum": 640, "count": "1", "timeUnixNano": str(time.time_ns()), "attributes": [
    kv("gen_ai.token.type", "input"), kv("gen_ai.response.model", "gpt-5")]}
body = {"resourceMetrics": [{"resource": {"attributes": [kv("service.name", "tool")]},
        "scopeMetrics": [{"metrics": [{"name": "gen_ai.client.token.usage",
        "histogram": {"aggregationTemporality": 1, "dataPoints": [point]}}]}]}]}
logs = {"resourceLogs": [{"resource": {"attributes": [kv("service.name", "tool")]},
        "scopeLogs": [{"logRecords": [{"body": {"stringValue": "hello"}}]}]}]}
for signal, data in (("metrics", body), ("logs", logs)):
    request = urllib.request.Request(f"{base}/v1/{signal}", data=json.dumps(data).encode(),
        headers={"Content-Type": "application/json", key: value})
    assert urllib.request.urlopen(request).status == 200
"""


@pytest.mark.parametrize("forward", ['["normalized"]', '["raw"]'])
def test_a_wrapped_run_queues_what_its_policy_forwards(home, tmp_path, forward):
    home.write_managed_profile(ENDPOINT + f"forward = {forward}\nflush_timeout_s = 0.2\n"
                               + ATTRIBUTES_TOML)
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    result = home.run("run", "--", sys.executable, str(child))
    assert result.returncode == 0, result.stderr
    db = sqlite3.connect(home.ledger)
    assert db.execute("SELECT SUM(tokens) FROM usage").fetchone()[0] == 640
    raw, ours = queued_families(db)
    if forward == '["normalized"]':
        assert raw == [] and ours == ["aitrack.cost.usage", "aitrack.session.count",
                                      "aitrack.token.usage"]
    else:
        assert sorted(raw) == ["logs", "metrics"] and ours == []
    db.close()
    # a second look finds nothing new to send
    led = Ledger(home, ENDPOINT + f"forward = {forward}\n" + ATTRIBUTES_TOML)
    assert led.emit().rows == 0
    assert ledger.connect(home.ledger).execute("SELECT COUNT(*) FROM emission_due").fetchone() \
        == (0,)
