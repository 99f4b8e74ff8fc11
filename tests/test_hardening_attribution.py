"""Issue 13, finding 4: the enforced attributes hold at every level a backend may read them.

A tool (or anything holding its receiver key) set `user.id=attacker` and `team.id=evil-team`
on datapoints, log records, spans and scopes, and `User.Id` on the resource: all of it
reached the org endpoint next to the profile's values.
"""

from __future__ import annotations

import json

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

import otlp_client as oc
from aitrack.config.attributes import attribute_key, reserved
from aitrack.egress import otlp
from aitrack.egress.policy import Policy
from org_endpoint import profile_toml

pytest_plugins = ("org_endpoint",)  # fixtures: authority, org, token

ENFORCED = {"user.id": "dev-42", "team.id": "platform-eng", "cost_center": "CC-4200"}
EVIL = {"user.id": "attacker", "User.Id": "attacker", " TEAM.ID": "evil-team",
        "team.id": "evil-team", "COST_CENTER": "CC-0"}


def hostile_metrics(evil: dict[str, str] = EVIL) -> dict:
    point = oc.point(100, **{"gen_ai.token.type": "input", "gen_ai.response.model": "m",
                             **evil})
    point["exemplars"] = [{"asInt": "1", "timeUnixNano": "2000",
                           "filteredAttributes": oc.attrs(**evil)}]
    data = oc.metrics(oc.sum_metric("gen_ai.client.token.usage", [point]),
                      resource={"service.name": "tool", **evil})
    data["resourceMetrics"][0]["scopeMetrics"][0]["scope"]["attributes"] = oc.attrs(**evil)
    return data


def hostile_logs(evil: dict[str, str] = EVIL) -> dict:
    data = oc.logs(oc.log_record("event", **{"event.name": "api_request", **evil}),
                   resource={"service.name": "tool", **evil})
    data["resourceLogs"][0]["scopeLogs"][0]["scope"]["attributes"] = oc.attrs(**evil)
    return data


def hostile_traces(evil: dict[str, str] = EVIL) -> dict:
    data = oc.spans()
    block = data["resourceSpans"][0]
    block["resource"]["attributes"] = oc.attrs(**{"service.name": "tool", **evil})
    block["scopeSpans"][0]["scope"] = {"name": "s", "attributes": oc.attrs(**evil)}
    span = block["scopeSpans"][0]["spans"][0]
    span["attributes"] = oc.attrs(**{"ok": "1", **evil})
    span["events"] = [{"timeUnixNano": "1500", "name": "e", "attributes": oc.attrs(**evil)}]
    span["links"] = [{"traceId": "5b8efff798038103d269b633813fc60c",
                      "spanId": "eee19b7ec3c1b174", "attributes": oc.attrs(**evil)}]
    return data


def attribute_lists(message) -> list[tuple[str, list[tuple[str, str]]]]:
    """(level, [(key, value)]) for every attribute list in an export request."""
    found = []

    def walk(node, level: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("attributes", "filteredAttributes") and isinstance(value, list):
                    found.append((level, [(kv["key"], json.dumps(kv.get("value")))
                                          for kv in value]))
                else:
                    walk(value, key)
        elif isinstance(node, list):
            for item in node:
                walk(item, level)

    walk(json_format.MessageToDict(message), "request")
    return found


def assert_enforced(message) -> None:
    lists = attribute_lists(message)
    assert lists
    keys = {k.strip().casefold() for k in ENFORCED}
    for level, pairs in lists:
        colliding = [(k, v) for k, v in pairs if k.strip().casefold() in keys]
        if level == "resource":
            assert sorted(colliding) == sorted(
                (k, json.dumps({"stringValue": v})) for k, v in ENFORCED.items()), colliding
        else:
            assert colliding == [], (level, colliding)


def test_enforce_holds_at_every_level_in_any_case():
    for signal, payload in (("metrics", hostile_metrics()), ("logs", hostile_logs()),
                            ("traces", hostile_traces())):
        request = otlp.decode(signal, json.dumps(payload).encode(), otlp.JSON)
        otlp.enforce_resource(request, ENFORCED)
        assert_enforced(request)


def test_enforce_keeps_everything_else():
    request = otlp.decode("metrics", json.dumps(hostile_metrics()).encode(), otlp.JSON)
    otlp.enforce_resource(request, ENFORCED)
    point = request.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0]
    assert {kv.key for kv in point.attributes} == {"gen_ai.token.type", "gen_ai.response.model"}
    assert point.as_int == 100
    resource = {kv.key for kv in request.resource_metrics[0].resource.attributes}
    assert resource == {"service.name", *ENFORCED}


def test_an_untouched_payload_is_not_rewritten():
    """Payloads without collisions keep their bytes below the resource (no needless work)."""
    clean = oc.metrics(oc.sum_metric("m", [oc.point(1, a="b")]))
    request = otlp.decode("metrics", json.dumps(clean).encode(), otlp.JSON)
    before = request.resource_metrics[0].scope_metrics[0].SerializeToString()
    otlp.enforce(request, ENFORCED)
    assert request.resource_metrics[0].scope_metrics[0].SerializeToString() == before


