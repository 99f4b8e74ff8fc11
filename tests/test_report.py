"""`aitrack report`: what a user reads off the ledger, run as a user would run it."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from aitrack.store import ledger

UTC = ZoneInfo("UTC")


class Ledger:
    """Builds a ledger the way the wrapper would leave it."""

    def __init__(self, home):
        self.db = ledger.connect(home.ledger)

    def session(self, when: datetime, tool: str = "claude", project: str = "app",
                cwd: str | None = None, usage: dict | None = None, cost: dict | None = None,
                metrics: dict | None = None, duration: float | None = 60.0,
                exit_code: int | None = 0, version: str = "1.0", entrypoint: str | None = None,
                sources: int = ledger.TELEMETRY | ledger.WRAPPER,
                decisions: dict | None = None, tool_session_id: str | None = None) -> str:
        sid = f"{tool}:{tool_session_id}" if tool_session_id else uuid.uuid4().hex
        started = when.timestamp()
        with ledger.write(self.db):
            self.db.execute(
                "INSERT INTO sessions (id, tool, tool_version, started_at, ended_at, exit_code,"
                " cwd, project, entrypoint, sources, tool_session_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sid, tool, version, started, None if duration is None else started + duration,
                 exit_code, cwd or f"/src/{project}", project, entrypoint, sources,
                 tool_session_id))
            for (tool_name, decision), count in (decisions or {}).items():
                self.db.execute("INSERT INTO tool_decisions VALUES (?, ?, ?, ?)",
                                (sid, tool_name, decision, count))
            for model, counts in (usage or {}).items():
                self.db.executemany("INSERT INTO usage VALUES (?, ?, ?, ?)",
                                    [(sid, model, t, n) for t, n in counts.items()])
            for model, usd in (cost or {}).items():
                self.db.execute("INSERT INTO session_metrics VALUES (?, ?, 'cost_usd', ?)",
                                (sid, model, usd))
            for name, value in (metrics or {}).items():
                self.db.execute("INSERT INTO session_metrics VALUES (?, '', ?, ?)",
                                (sid, name, value))
        return sid


@pytest.fixture
def led(home) -> Ledger:
    return Ledger(home)


def report_json(home, *args: str) -> dict:
    proc = home.run("report", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def at(text: str, zone: str = "UTC") -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


SMALL = {"input": 1000, "output": 100}


# ---------------------------------------------------------------- empty ledger


def test_no_ledger_says_how_to_start_and_creates_nothing(home):
    proc = home.run("report")
    assert proc.returncode == 0, proc.stderr
    assert "aitrack claude" in proc.stdout
    assert "Date" not in proc.stdout  # no empty table
    assert not home.ledger.exists()


def test_empty_ledger_json_is_still_valid_json(home, led):
    data = report_json(home, "daily")
    assert data["daily"] == []
    assert data["totals"]["sessions"] == 0
    proc = home.run("report", "session")
    assert "aitrack claude" in proc.stdout


# ---------------------------------------------------------------- time


def test_a_session_at_2330_local_lands_on_the_local_day_in_two_zones(home, led):
    led.session(at("2026-03-10T23:30", "America/New_York"), usage={"claude-opus-5-5": SMALL})
    led.session(at("2026-03-10T23:30", "Asia/Kolkata"), usage={"gpt-5": SMALL}, tool="codex")
    ny = report_json(home, "daily", "--timezone", "America/New_York")["daily"]
    # the Kolkata session is 13:00 UTC -> 09:00 in New York, same day
    assert [(r["period"], r["sessions"]) for r in ny] == [("2026-03-10", 2)]
    kolkata = report_json(home, "daily", "--timezone", "Asia/Kolkata")["daily"]
    # New York 23:30 is 03:30 UTC -> 09:00 next day in Kolkata
    assert [(r["period"], r["models"]) for r in kolkata] == [
        ("2026-03-10", ["gpt-5"]), ("2026-03-11", ["claude-opus-5-5"])]
    utc = report_json(home, "daily", "--timezone", "UTC")["daily"]
    assert [r["period"] for r in utc] == ["2026-03-10", "2026-03-11"]


def test_days_follow_daylight_saving_changes(home, led):
    # 2026-03-29: Berlin moves from UTC+1 to UTC+2 at 01:00 UTC
    led.session(at("2026-03-28T23:30", "Europe/Berlin"), usage={"gpt-5": SMALL})
    led.session(at("2026-03-29T23:30", "Europe/Berlin"), usage={"gpt-5": SMALL})
    rows = report_json(home, "daily", "--timezone", "Europe/Berlin")["daily"]
    assert [r["period"] for r in rows] == ["2026-03-28", "2026-03-29"]


def test_since_and_until_are_inclusive_local_days(home, led):
    zone = "Europe/Berlin"
    for stamp in ("2026-02-28T23:59:59", "2026-03-01T00:00", "2026-03-03T23:59:59",
                  "2026-03-04T00:00"):
        led.session(at(stamp, zone), usage={"gpt-5": SMALL})
    rows = report_json(home, "daily", "--timezone", zone, "--since", "2026-03-01",
                       "--until", "2026-03-03")["daily"]
    assert [r["period"] for r in rows] == ["2026-03-01", "2026-03-03"]
    sessions = report_json(home, "session", "--timezone", zone, "--since", "2026-03-01",
                           "--until", "2026-03-03")["sessions"]
    assert [s["started_at"] for s in sessions] == ["2026-03-03T23:59:59+01:00",
                                                    "2026-03-01T00:00:00+01:00"]


def test_last_n_days_includes_today(home, led):
    now = datetime.now(UTC)
    led.session(now, usage={"gpt-5": SMALL})
    led.session(datetime.fromtimestamp(now.timestamp() - 3 * 86400, UTC), usage={"gpt-5": SMALL})
    assert report_json(home, "daily", "--timezone", "UTC", "--last", "1")["totals"][
        "sessions"] == 1
    assert report_json(home, "daily", "--timezone", "UTC", "--last", "4")["totals"][
        "sessions"] == 2


def test_weeks_start_on_monday_unless_told_otherwise(home, led):
    led.session(at("2026-03-08T12:00"), usage={"gpt-5": SMALL})  # a Sunday
    led.session(at("2026-03-09T12:00"), usage={"gpt-5": SMALL})  # a Monday
    monday = report_json(home, "weekly", "--timezone", "UTC")["weekly"]
    assert [(r["period"], r["sessions"]) for r in monday] == [("2026-03-02", 1),
                                                              ("2026-03-09", 1)]
    sunday = report_json(home, "weekly", "--timezone", "UTC", "--week-start", "sunday")["weekly"]
    assert [(r["period"], r["sessions"]) for r in sunday] == [("2026-03-08", 2)]


def test_monthly_and_order(home, led):
    led.session(at("2026-01-31T23:00"), usage={"gpt-5": SMALL})
    led.session(at("2026-02-01T01:00"), usage={"gpt-5": SMALL})
    rows = report_json(home, "monthly", "--timezone", "UTC", "--order", "desc")["monthly"]
    assert [r["period"] for r in rows] == ["2026-02", "2026-01"]
    # in Tokyo both fall in February
    rows = report_json(home, "monthly", "--timezone", "Asia/Tokyo")["monthly"]
    assert [(r["period"], r["sessions"]) for r in rows] == [("2026-02", 2)]


# ---------------------------------------------------------------- cost


def test_codex_cost_is_estimated_from_list_prices(home, led):
    # codex ledger rows: input is uncached (input - cached_input), reasoning is inside output
    led.session(at("2026-03-10T12:00"), tool="codex", usage={"gpt-5-codex": {
        "input": 1_000_000, "cache_read": 500_000, "output": 200_000, "reasoning": 50_000}})
    rows = report_json(home, "daily", "--timezone", "UTC")["daily"]
    # gpt-5-codex: $1.25 input, $0.125 cached input, $10 output per million
    expected = 1.0 * 1.25 + 0.5 * 0.125 + 0.2 * 10.0
    assert rows[0]["cost_usd"] == pytest.approx(expected) == pytest.approx(3.3125)
    assert rows[0]["cost_source"] == "estimated"
    assert rows[0]["total"] == 1_700_000  # reasoning is not added again
    assert rows[0]["reasoning"] == 50_000


def test_reported_claude_cost_is_passed_through_untouched(home, led):
    led.session(at("2026-03-10T12:00"), usage={"claude-opus-5-5": {
        "input": 1_000_000, "output": 1_000_000}}, cost={"claude-opus-5-5": 0.123456})
    data = report_json(home, "session", "--timezone", "UTC")
    session = data["sessions"][0]
    assert session["cost_usd"] == 0.123456  # not the $24 list-price estimate
    assert session["cost_source"] == "reported"
    assert data["totals"]["cost_usd"] == 0.123456


def test_reported_and_estimated_parts_add_up_as_mixed(home, led):
    led.session(at("2026-03-10T12:00"), usage={"claude-opus-5-5": SMALL},
                cost={"claude-opus-5-5": 1.5})
    led.session(at("2026-03-10T13:00"), tool="codex",
                usage={"gpt-5": {"input": 1_000_000}})
    row = report_json(home, "daily", "--timezone", "UTC")["daily"][0]
    assert row["cost_usd"] == pytest.approx(1.5 + 1.25)
    assert row["cost_source"] == "mixed"


def test_unknown_model_is_null_never_zero_and_named_in_the_footer(home, led):
    led.session(at("2026-03-10T12:00"), tool="codex", usage={"acme-coder-9": SMALL})
    data = report_json(home, "session", "--timezone", "UTC")
    assert data["sessions"][0]["cost_usd"] is None
    assert data["sessions"][0]["cost_source"] == "unpriced"
    assert data["unpriced_models"] == ["acme-coder-9"]
    led.session(at("2026-03-10T13:00"), tool="codex", usage={"gpt-5": {"input": 1_000_000}})
    row = report_json(home, "daily", "--timezone", "UTC")["daily"][0]
    assert row["cost_source"] == "partial"
    assert row["cost_usd"] == pytest.approx(1.25)  # the known part only
    assert row["unpriced_models"] == ["acme-coder-9"]
    table = home.run("report", "--timezone", "UTC").stdout
    assert "No price for acme-coder-9" in table and "`aitrack prices acme-coder-9`" in table
    assert "$1.25*" in table


def test_a_session_without_usage_is_listed_and_not_unpriced(home, led):
    led.session(at("2026-03-10T12:00"), exit_code=3)
    data = report_json(home, "session", "--timezone", "UTC")
    s = data["sessions"][0]
    assert (s["exit_code"], s["models"], s["cost_usd"], s["cost_source"]) == (3, [], 0.0, "none")
    assert data["unpriced_models"] == []


def test_profile_prices_override_and_add(home, led):
    led.session(at("2026-03-10T12:00"), tool="codex", usage={"gpt-5-codex": {"input": 1_000_000}})
    led.session(at("2026-03-11T12:00"), tool="codex", usage={"acme-coder-9": {"output": 1_000_000}})
    home.write_user_profile('[prices."gpt-5-codex"]\ninput = 2.0\n')
    home.write_managed_profile('[prices."acme-coder-9"]\ninput = 1.0\noutput = 7.5\n')
    rows = report_json(home, "daily", "--timezone", "UTC")["daily"]
    assert [(r["cost_usd"], r["cost_source"]) for r in rows] == [(2.0, "estimated"),
                                                                 (7.5, "estimated")]


# ---------------------------------------------------------------- shapes


def test_session_json_contract(home, led):
    led.session(at("2026-03-10T12:00"), tool="codex", version="0.169.0",
                usage={"gpt-5": {"input": 10, "output": 20, "cache_read": 30,
                                 "cache_creation": 40, "reasoning": 5}}, duration=90.5)
    old = led.session(at("2026-03-09T12:00"), usage={"claude-opus-5-5": SMALL,
                                                     "claude-haiku-4-5": SMALL},
                      cost={"claude-opus-5-5": 0.5, "claude-haiku-4-5": 0.25})
    data = report_json(home, "session", "--timezone", "Europe/Berlin")
    first, second = data["sessions"]  # newest first
    assert {"id", "tool", "tool_version", "started_at", "ended_at", "duration_s", "exit_code",
            "models", "tokens", "cost_usd", "cost_source"} <= set(first)
    assert first["tool"] == "codex" and first["tool_version"] == "0.169.0"
    assert first["started_at"] == "2026-03-10T13:00:00+01:00"
    assert first["ended_at"] == "2026-03-10T13:01:30+01:00"
    assert first["duration_s"] == 90.5
    assert first["tokens"] == {"input": 10, "output": 20, "cache_read": 30,
                               "cache_creation": 40, "reasoning": 5, "total": 100}
    assert second["id"] == old
    assert second["models"] == ["claude-haiku-4-5", "claude-opus-5-5"]
    assert second["cost_usd"] == 0.75
    assert set(data["totals"]) >= {"tokens", "cost_usd"}
    assert data["totals"]["tokens"]["total"] == 100 + 2 * 1100
    asc = report_json(home, "session", "--order", "asc")["sessions"]
    assert [s["id"] for s in asc][0] == old


def test_period_json_fields(home, led):
    led.session(at("2026-03-10T12:00"), usage={"claude-opus-5-5": SMALL},
                cost={"claude-opus-5-5": 2.0},
                metrics={"lines_added": 120, "lines_removed": 30, "commits": 4,
                         "pull_requests": 1})
    data = report_json(home, "daily", "--timezone", "UTC")
    row = data["daily"][0]
    for key in ("period", "sessions", "input", "output", "cache_read", "cache_creation",
                "reasoning", "total", "cost_usd", "cost_source", "lines_added",
                "lines_removed", "commits", "pull_requests", "cost_per_commit"):
        assert key in row, key
    assert (row["lines_added"], row["lines_removed"], row["commits"], row["pull_requests"]) == (
        120, 30, 4, 1)
    assert row["cost_per_commit"] == 0.5
    assert data["totals"]["commits"] == 4
    assert data["timezone"] == "UTC"


def test_csv_has_one_header_line_and_the_same_fields(home, led):
    led.session(at("2026-03-10T12:00"), usage={"claude-opus-5-5": SMALL, "gpt-5": SMALL})
    led.session(at("2026-03-11T12:00"), usage={"gpt-5": SMALL})
    proc = home.run("report", "daily", "--csv", "--timezone", "UTC")
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("period,model,sessions,input,output,cache_read,cache_creation,"
                               "reasoning,total,cost_usd")
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [(r["period"], r["sessions"], r["total"]) for r in rows] == [
        ("2026-03-10", "1", "2200"), ("2026-03-11", "1", "1100")]
    proc = home.run("report", "daily", "--csv", "--breakdown", "--timezone", "UTC")
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [(r["period"], r["model"]) for r in rows] == [
        ("2026-03-10", ""), ("2026-03-10", "claude-opus-5-5"), ("2026-03-10", "gpt-5"),
        ("2026-03-11", ""), ("2026-03-11", "gpt-5")]
    proc = home.run("report", "session", "--csv")
    assert len(list(csv.DictReader(io.StringIO(proc.stdout)))) == 2
    assert proc.stdout.count("\n") == 3


def test_breakdown_gives_a_sub_row_per_model(home, led):
    led.session(at("2026-03-10T12:00"), usage={"claude-opus-5-5": SMALL},
                cost={"claude-opus-5-5": 1.0})
    led.session(at("2026-03-10T13:00"), usage={"claude-opus-5-5": SMALL,
                                               "claude-haiku-4-5": SMALL},
                cost={"claude-opus-5-5": 2.0, "claude-haiku-4-5": 0.5})
    row = report_json(home, "daily", "--breakdown", "--timezone", "UTC")["daily"][0]
    assert row["sessions"] == 2
    assert [(b["model"], b["sessions"], b["cost_usd"]) for b in row["breakdown"]] == [
        ("claude-haiku-4-5", 1, 0.5), ("claude-opus-5-5", 2, 3.0)]
    table = home.run("report", "--breakdown", "--timezone", "UTC").stdout
    assert re.search(r"^\s+claude-haiku-4-5\s", table, re.M)


def test_model_report(home, led):
    led.session(at("2026-03-10T12:00"), usage={"claude-opus-5-5": SMALL},
                cost={"claude-opus-5-5": 1.0})
    led.session(at("2026-03-10T13:00"), usage={"claude-opus-5-5": SMALL, "gpt-5": SMALL},
                cost={"claude-opus-5-5": 2.0})
    data = report_json(home, "model")
    assert [(r["period"], r["sessions"]) for r in data["models"]] == [
        ("claude-opus-5-5", 2), ("gpt-5", 1)]
    assert data["totals"]["sessions"] == 2


def test_tool_project_and_model_filters(home, led, tmp_path):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "sub").mkdir()
    led.session(at("2026-03-10T12:00"), tool="claude", project="repo", cwd=str(repo / "sub"),
                usage={"claude-opus-5-5": SMALL})
    led.session(at("2026-03-10T13:00"), tool="codex", project="repo",
                cwd=str(tmp_path / "elsewhere" / "repo"), usage={"gpt-5": SMALL})
    led.session(at("2026-03-10T14:00"), tool="codex", project="other",
                cwd=str(tmp_path / "repo-other"), usage={"gpt-5-mini": SMALL})

    def sessions(*args):
        return [s["models"] for s in report_json(home, "session", *args)["sessions"]]

    assert sessions("--tool", "codex") == [["gpt-5-mini"], ["gpt-5"]]
    assert sessions("--project", "repo") == [["gpt-5"], ["claude-opus-5-5"]]  # by name
    assert sessions("--project", str(repo / "sub")) == [["claude-opus-5-5"]]  # by work tree
    assert sessions("--model", "gpt-5*") == [["gpt-5-mini"], ["gpt-5"]]
    assert sessions("--model", "gpt-5") == [["gpt-5"]]
    daily = report_json(home, "daily", "--tool", "codex", "--model", "gpt-5")["daily"]
    assert daily[0]["sessions"] == 1 and daily[0]["models"] == ["gpt-5"]


# ---------------------------------------------------------------- the terminal table


def test_table_has_thousands_separators_and_a_totals_row(home, led):
    led.session(at("2026-03-10T12:00"), usage={"gpt-5": {"input": 1_234_567, "output": 1}})
    out = home.run("report", "--timezone", "UTC", env={"COLUMNS": "120"}).stdout
    assert "1,234,567" in out
    assert re.search(r"^Total\s+1\s+1,234,567", out, re.M)
    assert all(len(line) <= 120 for line in out.splitlines())


@pytest.mark.parametrize("width", [80, 60])
def test_narrow_widths_get_a_compact_table(home, led, width):
    led.session(at("2026-03-10T12:00"), usage={"claude-opus-5-5": {
        "input": 123_456_789, "output": 23_456_789, "cache_read": 987_654_321,
        "cache_creation": 12_345_678}}, cost={"claude-opus-5-5": 1234.5},
        metrics={"lines_added": 12345, "lines_removed": 678, "commits": 9, "pull_requests": 2})
    out = home.run("report", "--timezone", "UTC", "--width", str(width)).stdout
    lines = out.splitlines()
    assert all(len(line) <= width for line in lines), out
    assert "2026-03-10" in out and "$1,234.50" in out
    assert "123M" in out and "123,456,789" not in out  # shortened numbers
    assert f"Hidden to fit {width} columns: " in out


def claude_session(led, when: str = "2026-03-10T12:00", **kw) -> str:
    """The issue's Claude session: 11,660 tokens, 7,000 of them cache reads."""
    return led.session(at(when), usage={"claude-opus-5-5": {
        "input": 3_000, "output": 1_410, "cache_read": 7_000, "cache_creation": 250}},
        cost={"claude-opus-5-5": 0.3}, metrics={"commits": 2, "lines_added": 40}, **kw)


