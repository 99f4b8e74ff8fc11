"""`aitrack statusline`: Claude Code's status line from the ledger (issue 23: what ccusage
users expect), and `aitrack agent install --statusline` wiring it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from test_agent_wiring import claude_file, free_port, write
from test_report import SMALL, Ledger, report_json

SESSION = "84f0c2d4-5e3b-4a1f-9c2d-6b7e8f9a0b1c"


def status(home, stdin: str = "", **env: str) -> str:
    proc = home.run("statusline", input=stdin, env={"TZ": "UTC", **env})
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.count("\n") == 1
    return proc.stdout.strip()


def claude_json(session: str = SESSION, cost: float | None = None) -> str:
    data = {"session_id": session, "model": {"id": "claude-opus-5-5", "display_name": "Opus"},
            "workspace": {"current_dir": "/src/app"}}
    if cost is not None:
        data["cost"] = {"total_cost_usd": cost}
    return json.dumps(data)


@pytest.fixture
def led(home) -> Ledger:
    return Ledger(home)


def test_the_line_gives_this_sessions_cost_todays_and_the_budget(home, led):
    now = datetime.now(UTC)
    led.session(now - timedelta(minutes=5), usage={"claude-opus-5-5": SMALL},
                cost={"claude-opus-5-5": 0.42}, tool_session_id=SESSION)
    led.session(now - timedelta(minutes=20), tool="codex", usage={"gpt-5": {"input": 1_000_000}})
    led.session(now - timedelta(days=40), usage={"claude-opus-5-5": SMALL},
                cost={"claude-opus-5-5": 9.0})  # not today, not this month
    today = report_json(home, "daily", "--last", "1", "--timezone", "UTC")["totals"]
    assert today["cost_usd"] == pytest.approx(0.42 + 1.25)
    assert status(home, claude_json()) == "$0.42 this session · $1.67 today"
    home.write_user_profile("[budget]\ndaily_usd = 10\nmonthly_usd = 100\n")
    assert status(home, claude_json()) == ("$0.42 this session · $1.67 today · 17% of the "
                                           "$10.00 daily budget · $1.67 this month, 2% of "
                                           "$100.00")
    # from a terminal (no JSON on stdin): today's only
    assert status(home).startswith("$1.67 today · ")


def test_a_session_not_in_the_ledger_yet_shows_claudes_own_figure(home, led):
    led.session(datetime.now(UTC), tool="codex", usage={"gpt-5": {"input": 1_000_000}})
    assert status(home, claude_json(cost=0.031)) == (
        "$0.03 this session (the tool's own figure) · $1.25 today")
    assert status(home, claude_json()) == "$0.00 this session · $1.25 today"


def test_unpriced_models_mark_the_sum_and_a_new_price_applies_at_once(home, led):
    led.session(datetime.now(UTC), tool="codex", usage={"acme-coder-9": {"input": 1_000_000}})
    assert status(home) == "$0.00* today"
    home.write_user_profile('[prices."acme-coder-9"]\ninput = 2.0\noutput = 8.0\n')
    assert status(home) == "$2.00 today"  # the cache follows the profile


def test_no_ledger_yet_is_said_in_a_few_words(home):
    assert status(home, claude_json()) == "aitrack: no usage yet"
    assert not home.ledger.exists()


def test_agent_install_wires_the_status_line_keeps_it_and_puts_yours_back(home, tmp_path):
    from aitrack.capture import agent

    env = {**home.env, "HOME": str(tmp_path / "user"), "CLAUDE_CONFIG_DIR": None,
           "CODEX_HOME": None,
           "AITRACK_CLAUDE_MANAGED_SETTINGS": str(tmp_path / "etc/managed-settings.json"),
           "AITRACK_CODEX_SYSTEM_DIR": str(tmp_path / "etc/codex")}
    plain = {k: v for k, v in env.items() if v is not None}  # for a process of its own
    home.write_user_profile(f"[agent]\nport = {free_port()}\n")
    mine = {"type": "command", "command": "echo mine"}
    write(claude_file(plain), json.dumps({"statusLine": mine}, indent=2) + "\n")
    try:
        done = home.run("agent", "install", "--no-service", "--statusline", env=env)
        assert done.returncode == 0, done.stderr
        assert ("replaced your statusLine in ~/.claude/settings.json with `aitrack statusline` "
                "(put back at uninstall)") in done.stderr
        line = json.loads(claude_file(plain).read_text())["statusLine"]
        assert line["type"] == "command" and line["command"].endswith(" statusline")
        shown = subprocess.run(["sh", "-c", line["command"]], input=claude_json(),
                               capture_output=True, text=True, env=plain, timeout=60)
        assert shown.returncode == 0 and shown.stdout == "$0.00 this session · $0.00 today\n"
        # a plain install (at login, say) keeps it; --no-statusline gives yours back
        assert home.run("agent", "install", "--no-service", env=env).returncode == 0
        assert json.loads(claude_file(plain).read_text())["statusLine"] == line
        assert home.run("agent", "install", "--no-service", "--no-statusline",
                        env=env).returncode == 0
        assert json.loads(claude_file(plain).read_text())["statusLine"] == mine
        assert home.run("agent", "install", "--no-service", "--statusline",
                        env=env).returncode == 0
    finally:
        home.run("agent", "uninstall", env=env)
    assert json.loads(claude_file(plain).read_text()) == {"statusLine": mine}
    assert agent.probe(47318, None) in ("free", "other", "agent")  # nothing of ours left


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "Asia/Kolkata"])
def test_today_and_this_month_are_what_report_says_in_any_zone(home, led, zone):
    """From the hourly summaries where local days start on the hour, pair by pair where
    they do not (+05:30): either way `aitrack report`'s figure."""
    now = datetime.now(UTC)
    for minutes in (3, 90, 600, 1500, 3000):
        led.session(now - timedelta(minutes=minutes), tool="codex",
                    usage={"gpt-5": {"input": 100_000 * minutes, "cache_read": 5_000}})
        led.session(now - timedelta(minutes=minutes + 1), usage={"claude-opus-5-5": SMALL},
                    cost={"claude-opus-5-5": minutes / 1000})
    home.write_user_profile("[budget]\nmonthly_usd = 1000\n")
    day = report_json(home, "daily", "--last", "1", "--timezone", zone)["totals"]["cost_usd"]
    month = report_json(home, "monthly", "--since", datetime.now(ZoneInfo(zone)).strftime(
        "%Y-%m-01"), "--timezone", zone)["totals"]["cost_usd"]
    line = status(home, TZ=zone)
    assert line.startswith(f"${day:,.2f} today · ${month:,.2f} this month, "), (line, day, month)


