"""aitrack's own metric family, built from a real ledger: once per session and model.

Payloads go the way a receiver's do (the inbox, then the processor: decoded, attributes
enforced, ledgered); what `normalized.emit` queued is read back from the outbox.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import Counter

import pytest

from aitrack.capture import intake
from aitrack.config import paths, profile
from aitrack.domain import pricing
from aitrack.domain.records import TranscriptSession
from aitrack.egress import normalized, otlp
from aitrack.egress.policy import of as egress_policy
from aitrack.store import ledger, migrations

pytest_plugins = ("org_endpoint",)  # fixtures: authority, org, token, child

ENDPOINT = '[endpoint]\nurl = "https://127.0.0.1:9"\n'  # never contacted: rows stay queued
ATTRIBUTES = {"team.id": "platform-eng", "cost_center": "CC-4200", "user.email": "dev@example.com"}
ATTRIBUTES_TOML = "[attributes]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in ATTRIBUTES.items())
CLAUDE = "claude-opus-5-5"


def kv(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def claude_metrics(session: str, tokens: dict[str, int], cost: float | None = None,
                   model: str = CLAUDE, cumulative: bool = False, start: int = 0) -> dict:
    """Claude Code's own export: token.usage per type (its names), cost.usage."""
    when = str(time.time_ns())

    def point(value, **attrs):
        key = "asDouble" if isinstance(value, float) else "asInt"
        return {key: value if isinstance(value, float) else str(value), "timeUnixNano": when,
                "startTimeUnixNano": str(start),
                "attributes": [kv("session.id", session), kv("model", model),
                               *(kv(k, v) for k, v in attrs.items())]}

    sums = [("claude_code.token.usage", [point(v, type=t) for t, v in tokens.items()])]
    if cost is not None:
        sums.append(("claude_code.cost.usage", [point(cost)]))
    temporality = 2 if cumulative else 1
    return {"resourceMetrics": [{
        "resource": {"attributes": [kv("service.name", "claude-code"),
                                    kv("service.version", "2.1.328")]},
        "scopeMetrics": [{"scope": {"name": "com.anthropic.claude_code"}, "metrics": [
            {"name": name, "sum": {"aggregationTemporality": temporality, "isMonotonic": True,
                                   "dataPoints": points}} for name, points in sums]}]}]}


def codex_logs(conversation: str, responses: list[dict[str, int]], model: str = "gpt-5") -> dict:
    """Codex's `response.completed` log events (OpenAI semantics: input includes cached)."""
    records = [{"timeUnixNano": str(time.time_ns()), "body": {"stringValue": "sse"},
                "attributes": [kv("event.name", "codex.sse_event"),
                               kv("event.kind", "response.completed"),
                               kv("conversation.id", conversation), kv("model", model),
                               kv("originator", "codex_exec"),
                               *(kv(f"{k}_token_count", str(v)) for k, v in r.items())]}
               for r in responses]
    return {"resourceLogs": [{"resource": {"attributes": [kv("service.name", "codex_exec")]},
                              "scopeLogs": [{"logRecords": records}]}]}