def test_a_pipe_or_a_file_gets_every_column_whatever_the_terminal(home, led, tmp_path):
    """Finding 1: `report session | cat` or `> file` is not cut to 80 columns."""
    claude_session(led, project="a-project-with-a-long-name")
    for env in ({}, {"COLUMNS": "80"}):
        out = home.run("report", "session", "--timezone", "UTC", env=env).stdout
        header = out.splitlines()[0].split()
        for column in ("Project", "Models", "Input", "Output", "Cache", "read", "write",
                       "Total", "Tool", "Exit", "Duration", "Entry", "Source", "Commits"):
            assert column in header, (column, out)
        assert "Hidden" not in out and "a-project-with-a-long-name" in out
    with open(tmp_path / "report.txt", "w") as file:
        subprocess.run([sys.executable, "-m", "aitrack", "report", "session"], stdout=file,
                       env=home.env, timeout=60, check=True)
    assert "Cache write" in (tmp_path / "report.txt").read_text()
    narrow = home.run("report", "session", "--width", "80").stdout
    assert max(map(len, narrow.splitlines())) <= 80 and "Hidden to fit 80 columns" in narrow
    assert "--width lays out the table" in home.run("report", "--json", "--width", "80").stderr


TOKEN_COLUMNS = ("Input", "Output", "Cache read", "Cache write", "Cache")