# What Claude Code would wait for at every update were the status line to load it: a parser,
# the CLI framework, the keychain, the profiles, the price table (their cache is the point).
HEAVY = ("msgspec", "click", "tomllib", "tomlkit", "keyring", "psutil", "platformdirs",
         "aitrack.config.profile", "aitrack.domain.pricing")
LOADED = """
import sys
from aitrack import entry
sys.argv = ["aitrack", "statusline"]
try:
    entry.main()
except SystemExit:
    pass
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] != "aitrack" or "." in m)))
"""


def test_the_line_loads_nothing_heavy_once_its_cache_is_warm(home, led):
    """A regression here took each update from ~35 ms to ~65 ms (msgspec, through the
    ledger's request model): kept out by a check, since no timed test can hold it."""
    led.session(datetime.now(UTC), usage={"claude-opus-5-5": SMALL},
                cost={"claude-opus-5-5": 0.42}, tool_session_id=SESSION)
    home.write_user_profile("[budget]\ndaily_usd = 10\n")

    def loaded() -> tuple[str, set[str]]:
        proc = subprocess.run([sys.executable, "-c", LOADED], input=claude_json(),
                              capture_output=True, text=True, env={**home.env, "TZ": "UTC"},
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        line, modules = proc.stdout.splitlines()
        return line, set(modules.split())

    cold_line, cold = loaded()  # the cache is made: the profiles and the price table load
    assert "aitrack.domain.pricing" in cold
    line, warm = loaded()
    assert line == cold_line == "$0.42 this session · $0.42 today · 4% of the $10.00 daily budget"
    assert not [m for m in warm if m.split(".")[0] in HEAVY or m in HEAVY]
