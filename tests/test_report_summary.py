"""The hourly summaries (migration m002) give the same reports as the exact queries.

Period and model reports read usage_hourly/usage_daily when they can; these tests build one
ledger through the real write path (`ledger.accept`'s upserts, so the triggers' update
paths run too) and compare every report with the one the exact queries give.
"""

from __future__ import annotations

import hashlib
import random
import re
import sqlite3
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from aitrack.domain import pricing
from aitrack.domain.records import Contribution, Point
from aitrack.reports import figures as builder
from aitrack.reports import tables as rep
from aitrack.store import ledger, migrations
from test_report import run_in_terminal

SUMMARY_TABLES = ("usage_hourly", "usage_daily", "sessions_hourly", "contrib_hourly")
TODAY = date(2026, 11, 20)


def at(text: str, zone: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


class _Adapter:
    """Each datapoint names what it adds: kind, model and name in its attributes."""

    NAME = "test"

    @staticmethod
    def contributions(point: Point, delta: float) -> list[Contribution]:
        return [Contribution(point.attrs["kind"], point.attrs["model"], point.attrs["name"],
                             delta)]

    @staticmethod
    def log_contributions(attrs, prices) -> list[Contribution]:
        return []

    @staticmethod
    def tool_session_id(attrs) -> None:
        return None

    @staticmethod
    def entrypoint(attrs) -> None:
        return None


class Writer:
    """Writes sessions, tokens and metrics as the wrapper does: `accept()` and its upserts.

    `legacy`: as the writer before m004 did (its upserts, straight into sessions, usage and
    session_metrics), for a ledger that has only the older migrations.
    """

    def __init__(self, db: sqlite3.Connection, legacy: bool = False):
        self.db = db
        self.n = 0
        self.legacy = legacy

    def session(self, started: float, tool: str = "claude", project: str = "app") -> str:
        self.n += 1
        sid = f"s{self.n:05d}"
        if self.legacy:
            with ledger.write(self.db):
                self.db.execute("INSERT INTO sessions (id, tool, started_at, cwd, project) "
                                "VALUES (?, ?, ?, ?, ?)",
                                (sid, tool, started, f"/src/{project}", project))
            return sid
        ledger.start_run(self.db, ledger.Run(sid, tool, started, f"/src/{project}", project, {},
                                             "receiver"))
        ledger.start_session(self.db, ledger.SessionStart(sid, tool, started, f"/src/{project}",
                                                          project, {}))
        return sid

    def add(self, sid: str, *items: tuple[str, str, str, float]) -> None:
        """(kind, model, name, value) items: kind "tokens" or "metric"."""
        points = [Point("m", {"kind": k, "model": m, "name": n}, v, False, 0, f"{k}{m}{n}")
                  for k, m, n, v in items]
        digest = hashlib.sha256(repr((sid, items, self.n)).encode()).digest()
        self.n += 1
        if self.legacy:
            with ledger.write(self.db):
                for kind, model, name, value in items:
                    if not value:
                        continue  # the writer skipped zero deltas
                    table, column = (("usage", "tokens") if kind == "tokens"
                                     else ("session_metrics", "value"))
                    key = "token_type" if kind == "tokens" else "name"
                    self.db.execute(
                        f"INSERT INTO {table} VALUES (?, ?, ?, ?) ON CONFLICT "
                        f"(session_id, model, {key}) DO UPDATE SET {column} = {column} + "
                        f"excluded.{column}", (sid, model, name, value))
            return
        assert ledger.accept(self.db, ledger.Accepted("metrics", b"", digest, points,
                                                      receiver=sid, run_id=sid),
                             _Adapter, queue=False)


def populate(w: Writer, seed: int = 7, sessions: int = 300, subsets: bool = False) -> None:
    """Sessions over a year across DST changes: every cost source, late and cumulative figures.

    `subsets`: with 1-hour cache writes and long-context parts too (from their own random
    numbers, so the base figures are the same either way); only writers since m004 had them.
    """
    rnd = random.Random(seed)
    parts = random.Random(seed + 1)
    models = {"claude": ["claude-opus-5-5", "claude-haiku-4-5", "acme-claude-x"],
              "codex": ["gpt-5-codex", "gpt-5.4", "acme-coder-9"]}  # gpt-5.4: a long tier
    year_start = at("2025-11-01T00:00")
    # around Berlin's and New York's changes, at local midnight and 23:30
    edges = [at(t, z) for t, z in (("2026-03-29T00:30", "Europe/Berlin"),
                                   ("2026-03-28T23:30", "Europe/Berlin"),
                                   ("2026-10-25T01:30", "Europe/Berlin"),
                                   ("2026-03-08T01:59", "America/New_York"),
                                   ("2026-11-01T00:00", "America/New_York"),
                                   ("2026-01-01T00:00", "UTC"),
                                   ("2026-01-31T23:59:59", "Asia/Tokyo"))]
    for i in range(sessions):
        started = edges[i] if i < len(edges) else year_start + rnd.random() * 365 * 86400
        tool = rnd.choice(("claude", "codex"))
        sid = w.session(started, tool, project=rnd.choice(("app", "web")))
        for model in rnd.sample(models[tool], rnd.randint(0, 2)):
            tokens = [("tokens", model, t, rnd.randrange(0, 50_000))
                      for t in ("input", "output", "cache_read", "cache_creation", "reasoning")
                      if rnd.random() < 0.8]
            if subsets:
                base = {name: n for _, _, name, n in tokens}
                long = parts.random() < 0.5  # a long-context request among them
                tokens += [("tokens", model, name, parts.randrange(0, base[of] + 1))
                           for name, of in (("cache_creation_1h", "cache_creation"),
                                            *((f"long_{t}", t) for t in (
                                                "input", "output", "cache_read",
                                                "cache_creation") if long))
                           if of in base]
            # costs in 1/1024 dollars, so sums are exact in any order
            cost = [("metric", model, "cost_usd", rnd.randrange(1, 4096) / 1024)]
            when = rnd.random()
            if tool == "codex" and rnd.random() < 0.8:
                cost = []  # estimated from list prices
            if when < 0.3 and cost:
                w.add(sid, *cost)  # the cost before any tokens
                w.add(sid, *tokens)
            elif when < 0.6 and cost:
                w.add(sid, *tokens)
                w.add(sid, *cost)  # the cost after the tokens
            else:
                w.add(sid, *tokens, *cost)
            if rnd.random() < 0.5:  # more of the same: the upserts' update path
                w.add(sid, *tokens[:2], *[(k, m, n, 3 / 1024) for k, m, n, _ in cost])
        if tool == "claude" and rnd.random() < 0.7:
            w.add(sid, ("metric", "", "lines_added", rnd.randrange(0, 300)),
                  ("metric", "", "commits", rnd.randrange(0, 3)),
                  ("metric", "", "active_time_s", 12.5))
            if rnd.random() < 0.5:
                w.add(sid, ("metric", "", "lines_added", 7), ("metric", "", "lines_removed", 4),
                      ("metric", "", "pull_requests", 1))
    # a reported cost for a model without any token counts
    sid = w.session(at("2026-06-01T12:00"), "claude")
    w.add(sid, ("metric", "claude-sonnet-5-5", "cost_usd", 0.75))


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> sqlite3.Connection:
    """A ledger migrated first, then written: the triggers keep the summaries."""
    db = ledger.connect(tmp_path_factory.mktemp("live") / "ledger.db")
    populate(Writer(db))
    return db


@pytest.fixture(scope="module")
def with_subsets(tmp_path_factory) -> sqlite3.Connection:
    """The live ledger's sessions, plus 1-hour cache writes and long-context parts."""
    db = ledger.connect(tmp_path_factory.mktemp("subsets") / "ledger.db")
    populate(Writer(db), subsets=True)
    return db


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory) -> sqlite3.Connection:
    """The same ledger written before m002 existed, then migrated: the backfill."""
    path = tmp_path_factory.mktemp("old") / "ledger.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
        db = ledger.connect(path)
        populate(Writer(db, legacy=True))
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'usage_hourly'"
                          ).fetchone() is None
        db.close()
    return ledger.connect(path)