def test_what_reaches_the_org_endpoint_carries_only_the_profiles_attribution(
        home, org, authority, keychain_account, token, tmp_path):
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account,
                                            signals=("metrics", "logs", "traces"),
                                            attributes=ENFORCED))
    plan = oc.plan(tmp_path / "plan", [("metrics", hostile_metrics()), ("logs", hostile_logs()),
                                       ("traces", hostile_traces())])
    result = home.run("run", "--", str(oc.sender(tmp_path)), env={"OTLP_SEND": str(plan)})
    assert result.returncode == 0, result.stderr
    flushed = home.run("flush")
    assert flushed.returncode == 0, flushed.stderr
    got = {r.signal: r.message for r in org.accepted()}
    assert set(got) == {"metrics", "logs", "traces"}, got
    for message in got.values():
        assert_enforced(message)
    metrics = got["metrics"]
    assert isinstance(metrics, ExportMetricsServiceRequest)
    resource = {kv.key: kv.value.string_value
                for kv in metrics.resource_metrics[0].resource.attributes}
    assert resource["user.id"] == "dev-42" and resource["team.id"] == "platform-eng"


# ---------------------------------------------------------------- issue 18: look-alike keys

# Each reached the org next to the profile's value (red team, issue 18).
LOOKALIKES = {"team_id": "evil", "team\u2024id": "evil", "team.id\u200b": "evil",
              "cost-center": "CC-0", "costcenter": "CC-0", "COST\uff3fCENTER": "CC-0",
              "user_email": "ceo@corp.example", "user-id": "ceo", "\u202euser.id": "ceo"}
CLIENT_SENT = {"aitrack.profile.integrity": "ok", "aitrack.identity.source": "managed",
               "AITRACK_PROFILE_INTEGRITY": "ok"}
ENFORCED_WITH_EMAIL = {**ENFORCED, "user.email": "dev@example.com"}


def lookalike_payloads() -> list[tuple[str, dict]]:
    evil = {**LOOKALIKES, **CLIENT_SENT}
    return [("metrics", hostile_metrics(evil)), ("logs", hostile_logs(evil)),
            ("traces", hostile_traces(evil))]


def assert_no_lookalike(message, enforced: dict[str, str]) -> None:
    wanted = {attribute_key(k) for k in enforced}
    for level, pairs in attribute_lists(message):
        alike = [(k, v) for k, v in pairs if attribute_key(k) in wanted or reserved(k)]
        if level == "resource":
            assert sorted(alike) == sorted((k, json.dumps({"stringValue": v}))
                                           for k, v in enforced.items()), alike
        else:
            assert alike == [], (level, alike)


def test_look_alike_keys_and_client_sent_aitrack_keys_never_pass():
    for signal, payload in lookalike_payloads():
        request = otlp.decode(signal, json.dumps(payload).encode(), otlp.JSON)
        otlp.enforce(request, ENFORCED_WITH_EMAIL)
        assert_no_lookalike(request, ENFORCED_WITH_EMAIL)


def test_aitracks_own_integrity_marker_is_the_one_sent():
    enforced = {**ENFORCED, "aitrack.profile.integrity": "managed-profile-overridden"}
    for signal, payload in lookalike_payloads():
        request = otlp.decode(signal, json.dumps(payload).encode(), otlp.JSON)
        otlp.enforce(request, enforced)
        assert_no_lookalike(request, enforced)


def test_dropped_attributes_go_in_every_spelling():
    policy = Policy(frozenset({"normalized"}), frozenset({attribute_key("user.email")}))
    for signal, payload in lookalike_payloads():
        request = otlp.decode(signal, json.dumps(payload).encode(), otlp.JSON)
        otlp.enforce(request, ENFORCED_WITH_EMAIL)
        policy.strip(request)
        for _, pairs in attribute_lists(request):
            assert not [k for k, _ in pairs if attribute_key(k) == "useremail"], pairs


def test_look_alikes_do_not_reach_the_org_endpoint(home, org, authority, keychain_account,
                                                   token, tmp_path):
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account,
                                            signals=("metrics", "logs", "traces"),
                                            attributes=ENFORCED_WITH_EMAIL))
    plan = oc.plan(tmp_path / "plan", lookalike_payloads())
    result = home.run("run", "--", str(oc.sender(tmp_path)), env={"OTLP_SEND": str(plan)})
    assert result.returncode == 0, result.stderr
    assert home.run("flush").returncode == 0
    got = {r.signal: r.message for r in org.accepted()}
    assert set(got) == {"metrics", "logs", "traces"}, got
    for message in got.values():
        assert_no_lookalike(message, ENFORCED_WITH_EMAIL)