def columns_of(table: str) -> dict[str, str]:
    """Header -> the Total row's cell, split on the dashes under the header line."""
    lines = table.splitlines()
    spans = [m.span() for m in re.finditer(r"-+", lines[1])]
    total = next(line for line in lines if line.startswith("Total"))
    return {lines[0][a:b].strip(): total[a:b].strip() for a, b in spans}


@pytest.mark.parametrize("width", [60, 72, 80, 90, 100, 120, 140, 200])
def test_the_token_columns_shown_add_up_to_total_at_every_width(home, led, width):
    """Finding 2: never Cache write without Cache read, in every kind."""
    claude_session(led)
    for kind in ("session", "daily", "model"):
        out = home.run("report", kind, "--timezone", "UTC", "--width", str(width)).stdout
        cells = columns_of(out)
        tokens = [c for c in TOKEN_COLUMNS if c in cells]
        assert tokens in ([], ["Input", "Output", "Cache"],
                          ["Input", "Output", "Cache read", "Cache write"]), (kind, out)
        if tokens and "," in cells["Total"]:  # full numbers: they add up exactly
            assert sum(int(cells[c].replace(",", "")) for c in tokens) == 11_660


def test_session_table_shows_tool_exit_status_duration_entry_point_and_source(home, led):
    """Finding 3: a failed Codex run no longer looks like an empty successful one."""
    led.session(at("2026-03-10T12:00"), tool="codex", exit_code=1, duration=4.2,
                entrypoint="codex_exec", sources=ledger.WRAPPER)
    claude_session(led, "2026-03-10T11:00", duration=5400, entrypoint="claude-vscode",
                   sources=ledger.TELEMETRY | ledger.TRANSCRIPT, exit_code=None)
    out = home.run("report", "session", "--timezone", "UTC").stdout
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["Started", "Tool", "Exit", "Duration", "Entry"]
    assert re.match(r"2026-03-10 12:00  codex\s+1\s+4s  codex_exec\s+wrapper\s", lines[2])
    assert re.match(r"2026-03-10 11:00  claude\s+—\s+1h 30m  claude-vscode\s+otel\+transcript\s",
                    lines[3])
    data = report_json(home, "session", "--timezone", "UTC")["sessions"]
    assert [(s["exit_code"], s["duration_s"], s["entrypoint"], s["sources"]) for s in data] == [
        (1, 4.2, "codex_exec", ["wrapper"]), (None, 5400.0, "claude-vscode",
                                             ["telemetry", "transcript"])]
    rows = list(csv.DictReader(io.StringIO(home.run("report", "session", "--csv").stdout)))
    assert [(r["exit_code"], r["entrypoint"], r["sources"]) for r in rows] == [
        ("1", "codex_exec", "wrapper"), ("", "claude-vscode", "telemetry;transcript")]


