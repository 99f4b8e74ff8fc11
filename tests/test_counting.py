"""Every billed request counted once, whichever sources saw it (store/ledger/record.py).

The figure of record as a function (`settle`), then the ledger fed as the receivers and the
import feed it, in every order the sources can arrive in. The real binaries do the same in
test_e2e_counting*.py; these cover the orders and gaps the binaries cannot be made to show.
"""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

import otlp_client as oc
from aitrack.adapters.reading import request_number
from aitrack.capture import intake
from aitrack.domain import pricing
from aitrack.domain.records import TranscriptSession
from aitrack.domain.tokens import SUMS
from aitrack.egress import otlp
from aitrack.egress import policy as egress_policy
from aitrack.reports import figures as builder
from aitrack.reports import tables as rep
from aitrack.store import ledger, migrations
from aitrack.store.ledger.record import Group, settle

SONNET, DATED = "claude-sonnet-4-5", "claude-sonnet-4-5-20250929"
HAIKU = "claude-haiku-4-5"


def group(inp: int, out: int, read: int = 0, write: int = 0, n: int = 1,
          cost: float | None = None) -> Group:
    return Group([inp, out, read, write] + [0] * (len(SUMS) - 4), n=n,
                 cost=cost or 0.0, n_cost=n if cost is not None else 0)


def total(inp: int, out: int, read: int = 0, write: int = 0, cost: float | None = None) -> dict:
    figures = {"input": inp, "output": out, "cache_read": read, "cache_creation": write}
    return {**figures, **({"cost_usd": cost} if cost is not None else {})}


def tokens(record) -> dict:
    return {m: {k: v for k, v in t.items() if k in ("input", "output", "cache_read",
                                                     "cache_creation")}
            for m, t in record.tokens().items()}


# ---------------------------------------------------------------- the figure of record


def test_requests_of_two_sources_count_once_each_and_none_is_dropped():
    # the union: what telemetry saw, what the transcript saw, once each (no maximum per type)
    r = settle({(DATED, None): group(300, 30, n=3, cost=0.3)}, {})
    assert tokens(r) == {DATED: {"input": 300, "output": 30}}
    assert r.cost == {DATED: pytest.approx(0.3)}


def test_an_alias_answered_with_a_dated_id_counts_once():
    # the transcript's requests name both (requested -> answered), telemetry's title request
    # only the answered model; the totals (metrics, cost-state) the requested one
    groups = {(DATED, SONNET): group(200, 20, n=2), (DATED, None): group(50, 5, cost=0.05)}
    totals = {"telemetry": {SONNET: total(250, 25, cost=0.25)},
              "transcript": {SONNET: total(250, 25, cost=0.25)}}
    r = settle(groups, totals)
    assert tokens(r) == {DATED: {"input": 250, "output": 25}}
    assert r.cost == {DATED: pytest.approx(0.25)}  # the tool's own, for all of them


def test_a_total_adds_what_no_request_shows_once():
    # the transcript's cost-state counts the TUI's title request, which no line shows
    groups = {(SONNET, None): group(100, 10, n=1)}
    r = settle(groups, {"transcript": {SONNET: total(130, 14, cost=0.2)}})
    assert tokens(r) == {SONNET: {"input": 130, "output": 14}}
    assert r.cost == {SONNET: 0.2}


def test_two_totals_of_the_same_requests_are_floors_not_sums():
    groups = {(SONNET, None): group(100, 10)}
    r = settle(groups, {"telemetry": {SONNET: total(120, 10, cost=0.12)},
                        "transcript": {SONNET: total(130, 12, cost=0.13)}})
    assert tokens(r) == {SONNET: {"input": 130, "output": 12}}
    assert r.cost == {SONNET: 0.13}


def test_a_total_below_its_requests_adds_nothing_and_does_not_price_them():
    # an older cost-state (the last turn not written yet): requests beyond it
    r = settle({(SONNET, None): group(100, 10, n=2)},
               {"transcript": {SONNET: total(60, 5, cost=0.06)}})
    assert tokens(r) == {SONNET: {"input": 100, "output": 10}}
    assert r.cost == {SONNET: None}  # neither covers them all: the report estimates


def test_an_unknown_alias_is_learnt_from_equal_figures():
    # telemetry only: requests under the answered name, metrics under the requested one
    r = settle({(DATED, None): group(250, 25, n=2, cost=0.25)},
               {"telemetry": {SONNET: total(250, 25, cost=0.25)}})
    assert tokens(r) == {DATED: {"input": 250, "output": 25}}
    assert r.learnt == [(SONNET, DATED)]
    assert r.cost == {DATED: pytest.approx(0.25)}