class Ledger:
    """One aitrack home's ledger, fed as the receivers feed it."""

    def __init__(self, home, profile_text: str = ENDPOINT + ATTRIBUTES_TOML):
        self.home = home
        self.configure(profile_text)
        self.db = ledger.connect(home.ledger)

    def configure(self, text: str) -> None:
        self.home.write_managed_profile(text)
        self.profile = profile.load(paths.resolve())

    def receive(self, signal: str, data: dict | bytes, run_id: str | None = None) -> None:
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        receiver = run_id or "agent"
        intake.Inbox(self.db, receiver, lambda: None).put(
            intake.Delivery(signal, otlp.JSON, body, run_id))
        context = intake.Context(ATTRIBUTES, ("metrics", "logs"), pricing.load(),
                                 egress_policy(self.profile))
        processor = intake.Processor(self.db, receiver, context)
        assert processor.drain(5) == 0

    def run(self, tool: str = "claude") -> str:
        run_id = f"{time.time_ns():032x}"[-32:]
        ledger.start_run(self.db, ledger.Run(run_id, tool, time.time(), "/w", "w", ATTRIBUTES,
                                             "receiver"))
        return run_id

    def end(self, run_id: str, exit_code: int = 0, **kw) -> list[str]:
        return ledger.end_run(self.db, run_id, time.time(), exit_code, **kw)

    def emit(self, ids=None, **kw) -> normalized.Emission:
        return normalized.emit(self.db, self.profile, ids, **kw)

    def points(self) -> list[dict]:
        """Every aitrack datapoint queued, oldest first."""
        out = []
        for body, in self.db.execute("SELECT body FROM outbox WHERE signal = 'metrics' "
                                     "ORDER BY id"):
            request = otlp.decode("metrics", body, otlp.PROTOBUF)
            resource = otlp.resource_attributes(request)
            if resource.get("service.name") != "aitrack":
                continue
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        for dp in m.sum.data_points:
                            out.append({
                                "metric": m.name, "unit": m.unit, "scope": sm.scope.name,
                                "attrs": {a.key: a.value.string_value for a in dp.attributes},
                                "value": dp.as_int if dp.WhichOneof("value") == "as_int"
                                else dp.as_double,
                                "start": dp.start_time_unix_nano, "end": dp.time_unix_nano,
                                "temporality": m.sum.aggregation_temporality,
                                "monotonic": m.sum.is_monotonic, "resource": resource})
        return out

    def usage(self, sid: str) -> dict[tuple[str, str], int]:
        return {(m, t): n for m, t, n in self.db.execute(
            "SELECT model, token_type, tokens FROM usage WHERE session_id = ?", (sid,))}

    def sessions(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM sessions ORDER BY started_at")]


def sums(points: list[dict], metric: str, *keys: str) -> dict:
    out: Counter = Counter()
    for p in points:
        if p["metric"] == metric:
            out[tuple(p["attrs"].get(k) for k in keys)] += p["value"]
    return dict(out)


@pytest.fixture
def led(home):
    return Ledger(home)


# ---------------------------------------------------------------- exactly once


def test_a_wrapped_claude_session_is_sent_once_as_the_ledger_has_it(led):
    run_id = led.run()
    payload = claude_metrics("s-1", {"input": 120, "output": 40, "cacheRead": 900,
                                     "cacheCreation": 300}, cost=0.0425)
    led.receive("metrics", payload, run_id)
    [sid] = led.end(run_id)
    done = led.emit([sid], receiver=run_id)
    assert done.rows == 1
    points = led.points()
    assert sums(points, "aitrack.token.usage", "tool", "model", "type", "source") == {
        ("claude", CLAUDE, "input", "telemetry"): 120,
        ("claude", CLAUDE, "output", "telemetry"): 40,
        ("claude", CLAUDE, "cache_read", "telemetry"): 900,
        ("claude", CLAUDE, "cache_creation", "telemetry"): 300}
    assert {(m, t): n for (_, m, t, _), n in sums(
        points, "aitrack.token.usage", "tool", "model", "type", "source").items()} == \
        led.usage(sid)
    cost = [p for p in points if p["metric"] == "aitrack.cost.usage"]
    assert [(p["attrs"], p["value"]) for p in cost] == [
        ({"tool": "claude", "model": CLAUDE, "cost_source": "reported"}, pytest.approx(0.0425))]
    [count] = [p for p in points if p["metric"] == "aitrack.session.count"]
    assert (count["attrs"], count["value"]) == (
        {"tool": "claude", "entrypoint": "unknown", "exit_status": "ok"}, 1)
    # the run's own rows: its forwarder sends them first
    assert led.db.execute("SELECT DISTINCT session_id FROM outbox").fetchall() == [(run_id,)]

    # the same bytes again (a tool retrying its export), another emission: nothing more
    led.receive("metrics", payload, run_id)
    assert led.emit().rows == 0 and led.emit([sid]).rows == 0
    assert len(led.points()) == len(points)


def test_a_growing_session_sends_only_the_increase(led):
    led.receive("metrics", claude_metrics("s-1", {"input": 100, "output": 10}, cost=0.01))
    assert led.emit().rows == 1
    led.receive("metrics", claude_metrics("s-1", {"input": 50, "output": 5}, cost=0.004))
    assert led.emit().rows == 1
    second = led.points()[-3:]
    assert {(p["metric"], p["attrs"].get("type")): p["value"] for p in second} == {
        ("aitrack.token.usage", "input"): 50, ("aitrack.token.usage", "output"): 5,
        ("aitrack.cost.usage", None): pytest.approx(0.004)}
    [sid] = led.sessions()
    assert sums(led.points(), "aitrack.token.usage", "model", "type") == {
        (m, t): n for (m, t), n in led.usage(sid).items()}
    assert sum(p["value"] for p in led.points() if p["metric"] == "aitrack.cost.usage") == \
        pytest.approx(led.db.execute("SELECT value FROM session_metrics WHERE name = 'cost_usd'")
                      .fetchone()[0])


def test_cumulative_exports_of_the_same_series_send_their_increase_once(led):
    start = time.time_ns() - 10**9
    for total in (100, 100, 250):  # two exports of the same total, then more
        led.receive("metrics", claude_metrics("s-1", {"input": total}, cumulative=True,
                                              start=start))
        led.emit()
    assert [p["value"] for p in led.points() if p["metric"] == "aitrack.token.usage"] == [100, 150]


def test_a_transcript_imported_again_adds_nothing(led):
    session = TranscriptSession("codex", "t-1", time.time() - 60, time.time(),
                                usage={"gpt-5": {"input": 700, "cache_read": 300, "output": 90,
                                                 "reasoning": 40}})
    led.configure(ENDPOINT + "forward_imported = true\n" + ATTRIBUTES_TOML)
    for _ in range(2):
        with ledger.write(led.db):
            ledger.record_transcript(led.db, session, ATTRIBUTES)
        led.emit(now=time.time() + normalized.IDLE_S)
    points = led.points()
    assert sums(points, "aitrack.token.usage", "type", "source") == {
        ("input", "transcript"): 700, ("cache_read", "transcript"): 300,
        ("output", "transcript"): 90, ("reasoning", "transcript"): 40}
    assert sums(points, "aitrack.session.count", "tool") == {("codex",): 1}


def test_telemetry_then_a_larger_transcript_sends_the_difference_from_the_transcript(led):
    led.receive("logs", codex_logs("t-1", [{"input": 1000, "cached": 400, "output": 50}]))
    led.emit()
    [sid] = led.sessions()
    bigger = TranscriptSession("codex", "t-1", time.time() - 60, time.time(),
                               usage={"gpt-5": {"input": 900, "cache_read": 400, "output": 50}})
    with ledger.write(led.db):
        ledger.record_transcript(led.db, bigger, ATTRIBUTES)
    led.emit()
    tokens = [p for p in led.points() if p["metric"] == "aitrack.token.usage"]
    assert [(p["attrs"]["type"], p["attrs"]["source"], p["value"]) for p in tokens] == [
        ("cache_read", "telemetry", 400), ("input", "telemetry", 600),
        ("output", "telemetry", 50), ("input", "transcript", 300)]
    assert led.usage(sid)[("gpt-5", "input")] == 900


# ---------------------------------------------------------------- cost


def test_an_estimated_cost_names_its_price_table_and_equals_the_report(led, home):
    led.receive("logs", codex_logs("t-1", [{"input": 12000, "cached": 8000, "output": 700,
                                           "reasoning": 300}]))
    led.emit()
    [cost] = [p for p in led.points() if p["metric"] == "aitrack.cost.usage"]
    table = pricing.load()
    expected = pricing.estimate({"input": 4000, "cache_read": 8000, "output": 700,
                                 "reasoning": 300}, table.price_for("gpt-5"))
    assert cost["value"] == pytest.approx(expected) and expected > 0
    assert cost["attrs"] == {"tool": "codex", "model": "gpt-5", "cost_source": "estimated",
                             "prices_as_of": table.as_of}
    report = json.loads(home.run("report", "session", "--json").stdout)
    assert report["sessions"][0]["cost_usd"] == pytest.approx(cost["value"], abs=1e-6)


def test_a_profile_price_is_named_as_the_profiles(led):
    led.configure(ENDPOINT + ATTRIBUTES_TOML + '[prices."house-model"]\ninput = 2.0\n'
                  "output = 8.0\n")
    led.receive("logs", codex_logs("t-1", [{"input": 1_000_000, "output": 1_000_000}],
                                   model="house-model"))
    led.emit()
    [cost] = [p for p in led.points() if p["metric"] == "aitrack.cost.usage"]
    assert cost["value"] == pytest.approx(10.0)
    assert cost["attrs"]["prices_as_of"] == "profile"


def test_an_unpriced_model_has_tokens_but_no_cost_datapoint(led):
    led.receive("logs", codex_logs("t-1", [{"input": 500, "output": 20}], model="mystery-9"))
    led.emit()
    points = led.points()
    assert sums(points, "aitrack.token.usage", "model", "type") == {
        ("mystery-9", "input"): 500, ("mystery-9", "output"): 20}
    assert [p for p in points if p["metric"] == "aitrack.cost.usage"] == []
    # priced later: only the cost of the tokens that come after is sent
    led.configure(ENDPOINT + ATTRIBUTES_TOML + '[prices."mystery-9"]\ninput = 1.0\n'
                  "output = 1.0\n")
    led.receive("logs", codex_logs("t-1", [{"input": 1_000_000, "output": 0}],
                                   model="mystery-9"))
    led.emit()
    [cost] = [p for p in led.points() if p["metric"] == "aitrack.cost.usage"]
    assert cost["value"] == pytest.approx(1.0)


# ---------------------------------------------------------------- shape of what is sent


def test_delta_sums_with_the_profiles_resource_and_no_session_id(led):
    for n, session in enumerate(("s-1", "s-2")):
        led.receive("metrics", claude_metrics(session, {"input": 10 * (n + 1)}, cost=0.5))
    led.emit(now=time.time())
    first = led.points()
    led.receive("metrics", claude_metrics("s-1", {"input": 5}))
    led.emit(now=time.time() + 60)
    second = led.points()[len(first):]
    # two sessions, one series: one datapoint adding both
    assert [(p["metric"], p["value"]) for p in first] == [
        ("aitrack.cost.usage", pytest.approx(1.0)), ("aitrack.token.usage", 30)]
    for p in first + second:
        assert p["temporality"] == 1 and p["monotonic"] is True  # DELTA
        assert p["start"] < p["end"]
        assert "session.id" not in p["attrs"]
        assert p["scope"] == "aitrack"
        resource = p["resource"]
        assert {k: resource.get(k) for k in ATTRIBUTES} == ATTRIBUTES
        assert resource["service.name"] == "aitrack" and resource["service.version"]
        assert resource["user.id"]  # the OS login name, as on every payload
    assert {p["unit"] for p in first} == {"tokens", "USD"}
    assert second[0]["start"] == first[0]["end"]  # intervals follow one another
    instance = {p["resource"]["service.instance.id"] for p in first + second}
    assert len(instance) == 1


def test_a_profile_attribute_named_like_a_datapoint_attribute_wins_on_the_resource(led):
    led.configure(ENDPOINT + ATTRIBUTES_TOML + '"tool" = "house-policy"\n')
    led.receive("metrics", claude_metrics("s-1", {"input": 10}))
    led.emit()
    points = led.points()
    assert {p["metric"] for p in points} == {"aitrack.token.usage", "aitrack.cost.usage"}
    for p in points:
        assert p["resource"]["tool"] == "house-policy" and "tool" not in p["attrs"]


# ---------------------------------------------------------------- sessions


def test_a_session_without_a_wrapper_is_counted_once_after_it_went_quiet(led):
    led.receive("logs", codex_logs("t-1", [{"input": 10, "output": 1}]))
    led.emit()
    assert sums(led.points(), "aitrack.session.count", "tool") == {}
    later = time.time() + normalized.IDLE_S + 1
    led.emit(now=later)
    led.emit(now=later + 600)
    assert sums(led.points(), "aitrack.session.count", "tool", "entrypoint", "exit_status") == {
        ("codex", "codex_exec", "unknown"): 1}
    assert led.db.execute("SELECT COUNT(*) FROM emission_due").fetchone()[0] == 0


def test_a_running_wrapper_keeps_its_session_open(led):
    run_id = led.run("codex")
    led.receive("logs", codex_logs("t-1", [{"input": 10, "output": 1}]), run_id)
    led.emit(now=time.time() + normalized.IDLE_S + 1)  # quiet, but its wrapper still runs
    assert sums(led.points(), "aitrack.session.count", "tool") == {}
    led.end(run_id, exit_code=130)
    led.emit()
    assert sums(led.points(), "aitrack.session.count", "exit_status") == {("signal",): 1}


def test_a_run_without_a_tool_session_counts_as_a_failed_session(led):
    run_id = led.run("codex")
    [sid] = led.end(run_id, exit_code=2)
    led.emit([sid])
    assert [(p["metric"], p["attrs"], p["value"]) for p in led.points()] == [
        ("aitrack.session.count",
         {"tool": "codex", "entrypoint": "unknown", "exit_status": "error"}, 1)]


@pytest.mark.parametrize("code, status", [(None, "unknown"), (0, "ok"), (1, "error"),
                                          (127, "error"), (130, "signal"), (137, "signal"),
                                          (143, "signal"), (-9, "signal"), (255, "error")])
def test_exit_status_classes(code, status):
    assert normalized.status_class(code) == status


def test_a_runs_emission_touches_only_its_own_sessions(led):
    led.receive("metrics", claude_metrics("other", {"input": 999}))
    run_id = led.run()
    led.receive("metrics", claude_metrics("mine", {"input": 7}), run_id)
    ids = led.end(run_id)
    led.emit(ids, receiver=run_id)
    assert sums(led.points(), "aitrack.token.usage", "type") == {("input",): 7}
    led.emit()  # the agent's round: the other session now
    assert sums(led.points(), "aitrack.token.usage", "type") == {("input",): 1006}


# ---------------------------------------------------------------- policy and history


def test_local_only_queues_nothing_and_never_sends_that_usage_later(led):
    led.configure(ATTRIBUTES_TOML)
    led.receive("metrics", claude_metrics("s-1", {"input": 100}, cost=0.1))
    assert led.emit().rows == 0
    assert led.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    led.configure(ENDPOINT + ATTRIBUTES_TOML)
    assert led.emit().rows == 0
    led.receive("metrics", claude_metrics("s-1", {"input": 1}, cost=0.001))
    led.emit()
    assert sums(led.points(), "aitrack.token.usage", "type") == {("input",): 1}
    assert sums(led.points(), "aitrack.cost.usage", "model") == {
        (CLAUDE,): pytest.approx(0.001)}


@pytest.mark.parametrize("opt_in", [False, True])
def test_imported_sessions_are_sent_only_where_the_profile_opts_in(led, opt_in):
    led.configure(ENDPOINT + f"forward_imported = {str(opt_in).lower()}\n" + ATTRIBUTES_TOML)
    old = TranscriptSession("claude", "old-1", time.time() - 7200, time.time() - 7000,
                            entrypoint="claude-vscode",
                            usage={CLAUDE: {"input": 10, "output": 3}})
    with ledger.write(led.db):
        ledger.record_transcript(led.db, old, ATTRIBUTES)
    led.emit()
    got = sums(led.points(), "aitrack.token.usage", "type")
    assert got == ({("input",): 10, ("output",): 3} if opt_in else {})
    counted = sums(led.points(), "aitrack.session.count", "entrypoint")
    assert counted == ({("claude-vscode",): 1} if opt_in else {})
    assert led.db.execute("SELECT COUNT(*) FROM emission_due").fetchone()[0] == 0


def test_a_fresh_transcript_waits_for_the_wrapper_that_may_claim_it(led):
    """A wrapped run imports its rollout before it records its end: until then the session
    looks imported, and must not be decided as such while it is fresh."""
    run_id = led.run("codex")
    fresh = TranscriptSession("codex", "t-9", time.time() - 5, time.time(),
                              usage={"gpt-5": {"input": 40, "output": 4}})
    with ledger.write(led.db):
        ledger.record_transcript(led.db, fresh, ATTRIBUTES)
    led.emit()  # the agent's round, in between
    assert led.points() == []
    ids = led.end(run_id, tool_session_ids=["t-9"])
    led.emit(ids, receiver=run_id)
    assert sums(led.points(), "aitrack.token.usage", "type") == {("input",): 40, ("output",): 4}


def test_history_from_before_the_upgrade_is_not_sent(home):
    """A ledger written before m006: what it held counts as sent; only later growth goes,
    and the cost of the growth only (estimated from the tokens sent before)."""
    home.write_managed_profile(ENDPOINT + ATTRIBUTES_TOML)
    home.ledger.parent.mkdir(parents=True)
    db = sqlite3.connect(home.ledger, isolation_level=None)
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
               " applied_at REAL NOT NULL)")
    for version, fn in enumerate(migrations.MIGRATIONS[:5], 1):
        fn(db)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, fn.__name__, 0))
    # a Codex session telemetry and its rollout both reported before the upgrade
    db.execute("INSERT INTO sessions (id, tool, started_at, ended_at, sources, tool_session_id)"
               " VALUES ('codex:t-1', 'codex', ?, ?, 3, 't-1')", (time.time() - 99, time.time()))
    db.execute("INSERT INTO tool_sessions VALUES ('codex:t-1', 't-1')")
    db.executemany("INSERT INTO usage VALUES ('codex:t-1', 'gpt-5', ?, ?)",
                   [("input", 1000), ("output", 100)])
    for source in ("telemetry", "transcript"):
        db.executemany("INSERT INTO source_figures VALUES ('codex:t-1', 'gpt-5', ?, ?, ?)",
                       [("input", source, 1000), ("output", source, 100)])
    db.execute("INSERT INTO transcript_sessions (id, tool, tool_session_id, usage) "
               "VALUES (1, 'codex', 't-1', ?)", (json.dumps({"gpt-5": [1000, 100] + [0] * 9}),))
    db.execute("INSERT INTO transcript_responses VALUES (42, 0, 1, 'gpt-5', 1000, 100, 0, 0, "
               "0, 0, 0, 0)")
    db.close()
    led = Ledger(home)
    assert led.emit(now=time.time() + normalized.IDLE_S + 1).rows == 0
    led.receive("logs", codex_logs("t-1", [{"input": 500, "output": 50}]))
    led.emit()
    points = led.points()
    assert sums(points, "aitrack.token.usage", "type") == {("input",): 500, ("output",): 50}
    price = pricing.load().price_for("gpt-5")
    grown = (pricing.estimate({"input": 1500, "output": 150}, price)
             - pricing.estimate({"input": 1000, "output": 100}, price))
    assert sums(points, "aitrack.cost.usage", "model") == {("gpt-5",): pytest.approx(grown)}
    assert sums(points, "aitrack.session.count", "tool") == {}  # it was counted before


