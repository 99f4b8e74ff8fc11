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
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from aitrack import ledger

UTC = ZoneInfo("UTC")


class Ledger:
    """Builds a ledger the way the wrapper would leave it."""

    def __init__(self, home):
        self.db = ledger.connect(home.ledger)

    def session(self, when: datetime, tool: str = "claude", project: str = "app",
                cwd: str | None = None, usage: dict | None = None, cost: dict | None = None,
                metrics: dict | None = None, duration: float = 60.0, exit_code: int = 0,
                version: str = "1.0") -> str:
        sid = uuid.uuid4().hex
        started = when.timestamp()
        with ledger.write(self.db):
            self.db.execute(
                "INSERT INTO sessions (id, tool, tool_version, started_at, ended_at, exit_code,"
                " cwd, project) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (sid, tool, version, started, started + duration, exit_code,
                 cwd or f"/src/{project}", project))
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
    assert "acme-coder-9" in table
    assert '[prices."acme-coder-9"]' in table
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
def test_narrow_terminals_get_a_compact_table(home, led, width):
    led.session(at("2026-03-10T12:00"), usage={"claude-opus-5-5": {
        "input": 123_456_789, "output": 23_456_789, "cache_read": 987_654_321,
        "cache_creation": 12_345_678}}, cost={"claude-opus-5-5": 1234.5},
        metrics={"lines_added": 12345, "lines_removed": 678, "commits": 9, "pull_requests": 2})
    out = home.run("report", "--timezone", "UTC", env={"COLUMNS": str(width)}).stdout
    lines = out.splitlines()
    assert all(len(line) <= width for line in lines), out
    assert "2026-03-10" in out and "$1,234.50" in out
    if width == 60:
        assert "123M" in out and "123,456,789" not in out  # shortened numbers
        assert "columns are hidden" in out


def run_in_terminal(home, *args: str, env: dict | None = None) -> str:
    """Run the CLI with stdout on a pseudo-terminal, as a user at a shell would."""
    primary, secondary = pty.openpty()
    full_env = {k: v for k, v in home.env.items() if k != "NO_COLOR"}
    full_env.update(COLUMNS="100", **(env or {}))
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