def test_breakdown_sub_rows_leave_contributions_to_their_day(home, led):
    """Finding 5: lines and commits are per session, so a model's sub-row has none (not 0)."""
    claude_session(led)
    out = home.run("report", "--breakdown", "--timezone", "UTC").stdout
    day, sub = out.splitlines()[2:4]
    assert re.search(r"\+40/-0\s+2\s+0\s+\$0\.15$", day)
    assert sub.startswith("  claude-opus-5-5") and sub.rstrip().endswith("$0.30")
    row = report_json(home, "daily", "--breakdown", "--timezone", "UTC")["daily"][0]
    assert (row["commits"], row["lines_added"], row["cost_per_commit"]) == (2, 40, 0.15)
    assert {k: row["breakdown"][0][k] for k in ("commits", "lines_added", "cost_per_commit")
            } == {"commits": None, "lines_added": None, "cost_per_commit": None}
    models = report_json(home, "model")
    assert models["models"][0]["commits"] is None and models["totals"]["commits"] == 2


def test_unpriced_models_are_one_footer_line_naming_aitrack_prices(home, led):
    """Issue 23 item 12: not 9 lines of TOML under every report; one line, the model's name
    whole at any width, and `aitrack prices NAME` for the snippet (valid TOML as pasted)."""
    import tomllib

    name = "acme-extremely-long-model-name-that-does-not-fit-x9"
    led.session(at("2026-03-10T12:00"), tool="codex", usage={name: SMALL})
    led.session(at("2026-03-10T13:00"), tool="codex", usage={"acme-coder-9": SMALL})
    wide = home.run("report", "--width", "400", "--timezone", "UTC").stdout
    [line] = [line for line in wide.splitlines() if line.startswith("No price")]
    assert line == (f"No price for acme-coder-9, {name}: their cost is not counted (`unpriced`, "
                    f"or a lower bound marked *); `aitrack prices acme-coder-9 {name}` shows how "
                    "to add them.")
    assert "[prices." not in wide
    for width in ("60", "80"):
        lines = home.run("report", "--width", width, "--timezone", "UTC").stdout.splitlines()
        assert sum(name in line for line in lines) == 2  # whole, never cut inside
        assert all(len(line) <= int(width) for line in lines if name not in line)
    prices = home.run("prices", name).stdout
    snippet = prices[prices.index(f'[prices."{name}"]'):].splitlines()
    assert tomllib.loads("\n".join(s.strip() for s in snippet)) == {"prices": {name: {}}}


