"""`aitrack prices` and the doctor's prices check, run as a user would run them."""

from __future__ import annotations

import json
import re
import tomllib
from datetime import date, timedelta
from pathlib import Path

import pytest

from aitrack.config import paths, profile, schema
from aitrack.domain import pricing
from aitrack.install import doctor
from aitrack.store import ledger

BEDROCK = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


def prices_json(home, *args: str) -> dict:
    proc = home.run("prices", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def with_usage(home, models: list[str]) -> None:
    """A ledger as the wrapper leaves it: one session using these models."""
    db = ledger.connect(home.ledger)
    with ledger.write(db):
        db.execute("INSERT INTO sessions (id, tool, started_at) VALUES ('s1', 'claude', 1.0)")
        db.executemany("INSERT INTO usage (session_id, model, token_type, tokens) "
                       "VALUES ('s1', ?, ?, 10)",
                       [(m, t) for m in models for t in ("input", "output")])
    db.close()


def filled(snippet: str, **values: float) -> str:
    """The snippet as a user completes it: each commented price line set."""
    return re.sub(r"^# (\w+) = 0\.0$", lambda m: f"{m[1]} = {values[m[1]]}", snippet,
                  flags=re.M)


# ---------------------------------------------------------------- named models


def test_text_shows_the_price_the_row_and_the_rule(home):
    proc = home.run("prices", "claude-opus-5-5", BEDROCK, "gpt-6.1-sol")
    assert proc.returncode == 0, proc.stderr
    blocks = proc.stdout.split("\n\n")
    assert blocks[0].startswith("Prices in USD per million tokens; built-in table as of "
                                f"{pricing.load().as_of}.")
    assert blocks[1].splitlines() == [
        "claude-opus-5-5",
        "  row       claude-opus-5-5 (exact name)",
        "  price     input 4.00, output 20.00, cache read 0.20, cache write 5.00 (5 min), "
        "8.00 (1 h)",
        "  source    built-in, first-party, platform.claude.com/docs/en/about-claude/pricing, "
        "checked 2026-11-22",
    ]
    bedrock = blocks[2].splitlines()
    assert bedrock[:4] == [
        BEDROCK,
        "  row       claude-sonnet-4-5 (bedrock region + bedrock vendor + bedrock version + "
        "date suffix)",
        "  price     input 3.00, output 15.00, cache read 0.30, cache write 3.75 (5 min), "
        "6.00 (1 h)",
        "  long      input 6.00, output 22.50, cache read 0.60, cache write 7.50 (5 min), "
        "12.00 (1 h) for a request whose prompt is above 200,000 tokens",
    ]
    sol = blocks[3].splitlines()
    assert sol[2] == "  price     input 2.00, output 10.00, cache read 0.10, cache write 2.50"
    assert sol[4].startswith("  source    built-in, third-party, ")


def test_json_gives_every_price_the_tier_and_the_provenance(home):
    data = prices_json(home, BEDROCK, "claude-opus-5", "gpt-5-nano")
    assert data["prices_as_of"] == pricing.load().as_of
    assert data["stale"] is None and data["ledger"] is None
    sonnet, opus, nano = data["models"]
    assert sonnet == {
        "model": BEDROCK, "priced": True, "row": "claude-sonnet-4-5",
        "rule": "bedrock region + bedrock vendor + bedrock version + date suffix",
        "source": "built-in", "party": "first-party",
        "ref": "platform.claude.com/docs/en/about-claude/pricing (long context pricing)",
        "checked": "2026-11-22", "note": sonnet["note"], "profile_keys": [],
        "profile_origin": None, "reported_by": [],
        "usd_per_million": {"input": 3.0, "output": 15.0, "cache_read": 0.3,
                            "cache_write_5m": 3.75, "cache_write_1h": 6.0},
        "long_context": {"above_prompt_tokens": 200_000,
                         "usd_per_million": {"input": 6.0, "output": 22.5, "cache_read": 0.6,
                                             "cache_write_5m": 7.5, "cache_write_1h": 12.0}},
    }
    assert (opus["row"], opus["long_context"]) == ("claude-opus-5", None)
    assert nano["usd_per_million"]["cache_read"] == 0.005


def test_an_unpriced_model_comes_with_a_snippet_that_is_a_valid_profile(home):
    data = prices_json(home, "acme-coder-9")
    (entry,) = data["models"]
    assert (entry["priced"], entry["row"], entry["reason"]) == (
        False, None, "no price row matches this name")
    snippet = entry["snippet"]
    parsed = tomllib.loads(snippet)
    assert list(parsed["prices"]) == ["acme-coder-9"]
    text = home.run("prices", "acme-coder-9").stdout
    assert "unpriced" in text and "reports show its cost as `unpriced`, never $0" in text
    assert "n/a" not in text
    assert all(f"    {line}" in text for line in snippet.splitlines())

    # pasted as is (issue 23 item 13): `profile validate` says no price is set, instead of
    # "ok"; the model stays unpriced (its cost null, never $0)
    assert schema.validate(parsed, snippet) == [
        'prices.acme-coder-9 (line 1): sets no price: give at least input and output (USD '
        "per million tokens; any of cache_read, cache_write_5m, cache_write_1h left out costs "
        "what input does)"]
    home.write_user_profile(snippet)
    check = home.run("profile", "validate", str(home.user_profile))
    assert check.returncode == 1 and "sets no price" in check.stderr
    (entry,) = prices_json(home, "acme-coder-9")["models"]
    assert (entry["priced"], entry["row"]) == (False, None)
    # half filled in, the advice is to complete that entry, not a second one (a duplicate
    # table would be invalid TOML)
    home.write_user_profile('[prices."acme-coder-9"]\ninput = 2.0\n')
    (entry,) = prices_json(home, "acme-coder-9")["models"]
    assert (entry["priced"], entry["row"], entry["snippet"]) == (False, "acme-coder-9", None)
    assert entry["reason"] == ('your profile\'s [prices."acme-coder-9"] needs both an input '
                               "and an output price")
    # with the model's prices filled in, the same snippet prices it, and says from where
    home.write_user_profile(filled(snippet, input=2.0, output=8.0, cache_read=0.2,
                                   cache_write_5m=2.5, cache_write_1h=4.0))
    (entry,) = prices_json(home, "acme-coder-9-20270101")["models"]
    assert (entry["priced"], entry["row"], entry["rule"], entry["source"]) == (
        True, "acme-coder-9", "date suffix", "profile")
    assert entry["usd_per_million"]["output"] == 8.0
    assert entry["profile_origin"] == f"user ({home.user_profile})"
    text = home.run("prices", "acme-coder-9").stdout
    assert f"  source    profile, user ({home.user_profile})\n" in text


def test_the_snippet_names_the_model_as_every_variant_of_it_matches(home):
    name = "us.anthropic.claude-opus-9-20270101-v1:0"
    (entry,) = prices_json(home, name)["models"]
    assert entry["snippet"].startswith('[prices."claude-opus-9"]\n')
    home.write_user_profile(filled(entry["snippet"], input=6.0, output=30.0, cache_read=0.6,
                                   cache_write_5m=7.5, cache_write_1h=12.0))
    for variant in (name, "claude-opus-9@default", "anthropic/claude-opus-9"):
        assert prices_json(home, variant)["models"][0]["row"] == "claude-opus-9", variant


def test_a_fast_mode_without_a_row_is_unpriced_and_says_so(home):
    (entry,) = prices_json(home, "claude-haiku-4-5-fast")["models"]
    assert entry["priced"] is False
    assert "claude-haiku-4-5's standard price does not apply" in entry["reason"]
    assert entry["snippet"].startswith('[prices."claude-haiku-4-5-fast"]\n')


def test_profile_prices_apply_and_are_shown_as_such(home):
    home.write_managed_profile('[prices."gpt-5-codex"]\ninput = 2.0\n')
    (entry,) = prices_json(home, "gpt-5-codex")["models"]
    assert (entry["source"], entry["profile_keys"], entry["usd_per_million"]["input"],
            entry["usd_per_million"]["output"]) == ("profile", ["input"], 2.0, 10.0)
    origin = f"managed ({home.managed_profile})"
    assert entry["profile_origin"] == origin
    text = home.run("prices", "gpt-5-codex").stdout
    assert f"  source    profile, {origin}, sets input; the rest built-in, first-party, " in text


# ---------------------------------------------------------------- the ledger's models


def test_without_models_and_without_a_ledger_there_are_no_models_yet(home):
    proc = home.run("prices")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("No models yet")
    assert prices_json(home)["models"] == []
    assert not home.ledger.exists()  # looking never creates a ledger


def test_without_models_it_lists_every_model_in_the_ledger(home):
    with_usage(home, ["gpt-5-codex", BEDROCK, "acme-coder-9"])
    before = home.ledger.read_bytes()
    data = prices_json(home)
    assert data["ledger"] == str(home.ledger)
    assert [(m["model"], m["priced"]) for m in data["models"]] == [
        ("acme-coder-9", False), ("gpt-5-codex", True), (BEDROCK, True)]
    text = home.run("prices").stdout
    assert "\nacme-coder-9\n  unpriced" in text and f"\n{BEDROCK}\n  row" in text
    assert home.ledger.read_bytes() == before  # read-only


# ---------------------------------------------------------------- doctor


def ctx_of(home, tmp_path: Path) -> doctor.Context:
    env = {**home.env, "HOME": str(tmp_path)}
    locations = paths.resolve(env)
    return doctor.Context(env, locations, profile.load(locations, env), tmp_path)


@pytest.fixture
def ctx(home, tmp_path: Path) -> doctor.Context:
    return ctx_of(home, tmp_path)


def test_doctor_warns_once_the_table_is_older_than_90_days(ctx):
    as_of = date.fromisoformat(pricing.load().as_of)
    fresh = doctor.check_prices(ctx, today=as_of + timedelta(days=90))
    assert (fresh.status, fresh.summary) == ("PASS", f"built-in prices as of {as_of}")
    stale = doctor.check_prices(ctx, today=as_of + timedelta(days=91))
    assert stale.status == "WARN"
    assert stale.summary == pricing.stale_line(as_of.isoformat(), as_of + timedelta(days=91))
    assert "aitrack prices" in stale.fix and stale.data["stale"] is True


def test_doctor_names_the_ledgers_unpriced_models(home, ctx):
    today = date.fromisoformat(pricing.load().as_of)
    with_usage(home, ["gpt-5-codex"])
    ok = doctor.check_prices(ctx, today=today)
    assert (ok.status, ok.summary) == (
        "PASS", f"built-in prices as of {today}; 1 model in your ledger, all priced")
    with_usage_more(home, "acme-coder-9")
    check = doctor.check_prices(ctx, today=today)
    assert check.status == "WARN" and check.data["unpriced"] == ["acme-coder-9"]
    assert check.summary.startswith("no price for acme-coder-9 (in your ledger)")


def with_usage_more(home, model: str) -> None:
    db = ledger.connect(home.ledger)
    with ledger.write(db):
        db.execute("INSERT INTO usage (session_id, model, token_type, tokens) "
                   "VALUES ('s1', ?, 'input', 1)", (model,))
    db.close()


def test_doctor_runs_the_prices_check(home, tmp_path):
    checks = doctor.run({**home.env, "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    (check,) = [c for c in checks if c.name == "prices"]
    expected = doctor.check_prices(ctx_of(home, tmp_path))
    assert (check.status, check.summary) == (expected.status, expected.summary)
    assert check.summary.startswith(("built-in prices as of", "The built-in prices are"))


def test_a_cost_claude_reported_for_an_unpriced_model_is_called_its_own_estimate(home):
    """Issue 23 item 12: Claude Code prices models aitrack cannot; say whose figure it is."""
    db = ledger.connect(home.ledger)
    with ledger.write(db):
        db.execute("INSERT INTO sessions (id, tool, started_at) VALUES ('s1', 'claude', 1.0)")
        db.execute("INSERT INTO usage VALUES ('s1', 'claude-experimental-7', 'input', 10)")
        db.execute("INSERT INTO session_metrics VALUES ('s1', 'claude-experimental-7', "
                   "'cost_usd', 0.25)")
    db.close()
    text = home.run("prices").stdout
    assert "  unpriced  no price row matches this name: reports show its cost as `unpriced`" in (
        text)
    assert ("  reported  Claude Code reported a cost for it: that is Claude Code's own "
            "estimate, which reports count (aitrack has no price to check it against)") in text
    (entry,) = prices_json(home)["models"]
    assert entry["reported_by"] == ["claude"]
    check = doctor.check_prices(doctor.Context(dict(home.env), paths.resolve(home.env),
                                               profile.load(paths.resolve(home.env)), home.root))
    assert "reports show it as `unpriced`" in check.summary and "n/a" not in check.summary
