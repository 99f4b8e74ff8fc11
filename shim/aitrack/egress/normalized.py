"""aitrack's own metric family: every tool's usage and cost in one vocabulary, from the ledger.

Each tool reports usage its own way (Claude Code `claude_code.token.usage` with a cost,
Codex `codex.turn.token_usage` with other token semantics and no cost), so an org's
dashboards would be per tool. The ledger already holds every session's figures normalised
(aitrack/tokens.py) and prices them; this module sends those figures, next to the tools' raw
telemetry, as OTLP metrics of aitrack's own:

  aitrack.token.usage    tokens  tool, model, type (input | output | cache_read |
                                 cache_creation | reasoning), source (telemetry | transcript)
  aitrack.cost.usage     USD     tool, model, cost_source (reported | estimated),
                                 prices_as_of (estimated only: the price table's date, or
                                 "profile" for a price the profile set)
  aitrack.session.count  {session}  tool, entrypoint, exit_status (ok | error | signal |
                                 unknown)

Monotonic sums, delta temporality. Resource: the profile's enforced attributes (as on every
payload), service.name "aitrack", service.version, and service.instance.id (one per ledger,
so that two machines of one user are two streams whose delta intervals never overlap).
`reasoning` is the part of `output` spent on reasoning: a total leaves it out. Datapoints
carry no session id: per (tool, model, type) series, the increases of all sessions sent
together add up into one datapoint.

Exactly once: per (session, model, figure) the ledger keeps what was sent (migration m006,
table `emitted`) and only the increase of the figure of record since then is sent, queued in
the outbox in the transaction that records it as sent. A payload processed twice, a
transcript imported again, or an emission with nothing new adds nothing. Cost of record is
the report's: the cost the tool reported, else an estimate from the price table, else
nothing (an unpriced model gets no cost datapoint, never $0; once a price is added, only
the cost of later tokens is sent). A figure of record that went down (a reported cost below
an earlier estimate) sends nothing until it passes what was sent.

A session is counted once, when it has ended: its wrapper run ended, or (no wrapper) no new
usage arrived for IDLE_S. Sessions aitrack knows only from transcripts (imported) are sent
only when the profile says `[endpoint] forward_imported = true`. With no endpoint, or a
policy that does not forward "normalized", nothing is queued and the figures are recorded
as seen: what was recorded then is never sent later (as the tools' raw telemetry is not).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass

from aitrack import __version__
from aitrack.config import identity
from aitrack.domain import pricing
from aitrack.egress import policy as egress_policy
from aitrack.store import ledger

TOKEN_METRIC = "aitrack.token.usage"
COST_METRIC = "aitrack.cost.usage"
SESSION_METRIC = "aitrack.session.count"
TOKEN_TYPES = ("input", "output", "cache_read", "cache_creation", "reasoning")
COST = "cost_usd"
COUNT = "session.count"
SERVICE_NAME = "aitrack"
IDLE_S = 30 * 60.0  # a session without a wrapper has ended after this long without usage
STALE_RUN_S = 12 * 3600.0  # a wrapper run that never recorded its end (killed) is over
FIRST_INTERVAL_S = 60.0  # the first interval's length, when nothing was sent before
BATCH = 500  # sessions per transaction (and per outbox row)
_UNITS = {TOKEN_METRIC: "tokens", COST_METRIC: "USD", SESSION_METRIC: "{session}"}
_DESCRIPTIONS = {  # short: they travel with every payload
    TOKEN_METRIC: "Tokens by type, all tools",
    COST_METRIC: "Cost, reported or estimated",
    SESSION_METRIC: "Sessions ended",
}


@dataclass
class Emission:
    """What one emission did."""

    examined: int = 0  # sessions looked at
    datapoints: int = 0
    rows: int = 0  # outbox rows queued
    bytes: int = 0  # their protobuf size


def status_class(exit_code: int | None) -> str:
    """ok, error, signal (the wrapper's 128 + N, or a negative status) or unknown."""
    if exit_code is None:
        return "unknown"
    if exit_code == 0:
        return "ok"
    return "signal" if exit_code < 0 or 128 < exit_code <= 128 + 64 else "error"


def emit(db: sqlite3.Connection, profile, session_ids: Iterable[str] | None = None, *,
         receiver: str = "agent", now: float | None = None, prices=None, policy=None,
         attributes: dict[str, str] | None = None) -> Emission:
    """Send what the due sessions (or only `session_ids`) added since they were last sent.

    `receiver`: the outbox rows' owner (a wrapped run's id: its forwarder sends them first).
    Queues nothing unless the profile's egress policy forwards the normalised family.
    """
    policy = egress_policy.of(profile) if policy is None else policy
    if prices is None:
        prices = pricing.load(profile.prices)
    now = time.time() if now is None else now
    if session_ids is None:
        due = [row[0] for row in db.execute("SELECT session_id FROM emission_due")]
    else:
        due = [sid for sid in dict.fromkeys(session_ids) if db.execute(
            "SELECT 1 FROM emission_due WHERE session_id = ?", (sid,)).fetchone()]
    out = Emission()
    for i in range(0, len(due), BATCH):
        points: dict[tuple, float] = {}
        with ledger.write(db):
            for sid in due[i:i + BATCH]:
                _session(db, sid, points, policy, prices, now)
                out.examined += 1
            if points and policy.normalized:
                if attributes is None:
                    attributes = identity.resource_attributes(profile)
                body = _request(db, points, attributes, policy, now)
                db.execute("INSERT INTO outbox (session_id, signal, body, size, created_at) "
                           "VALUES (?, 'metrics', ?, ?, ?)", (receiver, body, len(body), now))
                out.datapoints += len(points)
                out.rows += 1
                out.bytes += len(body)
    return out


# ---------------------------------------------------------------- one session


def _session(db: sqlite3.Connection, sid: str, points: dict, policy, prices,
             now: float) -> None:
    """Add a session's increases to `points` and record them as sent (inside the caller's
    write transaction); it leaves emission_due once counted."""
    facts = db.execute(
        "SELECT s.tool, s.entrypoint, s.exit_code, s.sources, s.run_id, "
        "COALESCE(s.ended_at, s.started_at), r.started_at, r.ended_at "
        "FROM sessions s LEFT JOIN runs r ON r.id = s.run_id WHERE s.id = ?", (sid,)).fetchone()
    if facts is None:
        db.execute("DELETE FROM emission_due WHERE session_id = ?", (sid,))
        return
    tool, entrypoint, exit_code, sources, run_id, last, run_started, run_ended = facts
    ended = _ended(run_id, run_started, run_ended, last, now)
    imported_only = not (sources & (ledger.TELEMETRY | ledger.WRAPPER)) and run_id is None
    send = policy.normalized and (policy.forward_imported or not imported_only)
    if policy.normalized and not send and not ended:
        return  # imported only, so far: a wrapper run may still claim it (decided once ended)
    sent = {(m, n): v for m, n, v in db.execute(
        "SELECT model, name, value FROM emitted WHERE session_id = ?", (sid,))}
    usage: dict[str, dict[str, float]] = {}
    for model, token_type, tokens in db.execute(
            "SELECT model, token_type, tokens FROM usage WHERE session_id = ?", (sid,)):
        usage.setdefault(model, {})[token_type] = tokens
    reported = dict(db.execute("SELECT model, value FROM session_metrics WHERE session_id = ? "
                               "AND name = ?", (sid, COST)).fetchall())
    recorded: list[tuple[str, str, float]] = []
    add = _adder(points) if send else (lambda metric, attrs, value: None)
    origin = _origins(db, sid) if send else {}
    tool = tool or "unknown"
    for model in sorted(usage.keys() | reported.keys()):
        figures = usage.get(model, {})
        shown = model or "unknown"
        for token_type in TOKEN_TYPES:
            now_value, before = figures.get(token_type, 0), sent.get((model, token_type), 0)
            if now_value > before:
                add(TOKEN_METRIC, (("tool", tool), ("model", shown), ("type", token_type),
                                   ("source", origin.get((model, token_type), "telemetry"))),
                    now_value - before)
                recorded.append((model, token_type, now_value))
        cost = _cost(model, figures, reported, prices)
        if cost is None:
            continue  # unpriced: no datapoint, never $0
        value, attrs = cost
        before = sent.get((model, COST))
        if before is None:  # tokens sent without a cost row: their cost counts as sent
            price = prices.price_for(model)
            before = _estimate({t: sent.get((model, t), 0) for t in TOKEN_TYPES}, price)
        if value > before + 1e-12:
            add(COST_METRIC, (("tool", tool), ("model", shown), *attrs), value - before)
        recorded.append((model, COST, max(value, before)))
    if ended and ("", COUNT) not in sent:
        add(SESSION_METRIC, (("tool", tool), ("entrypoint", entrypoint or "unknown"),
                             ("exit_status", status_class(exit_code))), 1)
        recorded.append(("", COUNT, 1))
    db.executemany("INSERT INTO emitted VALUES (?, ?, ?, ?) ON CONFLICT (session_id, model, "
                   "name) DO UPDATE SET value = excluded.value",
                   [(sid, model, name, value) for model, name, value in recorded])
    if ended:
        db.execute("DELETE FROM emission_due WHERE session_id = ?", (sid,))


def _ended(run_id: str | None, run_started: float | None, run_ended: float | None,
           last: float | None, now: float) -> bool:
    if run_ended is not None:
        return True
    if run_id is not None and run_started is not None and now - run_started < STALE_RUN_S:
        return False  # its wrapper is still running
    return last is not None and now - last >= IDLE_S


def _origins(db: sqlite3.Connection, sid: str) -> dict[tuple[str, str], str]:
    """Per (model, name) the source whose figure is the one of record (the largest)."""
    best: dict[tuple[str, str], tuple[float, int, str]] = {}
    for model, name, source, value in db.execute(
            "SELECT model, name, source, value FROM source_figures WHERE session_id = ?", (sid,)):
        rank = (value, source == "telemetry", source)  # a tie goes to telemetry
        if (model, name) not in best or rank > best[(model, name)]:
            best[(model, name)] = rank
    return {key: rank[2] for key, rank in best.items()}


def _cost(model: str, figures: dict[str, float], reported: dict[str, float],
          prices) -> tuple[float, tuple] | None:
    """The pair's cost of record and its attributes; None when unpriced."""
    if model in reported:
        return reported[model], (("cost_source", "reported"),)
    price = prices.price_for(model)
    if price is None:
        return None
    as_of = "profile" if price.source == "profile" else (prices.as_of or "unknown")
    return _estimate(figures, price), (("cost_source", "estimated"), ("prices_as_of", as_of))


def _estimate(figures: dict[str, float], price) -> float:
    return pricing.estimate(figures, price) if price is not None else 0.0


def _adder(points: dict):
    def add(metric: str, attrs: tuple, value: float) -> None:
        key = (metric, attrs)
        points[key] = points.get(key, 0) + value
    return add


# ---------------------------------------------------------------- the OTLP request


def _request(db: sqlite3.Connection, points: dict, attributes: dict[str, str], policy,
             now: float) -> bytes:
    """One export request; the interval follows the last one sent from this ledger."""
    # protobuf (~20 ms) loads only when there is something to send, not at every run's exit
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # as above
    from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality  # as above

    from aitrack.egress import otlp  # as above

    state = dict(db.execute("SELECT key, value FROM emission_state").fetchall())
    last = int(state["last_ns"]) if "last_ns" in state else None
    end = max(int(now * 1e9), (last or 0) + 1)
    start = last if last is not None else end - int(FIRST_INTERVAL_S * 1e9)
    db.execute("INSERT OR REPLACE INTO emission_state VALUES ('last_ns', ?)", (str(end),))

    def kv(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    request = metrics_service_pb2.ExportMetricsServiceRequest()
    block = request.resource_metrics.add()
    block.resource.attributes.extend([
        kv("service.name", SERVICE_NAME), kv("service.version", __version__),
        kv("service.instance.id", state.get("instance_id", "unknown"))])
    scoped = block.scope_metrics.add()
    scoped.scope.name, scoped.scope.version = SERVICE_NAME, __version__
    metrics = {}
    for (name, attrs), value in sorted(points.items()):
        if name not in metrics:
            metric = metrics[name] = scoped.metrics.add()
            metric.name, metric.unit, metric.description = name, _UNITS[name], _DESCRIPTIONS[name]
            metric.sum.aggregation_temporality = \
                AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
            metric.sum.is_monotonic = True
        point = metrics[name].sum.data_points.add()
        point.start_time_unix_nano, point.time_unix_nano = start, end
        point.attributes.extend(kv(k, v) for k, v in attrs)
        if name == COST_METRIC:
            point.as_double = float(value)
        else:
            point.as_int = round(value)
    otlp.enforce(request, attributes)
    policy.strip(request)
    return request.SerializeToString()