def test_table_says_unpriced_and_marks_a_partial_sum_as_the_readme_does(home, led):
    """Finding 7: the table's words are the README's."""
    from conftest import REPO

    led.session(at("2026-03-10T12:00"), tool="codex", usage={"acme-coder-9": SMALL})
    out = home.run("report", "--timezone", "UTC").stdout
    assert re.search(r"^2026-03-10\s.*\sunpriced$", out, re.M)
    led.session(at("2026-03-10T13:00"), tool="codex", usage={"gpt-5": {"input": 1_000_000}})
    out = home.run("report", "--timezone", "UTC").stdout
    assert re.search(r"^2026-03-10\s.*\s\$1\.25\*$", out, re.M) and "n/a" not in out
    readme = (REPO / "README.md").read_text()
    reports = readme[readme.index("## Reports"):readme.index("## Report JSON")]
    assert "`unpriced`" in reports and "`$0.08*`" in reports
    assert "two or more" in reports  # the bar chart's condition


def test_options_that_would_be_ignored_are_refused_or_explained(home, led, tmp_path):
    """Finding 9: nothing accepted and ignored without a word."""
    claude_session(led)
    proc = home.run("report", "daily", "--week-start", "sunday")
    assert proc.returncode == 1 and "--week-start applies to `aitrack report weekly`" in (
        proc.stderr)
    assert home.run("report", "weekly", "--week-start", "sunday").returncode == 0
    proc = home.run("report", "model", "--breakdown")
    assert proc.returncode == 1 and "one row per model already" in proc.stderr
    out = home.run("report", "session", "--breakdown", "--timezone", "UTC").stdout
    assert re.search(r"^  claude-opus-5-5\s", out, re.M)  # a sub-row per model
    missing = tmp_path / "nonexistent"
    proc = home.run("report", "--project", str(missing))
    assert proc.stdout == "No sessions match these filters.\n" and proc.returncode == 1
    assert proc.stderr == (f"aitrack: --project {missing}: {missing} is not a directory and no "
                           "session ran there (projects: app)\n")
    proc = home.run("report", "--project", "ap", "--json")
    assert "no session has the project name 'ap' (did you mean app?; projects: app)" in (
        proc.stderr)
    assert json.loads(proc.stdout)["daily"] == [] and proc.returncode == 1
    proc = home.run("report", "--tool", "claud")
    assert "--tool claud: no session of that tool (did you mean claude?; tools: claude)" in (
        proc.stderr)
    assert proc.returncode == 1


def test_a_project_that_names_nothing_lists_every_project_near_matches_first(home, led):
    """Issue 23 item 15: `--project proj3` listed 6 of 14 projects, suggested nothing and
    exited 0."""
    for i in range(14):
        led.session(at("2026-03-10T12:00") + timedelta(minutes=i),
                    project=f"-home-dev-src-proj{i}", usage={"gpt-5": SMALL})
    proc = home.run("report", "--project", "proj3")
    assert proc.returncode == 1 and proc.stdout == "No sessions match these filters.\n"
    assert proc.stderr == (
        "aitrack: --project proj3: no session has the project name 'proj3' (did you mean "
        "-home-dev-src-proj3?; projects: -home-dev-src-proj13, -home-dev-src-proj12, "
        "-home-dev-src-proj11, -home-dev-src-proj10, -home-dev-src-proj9, -home-dev-src-proj8 "
        "and 8 more)\n")
    fine = home.run("report", "--project", "-home-dev-src-proj3", "--last", "1")
    assert fine.returncode == 0  # a project with no session in the range is no mistake


def test_a_damaged_ledger_or_a_directory_is_one_line_naming_the_fix(home):
    """Finding 10: not "unexpected error: DatabaseError" nor "disk I/O error"."""
    home.ledger.parent.mkdir(parents=True)
    home.ledger.write_bytes(b"this is not SQLite " * 300)
    for args in (("report",), ("report", "session", "--json"), ("dashboard",)):
        proc = home.run(*args)
        assert proc.returncode == 1 and proc.stdout == ""
        assert proc.stderr == (
            f"aitrack: the ledger {home.ledger} cannot be read (file is not a database): "
            f"`aitrack doctor` checks it; if it is damaged, move it aside (`mv {home.ledger} "
            f"{home.ledger}.broken`) and the next tracked run starts a new one\n")
    home.ledger.unlink()
    home.ledger.mkdir()
    proc = home.run("report")
    assert proc.returncode == 1
    assert proc.stderr == (f"aitrack: the ledger path {home.ledger} is a directory, not a "
                           f"ledger: move it aside (`mv {home.ledger} {home.ledger}.old`); the "
                           "next tracked run starts a new ledger\n")