def summaries(db: sqlite3.Connection) -> dict[str, list]:
    return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3").fetchall()
            for t in SUMMARY_TABLES}


def both(db: sqlite3.Connection, monkeypatch, **kw) -> tuple[builder.Report, builder.Report]:
    opts = builder.Options(today=TODAY, **kw)
    prices = pricing.load()
    summary = builder.build(db, opts, prices)
    monkeypatch.setattr(builder, "USE_SUMMARIES", False)
    exact = builder.build(db, opts, prices)
    monkeypatch.setattr(builder, "USE_SUMMARIES", True)
    assert exact.source == "exact"
    return summary, exact


ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Pacific/Auckland")


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("kind", ["daily", "weekly", "monthly", "model", "tool"])
def test_summaries_give_the_exact_reports(live, monkeypatch, kind, zone):
    summary, exact = both(live, monkeypatch, kind=kind, tz=ZoneInfo(zone), tz_name=zone,
                          breakdown=True)
    assert summary.source == "hourly"
    assert rep.to_json(summary) == rep.to_json(exact)
    assert len(exact.rows) > {"model": 3, "tool": 1}.get(kind, 10)


@pytest.mark.parametrize("options", [
    {"tool": "codex"},
    {"tool": "claude", "week_start": 6},
    {"since": date(2026, 3, 28), "until": date(2026, 3, 30)},  # Berlin's change inside
    {"since": date(2026, 3, 29)},
    {"until": date(2026, 1, 31), "tool": "claude"},
    {"last": 45},
    {"since": date(2026, 10, 25), "until": date(2026, 10, 25)},  # a 25-hour day
])
@pytest.mark.parametrize("kind", ["daily", "weekly", "monthly", "model"])
def test_ranges_and_tools_on_the_summaries(live, monkeypatch, kind, options):
    summary, exact = both(live, monkeypatch, kind=kind, tz=ZoneInfo("Europe/Berlin"),
                          tz_name="Europe/Berlin", breakdown=True, **options)
    assert summary.source == "hourly"
    assert rep.to_json(summary) == rep.to_json(exact)
    assert exact.totals.sessions