def test_an_unexplained_total_is_pooled_with_unexplained_requests_never_added_twice():
    # some of telemetry's request events were lost, its metrics were not
    r = settle({(DATED, None): group(200, 20, cost=0.2)},
               {"telemetry": {SONNET: total(250, 25, cost=0.25)}})
    assert tokens(r) == {DATED: {"input": 250, "output": 25}}
    assert r.cost == {DATED: None}


def test_a_total_with_nothing_to_explain_it_counts_under_its_own_name():
    r = settle({}, {"transcript": {HAIKU: total(40, 8, cost=0.001)}})
    assert tokens(r) == {HAIKU: {"input": 40, "output": 8}}
    assert r.cost == {HAIKU: 0.001}


def test_a_cost_only_total_prices_its_models_requests():
    # cost-state lines read before aitrack kept their tokens: the cost of all of them
    r = settle({(SONNET, None): group(100, 10)}, {"transcript": {SONNET: {"cost_usd": 0.1}}})
    assert tokens(r) == {SONNET: {"input": 100, "output": 10}}
    assert r.cost == {SONNET: 0.1}


# ---------------------------------------------------------------- the ledger, fed


class Feed:
    """A ledger fed as the agent feeds it (OTLP/JSON through the inbox) and as the import
    feeds it (record_transcripts with the responses of the batch)."""

    def __init__(self, path):
        self.db = ledger.connect(path)

    def receive(self, signal: str, data: dict) -> None:
        intake.Inbox(self.db, "agent", lambda: None).put(
            intake.Delivery(signal, otlp.JSON, json.dumps(data).encode(), None))
        context = intake.Context({}, (), pricing.load(), egress_policy.FORWARD_ALL)
        assert intake.Processor(self.db, "agent", context).drain(5) == 0

    def transcript(self, tsid: str, responses: list[tuple[str, str, tuple[int, ...]]],
                   totals: dict | None = None, requested: dict | None = None) -> None:
        """(request id, answered model, (input, output, cache_read, cache_creation))."""
        usage: dict[str, dict[str, int]] = {}
        rows = []
        for n, (rid, model, figures) in enumerate(responses):
            for name, v in zip(("input", "output", "cache_read", "cache_creation"), figures,
                               strict=True):
                usage.setdefault(model, {})[name] = usage.get(model, {}).get(name, 0) + v
            rows.append((1000 + n, request_number(rid), model, (*figures, 0, 0, 0),
                         (requested or {}).get(model)))
        t = TranscriptSession("claude", tsid, time.time() - 60, time.time(), usage=usage,
                              totals=totals or {}, requested=requested or {})
        with ledger.write(self.db):
            ledger.record_transcripts(self.db, [t], {}, lambda _, __: rows)

    def usage(self) -> dict:
        out: dict = {}
        for model, name, n in self.db.execute("SELECT model, token_type, tokens FROM usage"):
            out.setdefault(model, {})[name] = n
        return out

    def costs(self) -> dict:
        return dict(self.db.execute("SELECT model, value FROM session_metrics "
                                    "WHERE name = 'cost_usd'"))

    def sessions(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT tool_session_id FROM sessions")]


@pytest.fixture
def feed(tmp_path) -> Feed:
    return Feed(tmp_path / "ledger.db")


CLAUDE = {"service.name": "claude-code", "service.version": "2.1.328"}


def api_request(session: str, request_id: str, model: str, figures: tuple[int, ...],
                cost: float) -> dict:
    inp, out, read, write = figures
    return oc.log_record("api_request", **{
        "event.name": "api_request", "session.id": session, "request_id": request_id,
        "model": model, "input_tokens": str(inp), "output_tokens": str(out),
        "cache_read_tokens": str(read), "cache_creation_tokens": str(write),
        "cost_usd": str(cost), "event.timestamp": "2026-12-05T10:00:00.000Z"})


def claude_totals(session: str, model: str, figures: tuple[int, ...], cost: float) -> dict:
    names = ("input", "output", "cacheRead", "cacheCreation")
    return oc.metrics(
        oc.sum_metric("claude_code.token.usage", [
            oc.point(v, type=t, model=model, **{"session.id": session})
            for t, v in zip(names, figures, strict=True)]),
        oc.sum_metric("claude_code.cost.usage", [oc.point(cost, model=model,
                                                          **{"session.id": session})]),
        resource=CLAUDE)


@pytest.mark.parametrize("metrics_first", [False, True], ids=["logs-first", "metrics-first"])
def test_telemetry_of_an_alias_counts_each_request_once_in_either_order(feed, metrics_first):
    log = oc.logs(api_request("s-1", "req_1", DATED, (100, 10, 1000, 50), 0.01),
                  api_request("s-1", "req_2", DATED, (7, 3, 500, 0), 0.002), resource=CLAUDE)
    totals = claude_totals("s-1", SONNET, (107, 13, 1500, 50), 0.012)
    for signal, data in ([("metrics", totals), ("logs", log)] if metrics_first
                         else [("logs", log), ("metrics", totals)]):
        feed.receive(signal, data)
    assert feed.usage() == {DATED: {"input": 107, "output": 13, "cache_read": 1500,
                                    "cache_creation": 50}}
    assert feed.costs() == {DATED: pytest.approx(0.012)}
    assert feed.db.execute("SELECT requested, answered FROM model_aliases").fetchall() == [
        (SONNET, DATED)]


def test_the_transcript_then_telemetry_of_the_same_session_meet_on_request_ids(feed):
    # the agent was down at the session's start: its first request only in the transcript;
    # then up: telemetry saw the second and the title request, never a transcript line
    feed.transcript("s-1", [("req_1", DATED, (100, 10, 1000, 50))], requested={DATED: SONNET})
    feed.receive("logs", oc.logs(api_request("s-1", "req_2", DATED, (7, 3, 500, 0), 0.002),
                                 api_request("s-1", "req_t", DATED, (40, 8, 0, 0), 0.001),
                                 resource=CLAUDE))
    feed.transcript("s-1", [("req_1", DATED, (100, 10, 1000, 50)),
                            ("req_2", DATED, (7, 3, 500, 0))], requested={DATED: SONNET})
    assert feed.usage() == {DATED: {"input": 147, "output": 21, "cache_read": 1500,
                                    "cache_creation": 50}}
    rows = feed.db.execute("SELECT identity, sources FROM requests ORDER BY rid").fetchall()
    assert sorted(s for _, s in rows) == [1, 2, 3]  # each once, with who saw it
    assert feed.sessions() == ["s-1"]


def test_continue_makes_no_session_of_its_start_up_id(feed):
    startup = oc.logs(oc.log_record("x", **{"event.name": "managed_settings_resolved",
                                            "session.id": "fresh"}),
                      oc.log_record("x", **{"event.name": "plugin_loaded",
                                            "session.id": "fresh"}), resource=CLAUDE)
    count = oc.metrics(oc.sum_metric("claude_code.session.count", [
        oc.point(1, start_type="continue", **{"session.id": "fresh"})]), resource=CLAUDE)
    feed.receive("logs", startup)
    feed.receive("metrics", count)
    feed.receive("logs", oc.logs(api_request("old", "req_9", SONNET, (1, 2, 3, 4), 0.001),
                                 resource=CLAUDE))
    assert feed.sessions() == ["old"]


CODEX = {"service.name": "codex-app-server", "service.version": "0.169.0"}


def codex_event(conversation: str, name: str, at: str, **kv) -> dict:
    record = oc.log_record(name, **{"event.name": name, "conversation.id": conversation,
                                    "originator": "codex-tui", "event.timestamp": at, **kv})
    when = time.mktime(time.strptime(at[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    record["timeUnixNano"] = str(int((when + float("0" + at[19:23])) * 1e9))
    return record


def completed(conversation: str, at: str, inp: int) -> dict:
    return codex_event(conversation, "codex.sse_event", at, **{
        "event.kind": "response.completed", "model": "gpt-5", "input_token_count": str(inp),
        "cached_token_count": "100", "output_token_count": "50",
        "reasoning_token_count": "10"})


def title_start(conversation: str, at: str) -> dict:
    return codex_event(conversation, "codex.conversation_starts", at, mcp_servers="",
                       sandbox_policy="read-only", approval_policy="on-request")


def test_the_codex_tuis_title_conversation_counts_in_its_prompting_session(feed):
    feed.receive("logs", oc.logs(
        codex_event("main", "codex.conversation_starts", "2026-12-05T10:00:00.000Z",
                    mcp_servers="codex_tui", sandbox_policy="workspace-write"),
        codex_event("main", "codex.user_prompt", "2026-12-05T10:00:05.000Z"),
        title_start("title-1", "2026-12-05T10:00:05.040Z"),
        completed("main", "2026-12-05T10:00:05.060Z", 5000),
        codex_event("title-1", "codex.user_prompt", "2026-12-05T10:00:05.070Z"),
        completed("title-1", "2026-12-05T10:00:05.100Z", 800), resource=CODEX))
    assert feed.sessions() == ["main"]
    assert feed.usage() == {"gpt-5": {"input": 5600, "cache_read": 200, "output": 100,
                                      "reasoning": 20}}


def test_two_prompts_that_close_leave_a_title_conversation_its_own_session(feed):
    # which prompt it was for cannot be told: a session of its own, not a guess
    feed.receive("logs", oc.logs(
        codex_event("a", "codex.user_prompt", "2026-12-05T10:00:05.000Z"),
        codex_event("b", "codex.user_prompt", "2026-12-05T10:00:05.010Z"),
        title_start("title-1", "2026-12-05T10:00:05.040Z"),
        completed("title-1", "2026-12-05T10:00:05.100Z", 800), resource=CODEX))
    assert sorted(feed.sessions()) == ["a", "b", "title-1"]


def test_a_ledger_from_before_m007_keeps_its_figures_and_grows_from_them(tmp_path):
    path = tmp_path / "ledger.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
               " applied_at REAL NOT NULL)")
    for version, fn in enumerate(migrations.MIGRATIONS[:6], 1):
        fn(db)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, fn.__name__, 0))
    # Claude's metrics and its transcript, merged the old way: the larger per type
    db.execute("INSERT INTO sessions (id, tool, started_at, sources, tool_session_id) "
               "VALUES ('claude:s-1', 'claude', 1, 3, 's-1')")
    db.execute("INSERT INTO tool_sessions VALUES ('claude:s-1', 's-1')")
    for source, figures in (("telemetry", (120, 10)), ("transcript", (100, 12))):
        db.executemany("INSERT INTO source_figures VALUES ('claude:s-1', ?, ?, ?, ?)",
                       [(SONNET, n, source, v) for n, v in zip(("input", "output"), figures,
                                                               strict=True)])
    db.executemany("INSERT INTO usage VALUES ('claude:s-1', ?, ?, ?)",
                   [(SONNET, "input", 120), (SONNET, "output", 12)])
    db.execute("INSERT INTO session_metrics VALUES ('claude:s-1', ?, 'cost_usd', 0.5)",
               (SONNET,))
    before = db.execute("SELECT * FROM usage_daily").fetchall()
    db.close()
    feed = Feed(path)  # migrates
    assert feed.usage() == {SONNET: {"input": 120, "output": 12}}
    assert feed.db.execute("SELECT * FROM usage_daily").fetchall() == before
    # the session goes on: its metrics grow, a new request arrives
    feed.receive("metrics", oc.metrics(oc.sum_metric("claude_code.token.usage", [
        oc.point(30, type="input", model=SONNET, **{"session.id": "s-1"})]), resource=CLAUDE))
    assert feed.usage() == {SONNET: {"input": 150, "output": 12}}
    daily = feed.db.execute("SELECT SUM(input), SUM(output) FROM usage_daily").fetchone()
    assert daily == (150, 12)  # the summaries follow


@pytest.mark.parametrize("kind", ["daily", "model"])
def test_the_summaries_follow_figures_that_move_between_models(feed, monkeypatch, kind):
    """Metrics first (counted under the requested name), then the request events (the same
    requests, under the answered name): the requested name's rows and reported cost go, and
    the hourly summaries that reports read stay equal to the rows."""
    feed.receive("metrics", claude_totals("s-1", SONNET, (107, 13, 1500, 50), 0.012))
    assert list(feed.usage()) == [SONNET]
    feed.receive("logs", oc.logs(api_request("s-1", "req_1", DATED, (100, 10, 1000, 50), 0.01),
                                 api_request("s-1", "req_2", DATED, (7, 3, 500, 0), 0.002),
                                 resource=CLAUDE))
    assert list(feed.usage()) == [DATED] and list(feed.costs()) == [DATED]
    opts = builder.Options(kind=kind)
    summary = builder.build(feed.db, opts, pricing.load())
    monkeypatch.setattr(builder, "USE_SUMMARIES", False)
    exact = builder.build(feed.db, opts, pricing.load())
    assert summary.source == "hourly" and exact.source == "exact"
    assert rep.to_json(summary) == rep.to_json(exact)