def test_model_report_shows_tool_acceptance_per_tool_and_tool_name(home, led):
    """Seed 004's contribution metric: accepted and rejected tool uses, and the rate."""
    claude_session(led, decisions={("Edit", "accept"): 30, ("Edit", "reject"): 10,
                                   ("Write", "accept"): 5})
    led.session(at("2026-03-11T12:00"), tool="codex", usage={"gpt-5": SMALL},
                decisions={("shell", "accept"): 3, ("shell", "reject"): 1})
    led.session(at("2026-03-12T12:00"), tool="codex", project="other",
                decisions={("shell", "reject"): 7})
    data = report_json(home, "model", "--project", "app")
    assert data["acceptance"] == [
        {"tool": "claude", "accepted": 35, "rejected": 10, "acceptance_rate": 0.7778,
         "tool_names": [{"tool_name": "Edit", "accepted": 30, "rejected": 10,
                         "acceptance_rate": 0.75},
                        {"tool_name": "Write", "accepted": 5, "rejected": 0,
                         "acceptance_rate": 1.0}]},
        {"tool": "codex", "accepted": 3, "rejected": 1, "acceptance_rate": 0.75,
         "tool_names": [{"tool_name": "shell", "accepted": 3, "rejected": 1,
                         "acceptance_rate": 0.75}]}]
    assert report_json(home, "model", "--tool", "codex")["acceptance"][0]["rejected"] == 8
    out = home.run("report", "model").stdout
    assert re.search(r"^Tool acceptance\s+Accepted\s+Rejected\s+Rate$", out, re.M)
    assert re.search(r"^claude\s+35\s+10\s+77\.8%$", out, re.M)
    assert re.search(r"^  Edit\s+30\s+10\s+75\.0%$", out, re.M)
    assert "acceptance" not in report_json(home, "daily")  # the model report's


def test_subset_tokens_are_priced_at_their_rates(home, led):
    """1-hour cache writes and long-context parts cost more; they are never added to totals."""
    from aitrack.domain import pricing

    tokens = {"input": 400_000, "cache_read": 100_000, "cache_creation": 200_000,
              "output": 50_000, "cache_creation_1h": 150_000, "long_input": 300_000,
              "long_cache_creation": 100_000, "long_cache_creation_1h": 50_000,
              "long_output": 20_000}
    led.session(at("2026-03-10T12:00"), usage={"claude-sonnet-5-5": tokens})
    expected = pricing.estimate(tokens, pricing.load().price_for("claude-sonnet-5-5"))
    base = pricing.estimate({k: tokens[k] for k in ("input", "cache_read", "cache_creation",
                                                    "output")},
                            pricing.load().price_for("claude-sonnet-5-5"))
    assert expected > base  # the subsets do change the price
    for kind, key in (("daily", "daily"), ("model", "models"), ("session", "sessions")):
        data = report_json(home, kind, "--timezone", "UTC")
        row = data[key][0]
        assert row["cost_usd"] == pytest.approx(expected), kind
        total = row["tokens"]["total"] if kind == "session" else row["total"]
        assert total == 750_000


def test_a_stale_price_table_is_said_once_in_the_footer(home, led):
    from datetime import date

    from aitrack.domain import pricing
    from aitrack.reports import figures
    from aitrack.reports import tables as rep

    led.session(at("2026-03-10T12:00"), tool="codex", usage={"gpt-5": SMALL})
    prices = pricing.load()
    opts = figures.Options(today=date.fromisoformat(prices.as_of) + timedelta(days=200))
    out = rep.render(figures.build(rep.open_ledger(home.ledger), opts, prices), None,
                     False, False, today=opts.today)
    stale = pricing.stale_line(prices.as_of, opts.today)
    assert stale and out.count(stale) == 1
    fresh = home.run("report", "--timezone", "UTC").stdout
    assert "days old" not in fresh


def run_in_terminal(home, *args: str, env: dict | None = None) -> str:
    """Run the CLI with stdout on a pseudo-terminal, as a user at a shell would."""
    primary, secondary = pty.openpty()
    full_env = {k: v for k, v in home.env.items() if k != "NO_COLOR"}
    full_env.update({"COLUMNS": "100", **(env or {})})
    proc = subprocess.Popen([sys.executable, "-m", "aitrack", *args], stdout=secondary,
                            stderr=subprocess.PIPE, env=full_env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=60)
    os.close(primary)
    return b"".join(chunks).decode()


def test_colours_and_chart_on_a_terminal_and_no_colour_under_NO_COLOR(home, led):
    for day in range(1, 6):
        led.session(at(f"2026-03-0{day}T12:00"), usage={"gpt-5": {"output": day * 100_000}})
    coloured = run_in_terminal(home, "report", "--timezone", "UTC")
    assert "\x1b[" in coloured
    assert "cost per day" in coloured and "█" in coloured
    plain = run_in_terminal(home, "report", "--timezone", "UTC", env={"NO_COLOR": "1"})
    assert "\x1b[" not in plain
    assert "2026-03-05" in plain
    piped = home.run("report", "--timezone", "UTC").stdout
    assert "\x1b[" not in piped and "█" not in piped  # no chart or colour in a pipe


def test_bad_options_are_one_line_errors(home, led):
    proc = home.run("report", "--timezone", "Mars/Olympus")
    assert proc.returncode != 0 and "unknown time zone" in proc.stderr
    proc = home.run("report", "--last", "3", "--since", "2026-01-01")
    assert proc.returncode != 0 and "--last" in proc.stderr
    proc = home.run("report", "--since", "yesterday")
    assert proc.returncode != 0 and "2026-01-31" in proc.stderr


# ---------------------------------------------------------------- issue 23