# ---------------------------------------------------------------- forwarded with the rest


def aitrack_received(org) -> list[tuple[str, dict, float]]:
    return [(m.name, {a.key: a.value.string_value for a in dp.attributes},
             dp.as_int if dp.WhichOneof("value") == "as_int" else dp.as_double)
            for r in org.accepted() if r.signal == "metrics"
            for rm in r.message.resource_metrics
            if {kv.key: kv.value.string_value for kv in rm.resource.attributes}.get(
                "service.name") == "aitrack"
            for sm in rm.scope_metrics for m in sm.metrics for dp in m.sum.data_points]


def test_an_endpoint_down_then_flush_delivers_aitracks_metrics_once(home, org, authority,
                                                                    keychain_account, token,
                                                                    child):
    from org_endpoint import profile_toml, seqs_received

    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account,
                                            flush_timeout_s=0.5))
    org.stop()
    result = home.run("run", "--", *child, env={"SEND": "2"})
    assert result.returncode == 0
    db = sqlite3.connect(home.ledger)
    assert db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0] == 3
    org.start()
    assert home.run("flush").returncode == 0
    assert sorted(seqs_received(org)) == ["0", "1"]
    tool = os.path.basename(child[0])
    assert sorted(aitrack_received(org), key=lambda p: p[0]) == [
        ("aitrack.session.count", {"tool": tool, "entrypoint": "unknown", "exit_status": "ok"},
         1),
        ("aitrack.token.usage", {"tool": tool, "model": "m", "type": "input",
                                 "source": "telemetry"}, 200)]  # "m" is unpriced: no cost
    sent = len(org.requests)
    led = Ledger(home, profile_toml(org, authority.pem, keychain_account))
    assert led.emit().rows == 0
    assert home.run("flush").returncode == 0 and len(org.requests) == sent


def test_a_hung_endpoint_delays_exit_by_at_most_the_flush_bound(home, org, authority,
                                                                keychain_account, token, child):
    import socket

    from org_endpoint import profile_toml

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)  # the kernel accepts, nobody ever answers
    org.port = hole.getsockname()[1]
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account,
                                            flush_timeout_s=1))
    exit_at = home.root.parent / "exit-at"
    try:
        result = home.run("run", "--", *child, env={"SEND": "1", "EXIT_AT": str(exit_at)})
        delay = time.time() - float(exit_at.read_text())
    finally:
        hole.close()
    assert result.returncode == 0
    assert delay < 1 + 0.6, f"aitrack exited {delay:.2f} s after its child (bound 1 s)"
    db = sqlite3.connect(home.ledger)
    rows = db.execute("SELECT signal, body FROM outbox WHERE state = 'pending'").fetchall()
    services = sorted(otlp.resource_attributes(otlp.decode(s, b, otlp.PROTOBUF)).get(
        "service.name", "") for s, b in rows)
    assert services == ["", "aitrack"]  # the child's payload and aitrack's, both kept