@pytest.mark.parametrize("kind", ["daily", "monthly", "model", "tool"])
def test_token_subsets_are_priced_the_same_from_the_summaries(live, with_subsets, monkeypatch,
                                                             kind):
    """m004's summary columns price 1-hour writes and long-context parts as usage does."""
    summary, exact = both(with_subsets, monkeypatch, kind=kind, tz=ZoneInfo("Europe/Berlin"),
                          tz_name="Europe/Berlin", breakdown=kind != "model")
    assert summary.source == "hourly"
    assert rep.to_json(summary) == rep.to_json(exact)
    plain = builder.build(live, builder.Options(kind=kind, tz=ZoneInfo("Europe/Berlin"),
                                                tz_name="Europe/Berlin", today=TODAY),
                          pricing.load())
    assert summary.totals.tokens == plain.totals.tokens  # subsets are never added to totals
    assert summary.totals.estimated > plain.totals.estimated * 1.01  # but they cost more
    assert summary.totals.reported == plain.totals.reported


def test_sessions_price_the_subsets_as_the_periods_do(with_subsets):
    prices = pricing.load()
    sessions = builder.build(with_subsets, builder.Options(kind="session"), prices)
    days = builder.build(with_subsets, builder.Options(kind="daily"), prices)
    assert sessions.totals.estimated == pytest.approx(days.totals.estimated, rel=1e-9)
    assert sessions.totals.tokens == days.totals.tokens


def test_projects_add_up_to_the_model_report(live):
    """The dashboard's rows per project are `report model --project NAME`'s figures."""
    prices = pricing.load()
    projects = builder.build(live, builder.Options(kind="project"), prices)
    assert projects.source == "exact" and [r[0] for r in projects.rows] != []
    for name, fig, _ in projects.rows:
        one = builder.build(live, builder.Options(kind="model", project=name), prices).totals
        assert (fig.sessions, fig.tokens, fig.cost_usd, fig.contrib) == (
            one.sessions, one.tokens, one.cost_usd, one.contrib)
    whole = builder.build(live, builder.Options(kind="model"), prices).totals
    assert projects.totals.sessions == whole.sessions
    assert projects.totals.cost_usd == pytest.approx(whole.cost_usd)
    assert builder.session_counts(live, builder.Options(), "project") == {
        name: fig.sessions for name, fig, _ in projects.rows}


def test_every_cost_source_appears(live, monkeypatch):
    summary, _ = both(live, monkeypatch, kind="daily", breakdown=True)
    sources = {f.cost_source for _, fig, models in summary.rows
               for f in (fig, *(m for _, m in models))}
    assert {"reported", "estimated", "mixed", "partial", "unpriced"} <= sources


@pytest.mark.parametrize("options", [
    {"tz_name": "Asia/Kolkata"},  # +05:30: its days do not start on UTC hours
    {"project": "app"},
    {"model": "gpt-5*"},
])
def test_what_the_summaries_cannot_answer_uses_the_exact_queries(live, monkeypatch, options):
    zone = options.pop("tz_name", "UTC")
    summary, exact = both(live, monkeypatch, kind="daily", tz=ZoneInfo(zone), tz_name=zone,
                          **options)
    assert summary.source == "exact"
    assert rep.to_json(summary) == rep.to_json(exact)