def test_names_are_cut_at_their_right_end_with_an_ellipsis_into_the_room_left(home, led):
    """Item 7: `-home-dev-sr` for `-home-dev-src-proj3`, a trailing comma in model lists,
    and 174 of 200 columns used."""
    for i in range(3):
        led.session(at("2026-03-10T12:00") + timedelta(hours=i),
                    project=f"-home-dev-src-a-rather-long-project-name-proj{i}", usage={
                        "claude-haiku-4-5-20251001": SMALL, "claude-opus-4-5-20251101": SMALL,
                        "claude-sonnet-4-5-20250929": SMALL})
    for width in (150, 200):
        lines = home.run("report", "session", "--timezone", "UTC", "--width", str(width),
                         ).stdout.splitlines()
        assert max(map(len, lines)) == width  # cut names get the room left, to the column
        row = lines[2]
        project = re.search(r"  ([-…][\w-]*proj2)  ", row)[1]
        assert project == "-home-dev-src-a-rather-long-project-name-proj2" or (
            project.startswith("…") and len(project) >= 12), row  # the end that tells apart
        models = re.search(r"  (claude-[^ ]*(?: \+\d)?)  ", row)[1]
        assert not models.endswith(",") and re.fullmatch(r"claude-[\w.-]+(…)?( \+[12])?",
                                                          models), models
        assert "…" in row, row  # something had to be cut at this width
    full = home.run("report", "session", "--timezone", "UTC").stdout  # a pipe: all of it
    assert "-home-dev-src-a-rather-long-project-name-proj2" in full
    assert "claude-haiku-4-5-20251001, claude-opus-4-5-20251101, claude-sonnet-4-5-20250929" in (
        full)


def test_the_bar_chart_spans_every_row_with_gaps_at_80_columns(home, led):
    """Item 9: a bar per row hid the gaps, 91 rows ran off 80 columns, and the title's date
    was not the table's first."""
    first = at("2025-11-01T12:00")
    for day in range(97):
        if not 40 <= day < 46:  # a quiet week in December
            led.session(first + timedelta(days=day), tool="codex", usage={"gpt-5": SMALL})
    today = datetime.now(UTC).replace(microsecond=0)
    led.session(today, tool="codex", usage={"gpt-5": SMALL})
    out = run_in_terminal(home, "report", "--timezone", "UTC",
                          env={"COLUMNS": "80", "NO_COLOR": "1"}).replace("\r", "")
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), out
    title = " ".join(lines[:lines.index(next(x for x in lines if "▁" in x or "█" in x))])
    assert title.startswith(f"cost per day, 2025-11-01 to {today.date()} (peak $")
    assert "a bar is 2 days" in title and "┊:" in title and "days without sessions" in title
    bars = next(x for x in lines if "█" in x)
    assert "┊" in bars and len(bars) <= 80
    assert "  " in bars.split("┊")[0]  # the quiet week shows
    table_first = next(x for x in lines if re.match(r"\d{4}-\d\d-\d\d ", x))
    assert table_first.startswith("2025-11-01")


def test_color_always_never_and_force_color(home, led):
    """Item 14: `--color=always | less -R`, FORCE_COLOR, NO_COLOR, as ccusage users expect."""
    led.session(at("2026-03-10T12:00"), tool="codex", usage={"acme-coder-9": SMALL})
    assert "\x1b[" not in home.run("report").stdout  # a pipe: none by default
    assert "\x1b[" in home.run("report", "--color=always").stdout
    assert "\x1b[" in home.run("report", env={"FORCE_COLOR": "1"}).stdout
    assert "\x1b[" not in home.run("report", env={"FORCE_COLOR": "0"}).stdout
    assert "\x1b[" not in run_in_terminal(home, "report", "--color", "never")
    assert "\x1b[" not in run_in_terminal(home, "report", env={"NO_COLOR": "1"})
    assert "\x1b[" in run_in_terminal(home, "report")
    assert "\x1b[" in run_in_terminal(home, "report", "--color=always", env={"NO_COLOR": "1"})


def test_sessions_show_the_tools_own_id_ready_for_resume(home, led):
    """Item 17: aitrack's id is not what `claude --resume` or `codex resume` take."""
    own = {"claude": "84f0c2d4-5e3b-4a1f-9c2d-6b7e8f9a0b1c",
           "codex": "019a7e5c-3b2d-7f10-8e4a-2c6d9b0f1e3a"}
    for i, (tool, tool_id) in enumerate(own.items()):
        led.session(at("2026-03-10T12:00") + timedelta(hours=i), tool=tool,
                    usage={"gpt-5": SMALL}, tool_session_id=tool_id)
    sessions = report_json(home, "session", "--timezone", "UTC")["sessions"]
    assert [(s["id"], s["tool_session_id"], s["resume"]) for s in sessions] == [
        (f"codex:{own['codex']}", own["codex"], f"codex resume {own['codex']}"),
        (f"claude:{own['claude']}", own["claude"], f"claude --resume {own['claude']}")]
    table = home.run("report", "session", "--timezone", "UTC").stdout.splitlines()
    assert table[0].endswith("Session id")
    assert table[2].endswith(own["codex"]) and table[3].endswith(own["claude"])
    rows = list(csv.DictReader(io.StringIO(home.run("report", "session", "--csv").stdout)))
    assert [r["tool_session_id"] for r in rows] == [own["codex"], own["claude"]]


def test_report_project_ranks_projects_by_cost(home, led):
    """Parity with ccusage: a row per project (ccusage's --instances)."""
    led.session(at("2026-03-10T12:00"), project="web", usage={"gpt-5": {"input": 1_000_000}})
    led.session(at("2026-03-11T12:00"), project="api", usage={"gpt-5": {"input": 3_000_000}})
    led.session(at("2026-03-12T12:00"), project="api", usage={"gpt-5": {"input": 1_000_000}})
    data = report_json(home, "project", "--timezone", "UTC")
    assert [(r["period"], r["sessions"], r["cost_usd"]) for r in data["projects"]] == [
        ("api", 2, 5.0), ("web", 1, 1.25)]
    assert data["totals"]["cost_usd"] == 6.25
    lines = home.run("report", "project", "--timezone", "UTC").stdout.splitlines()
    assert lines[0].startswith("Project ") and lines[2].startswith("api ")
    one = report_json(home, "project", "--project", "web", "--timezone", "UTC")["projects"]
    assert [r["period"] for r in one] == ["web"]


def test_by_tool_gives_a_sub_row_per_tool_equal_to_the_tools_own_report(home, led):
    """Parity with ccusage's per-agent rows: `--by-tool` in daily, weekly and monthly."""
    led.session(at("2026-03-10T12:00"), tool="claude", usage={"claude-opus-5-5": SMALL},
                cost={"claude-opus-5-5": 0.5})
    led.session(at("2026-03-10T13:00"), tool="codex", usage={"gpt-5": {"input": 1_000_000}})
    led.session(at("2026-03-17T13:00"), tool="codex", usage={"gpt-5": {"input": 1_000_000}})
    for kind in ("daily", "weekly", "monthly"):
        data = report_json(home, kind, "--by-tool", "--timezone", "UTC")
        for row in data[kind]:
            for sub in row["tools"]:
                alone = report_json(home, kind, "--tool", sub["tool"], "--timezone", "UTC")
                [same] = [r for r in alone[kind] if r["period"] == row["period"]]
                assert {k: sub[k] for k in same if k != "period"} == {
                    k: v for k, v in same.items() if k != "period"}, (kind, sub)
            assert sum(s["cost_usd"] for s in row["tools"]) == pytest.approx(row["cost_usd"])
    table = home.run("report", "--by-tool", "--timezone", "UTC").stdout.splitlines()
    assert [line.split()[0] for line in table[2:5]] == ["2026-03-10", "claude", "codex"]
    rows = list(csv.DictReader(io.StringIO(home.run("report", "--by-tool", "--csv").stdout)))
    assert [(r["period"], r["tool"]) for r in rows][:3] == [
        ("2026-03-10", ""), ("2026-03-10", "claude"), ("2026-03-10", "codex")]
    refused = home.run("report", "session", "--by-tool")
    assert refused.returncode == 1 and "daily, weekly and monthly" in refused.stderr


def test_blocks_are_each_tools_5_hour_windows_with_burn_rate_and_projection(home, led):
    """Parity with ccusage's `blocks`: windows from the hour of their first session, per
    tool that has them; the open one with its burn rate, projection and a token limit."""
    from aitrack.domain import pricing
    from aitrack.reports import blocks
    from aitrack.reports.periods import Options
    from aitrack.reports.readonly import open_ledger

    def claude(when: str, tokens: int, cost: float) -> None:
        led.session(at(when), usage={"claude-opus-5-5": {"input": tokens}},
                    cost={"claude-opus-5-5": cost})

    claude("2026-03-10T09:10", 10_000, 1.0)
    claude("2026-03-10T13:59", 20_000, 2.0)  # still the 09:00-14:00 window
    claude("2026-03-10T14:05", 5_000, 0.5)  # the next one opens at 14:00
    claude("2026-03-11T08:00", 6_000, 0.6)  # after a night: a window of its own
    led.session(at("2026-03-10T10:00"), tool="codex", usage={"gpt-5": {"input": 1_000_000}})
    led.session(at("2026-03-10T10:00"), tool="run", usage={"gpt-5": {"input": 1_000}})
    now = at("2026-03-11T10:00").timestamp()  # two hours into the last Claude window
    db = open_ledger(home.ledger)
    opts = Options(tz=UTC, tz_name="UTC")
    found = blocks.build(db, opts, pricing.load(), now)
    assert [(datetime.fromtimestamp(b.start, UTC).strftime("%d %H:%M"), b.tool,
             b.figures.total, b.active) for b in found] == [
        ("10 09:00", "claude", 30_000, False), ("10 10:00", "codex", 1_000_000, False),
        ("10 14:00", "claude", 5_000, False), ("11 08:00", "claude", 6_000, True)]
    active = found[-1]
    assert active.burn(now) == (50.0, pytest.approx(0.3))  # per minute; USD per hour
    assert active.projected(now) == (6_000 + 50 * 180, pytest.approx(0.6 + 0.3 * 3))
    limits = blocks.limit_of(found, "max")
    assert limits == {"claude": 30_000, "codex": 1_000_000}
    data = blocks.to_json(found, opts, now, limits)["blocks"][-1]
    assert data["remaining_s"] == 3 * 3600 and data["cost_usd"] == 0.6
    assert data["token_limit"] == {"limit": 30_000, "used_percent": 20.0,
                                   "projected_percent": 50.0, "exceeded": False}
    text = blocks.render(found, opts, now, {"claude": 10_000}, None, False)
    assert re.search(r"^2026-03-11 08:00-13:00\s+claude\s+active, 3h 00m left\s+1\s+6\.0k\s+"
                     r"\$0\.60\s+50 tok/min, \$0\.30/h\s+15\.0k, \$1\.50\s+60% \(projected "
                     r"150%\)$", text, re.M), text


def test_report_blocks_from_the_command_line(home, led):
    led.session(datetime.now(UTC) - timedelta(minutes=30), usage={"claude-opus-5-5": SMALL},
                cost={"claude-opus-5-5": 0.25})
    led.session(at("2026-03-10T09:00"), usage={"claude-opus-5-5": SMALL},
                cost={"claude-opus-5-5": 0.25})
    data = report_json(home, "blocks", "--active", "--token-limit", "5000")
    [block] = data["blocks"]
    assert block["active"] and block["tool"] == "claude" and block["cost_usd"] == 0.25
    assert block["token_limit"]["limit"] == 5000 and block["burn_rate"]["tokens_per_minute"] > 0
    table = home.run("report", "blocks", "--timezone", "UTC").stdout
    assert "2026-03-10 09:00-14:00  claude  done" in table and "active, " in table
    for args, said in ((("blocks", "--csv"), "--csv does not apply"),
                       (("daily", "--active"), "are for `aitrack report blocks`"),
                       (("blocks", "--token-limit", "lots"), "give a number of tokens")):
        proc = home.run("report", *args)
        assert proc.returncode == 1 and said in proc.stderr, (args, proc.stderr)