def test_backfill_equals_what_the_triggers_keep(live, backfilled):
    kept, filled = summaries(live), summaries(backfilled)
    for table in SUMMARY_TABLES:
        assert kept[table] == filled[table], table
    assert len(kept["usage_hourly"]) > 100


@pytest.mark.parametrize("kind", ["daily", "monthly", "model"])
def test_backfilled_ledger_reports_as_the_exact_queries(backfilled, monkeypatch, kind):
    summary, exact = both(backfilled, monkeypatch, kind=kind, tz=ZoneInfo("Europe/Berlin"),
                          tz_name="Europe/Berlin", breakdown=True)
    assert summary.source == "hourly"
    assert rep.to_json(summary) == rep.to_json(exact)


def test_a_ledger_not_yet_migrated_is_read_exactly(tmp_path):
    """The report opens the ledger read-only: a ledger from before m002 stays as it is."""
    path = tmp_path / "ledger.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
        db = ledger.connect(path)
        w = Writer(db, legacy=True)
        sid = w.session(at("2026-03-10T12:00"), "codex")
        w.add(sid, ("tokens", "gpt-5", "input", 1_000_000))
        db.close()
    report = builder.build(rep.open_ledger(path), builder.Options(kind="daily"), pricing.load())
    assert report.source == "exact"
    assert rep.to_json(report)["daily"][0]["cost_usd"] == pytest.approx(1.25)


# ---------------------------------------------------------------- the session report


def test_session_limit_keeps_the_newest_and_totals_over_all(live, monkeypatch):
    prices = pricing.load()
    full = builder.build(live, builder.Options(kind="session", last=400, today=TODAY), prices)
    short = builder.build(live, builder.Options(kind="session", last=400, today=TODAY, limit=5),
                          prices)
    assert short.source == "hourly" and short.hidden == len(full.rows) - 5
    full_json, short_json = rep.to_json(full), rep.to_json(short)
    assert short_json["sessions"] == full_json["sessions"][:5]
    assert short_json["totals"] == full_json["totals"]
    oldest = builder.build(live, builder.Options(kind="session", last=400, today=TODAY, limit=3,
                                         order="asc"), prices)
    assert rep.to_json(oldest)["sessions"] == full_json["sessions"][::-1][:3]
    # --project: no summary to total from, so every session is read and the list cut
    mine = builder.build(live, builder.Options(kind="session", project="web", limit=4), prices)
    every = builder.build(live, builder.Options(kind="session", project="web"), prices)
    assert mine.source == "exact" and mine.hidden == len(every.rows) - 4
    assert rep.to_json(mine)["totals"] == rep.to_json(every)["totals"]


def test_session_table_shows_the_newest_50_and_says_how_to_see_more(home):
    db = ledger.connect(home.ledger)
    w = Writer(db)
    for i in range(60):
        sid = w.session(at("2026-03-01T08:00") + i * 3600, "codex")
        w.add(sid, ("tokens", "gpt-5", "input", 1000))
    db.close()
    out = run_in_terminal(home, "report", "session", "--timezone", "UTC",
                          env={"COLUMNS": "120", "NO_COLOR": "1"})
    assert "10 more sessions not shown" in out and "--limit" in out
    assert "2026-03-03 19:00" in out and "2026-03-01 17:00" not in out  # newest first
    assert "2026-03-01 18:00" in out  # the 50th newest
    assert re.search(r"^Total .* 60(,000|\.0k) ", out, re.M)  # the totals: every session
    every = run_in_terminal(home, "report", "session", "--limit", "0", "--timezone", "UTC")
    assert "not shown" not in every and "2026-03-01 08:00" in every
    piped = home.run("report", "session", "--timezone", "UTC").stdout  # issue 23 item 8
    assert "not shown" not in piped and "2026-03-01 08:00" in piped
    assert len(re.findall(r"^2026-03-0\d \d\d:00 ", piped, re.M)) == 60
    json_out = home.run("report", "session", "--json").stdout
    assert json_out.count('"id"') == 60  # JSON lists every session unless --limit is given
    two = home.run("report", "daily", "--limit", "2", "--timezone", "UTC").stdout
    assert "1 more rows not shown" in two
