"""The price table: shipped prices and their provenance, name matching, fast modes, 1-hour
cache writes, long-context tiers, staleness, profile overrides, and the cost arithmetic."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from datetime import date, timedelta

import pytest

import model_stub
from aitrack.domain import pricing, tokens


@pytest.fixture(scope="module")
def table() -> pricing.PriceTable:
    return pricing.load()


def cost(table: pricing.PriceTable, model: str, figures: dict, speed: str | None = None) -> float:
    price = table.price_for(model, speed)
    assert price is not None, model
    return pricing.estimate(figures, price)


# ---------------------------------------------------------------- the shipped table


def test_every_row_says_where_its_prices_come_from_and_when_they_were_checked():
    data = tomllib.loads(pricing.TABLE.read_text(encoding="utf-8"))
    rows = data["models"]
    assert len(rows) >= 57  # the 44 audited rows and the 13 the audit found missing
    for name, row in rows.items():
        assert row["source"] in ("first-party", "third-party"), name
        assert row["ref"].strip(), name
        assert date.fromisoformat(row["checked"]) <= date.today(), name
        assert {"input", "output"} <= set(row), name
        long = row.get("long")
        if long is not None:
            assert isinstance(long["above"], int) and long["above"] > 0, name
            assert long["input"] >= row["input"] and long["output"] >= row["output"], name
    # the date reports show is the oldest check, so it never claims fresher prices than it has
    assert data["as_of"] == min(row["checked"] for row in rows.values())


def test_current_defaults_and_the_audits_corrections(table):
    opus = table.price_for("claude-opus-5-5")  # Claude Code's default model
    assert (opus.input, opus.output, opus.cache_read, opus.cache_write_5m,
            opus.cache_write_1h) == (4.0, 20.0, 0.20, 5.0, 8.0)
    sol = table.price_for("gpt-6.1-sol")  # Codex's default model since 0.159.1
    assert (sol.input, sol.cache_read, sol.output, sol.cache_write_5m) == (2.0, 0.10, 10.0, 2.50)
    assert (sol.long.above, sol.long.input, sol.long.cache_read, sol.long.output) == (
        272_000, 4.0, 0.20, 15.0)
    assert table.price_for("claude-sonnet-5-5").cache_read == 0.10  # cut on 2026-10-07
    new = table.price_for("gpt-6.2-sol")
    assert (new.input, new.cache_read, new.output, new.cache_write_5m) == (2.0, 0.10, 10.0, 2.50)
    assert (new.party, new.checked) == ("first-party", "2026-11-22")
    # conflicting references: no cached discount, the conservative choice, said on the row
    for pro in ("gpt-5.5-pro", "gpt-5.4-pro"):
        price = table.price_for(pro)
        assert price.cache_read == price.input == 30.0
        assert "conflict" in price.note or "LiteLLM $3.00" in price.note
    # Mythos rows are the matching Fable rows
    for mythos, fable in (("claude-mythos-5", "claude-fable-5"),
                          ("claude-mythos-5-1", "claude-fable-5-1")):
        a, b = table.price_for(mythos), table.price_for(fable)
        assert pricing.estimate(ALL_TYPES, a) == pricing.estimate(ALL_TYPES, b)
    for model in ("gpt-6-sol", "gpt-6-luna", "gpt-6-astra", "gpt-5.6-sol", "gpt-5.6-terra",
                  "gpt-5.6-luna", "gpt-5.3-codex-spark", "o3", "o4-mini", "claude-haiku-4-5",
                  "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5.1-codex", "gpt-5.1-codex-mini"):
        assert table.price_for(model) is not None, model


ALL_TYPES = {"input": 1_000_000, "output": 1_000_000, "cache_read": 1_000_000,
             "cache_creation": 1_000_000, "cache_creation_1h": 400_000}


@pytest.mark.parametrize("model", ["claude-fable-5-2", "claude-mythos-5-2", "gpt-6.2-astra",
                                   "gpt-6.1-terra", "claude-mythos-preview", "qwen3.7-max"])
def test_models_without_a_confirmed_price_stay_unpriced(table, model):
    assert table.price_for(model) is None
    assert table.explain(model) is None


# ---------------------------------------------------------------- the audit's worked examples


def test_worked_example_1_opus_5_5_with_one_hour_writes(table):
    figures = {"input": 200_000, "cache_read": 5_000_000, "cache_creation": 400_000,
               "cache_creation_1h": 400_000, "output": 150_000, "reasoning": 60_000}
    assert cost(table, "claude-opus-5-5", figures) == pytest.approx(8.00, abs=1e-9)
    five_minute = {k: v for k, v in figures.items() if k != "cache_creation_1h"}
    assert cost(table, "claude-opus-5-5", five_minute) == pytest.approx(6.80, abs=1e-9)


def test_worked_example_2_gpt_5_5_cached_input(table):
    figures = {"input": 800_000, "cache_read": 3_200_000, "output": 120_000}
    assert cost(table, "gpt-5.5", figures) == pytest.approx(9.20, abs=1e-9)


def test_worked_example_3_sonnet_4_5_one_long_context_request(table):
    request = tokens.request({"input": 250_000, "output": 2_000}, "claude-sonnet-4-5", table)
    assert request == {"input": 250_000, "output": 2_000,
                       "long_input": 250_000, "long_output": 2_000}
    assert cost(table, "claude-sonnet-4-5", request) == pytest.approx(1.545, abs=1e-9)


def test_worked_example_4_fast_mode_has_its_own_price(table):
    figures = {"input": 1_000_000, "output": 100_000}
    assert cost(table, "claude-opus-5-fast", figures) == pytest.approx(15.00, abs=1e-9)
    assert cost(table, "claude-opus-5", figures, speed="fast") == pytest.approx(15.00, abs=1e-9)
    assert cost(table, "claude-opus-5", figures) == pytest.approx(7.50, abs=1e-9)


def test_worked_example_5_a_bedrock_id(table):
    figures = {"input": 1_000_000}
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert cost(table, model, figures) == pytest.approx(3.00, abs=1e-9)


# ---------------------------------------------------------------- name matching


@pytest.mark.parametrize("name, row, rule", [
    ("claude-opus-5-5", "claude-opus-5-5", "exact"),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5",
     "bedrock region + bedrock vendor + bedrock version + date suffix"),
    ("anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5",
     "bedrock vendor + bedrock version + date suffix"),
    ("global.anthropic.claude-opus-5", "claude-opus-5", "bedrock region + bedrock vendor"),
    ("eu.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5",
     "bedrock region + bedrock vendor + bedrock version + date suffix"),
    ("apac.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4",
     "bedrock region + bedrock vendor + bedrock version + date suffix"),
    ("anthropic.claude-opus-4-6-v1", "claude-opus-4-6", "bedrock vendor + bedrock version"),
    ("anthropic.claude-haiku-5-5", "claude-haiku-5-5", "bedrock vendor"),
    ("bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5",
     "router prefix + bedrock vendor + bedrock version + date suffix"),
    ("bedrock/us.anthropic.claude-opus-4-6-v1:0", "claude-opus-4-6",
     "router prefix + bedrock region + bedrock vendor + bedrock version"),
    ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
     "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5",
     "bedrock ARN + bedrock region + bedrock vendor + bedrock version + date suffix"),
    ("arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-opus-4-6-v1", "claude-opus-4-6",
     "bedrock ARN + bedrock vendor + bedrock version"),
    ("claude-opus-4-6@default", "claude-opus-4-6", "vertex version"),
    ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5", "vertex version"),
    ("vertex_ai/claude-opus-4-6@default", "claude-opus-4-6", "router prefix + vertex version"),
    ("claude-opus-4.6", "claude-opus-4-6", "dotted version"),
    ("anthropic/claude-opus-4.6", "claude-opus-4-6", "router prefix + dotted version"),
    ("claude-3-5-haiku-latest", "claude-3-5-haiku", "latest alias"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5", "date suffix"),
    ("gpt-5-2025-08-07", "gpt-5", "date suffix"),
    ("anthropic/claude-opus-5-5", "claude-opus-5-5", "router prefix"),
    ("openai/gpt-5-codex", "gpt-5-codex", "router prefix"),
    ("claude-opus-5-5[1m]", "claude-opus-5-5", "context suffix"),
    ("claude-sonnet-4-5-20250929[1m]", "claude-sonnet-4-5", "context suffix + date suffix"),
    ("GPT-5.4", "gpt-5.4", "lowercase"),
    ("codex-mini-latest", "codex-mini-latest", "exact"),  # its own row wins over the alias step
    ("claude-opus-4.8-fast", "claude-opus-4-8-fast", "dotted version"),
    ("us.anthropic.claude-opus-5-fast-v1:0", "claude-opus-5-fast",
     "bedrock region + bedrock vendor + bedrock version"),
])
def test_names_real_sessions_report_match_by_named_steps(table, name, row, rule):
    assert table.explain(name) == pricing.Match(row, rule)
    price = table.price_for(name)
    assert (price.row, price.rule, price.source) == (row, rule, "built-in")


@pytest.mark.parametrize("name", [
    "gpt-5-codex-ultra", "my-gpt-5", "claude-opus", "gpt-5x", "claude-opus-5-5-turbo", "",
    "claude-opus-4-6x", "my-claude-opus-5", "claude-opus-5-5-preview", "gpt-5-4",
    "gpt-5.6", "acme/gpt-5",  # an unknown router may serve anything under a known name
    "claude-opus-5-6", "claude-sonnet-4.5.1",
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
    "us.amazon.nova-pro-v1:0", "anthropic.claude-v2",
])
def test_never_a_substring_match_nor_a_guess(table, name):
    assert table.match(name) is None
    assert table.price_for(name) is None
    assert table.explain(name) is None


def test_dotted_versions_are_claude_only(table):
    # OpenAI versions are dotted: turning gpt-5.4 into gpt-5-4 would be another name
    assert table.explain("gpt-5.4") == pricing.Match("gpt-5.4", "exact")
    assert table.canonical("anthropic/Claude-Sonnet-4.5@20250929") == "claude-sonnet-4-5"
    assert table.canonical("gpt-5.4-2026-03-05") == "gpt-5.4"


# ---------------------------------------------------------------- fast mode


def test_a_fast_mode_is_its_own_row_never_the_standard_price(table):
    for model in ("claude-opus-5-5", "claude-opus-5", "claude-opus-4-8", "claude-opus-4-6"):
        fast, standard = table.price_for(model + "-fast"), table.price_for(model)
        assert fast.row == model + "-fast"
        assert fast.output > standard.output and fast.input > standard.input
        flagged = table.price_for(model, speed="fast")
        assert (flagged.row, flagged.input, flagged.rule) == (
            model + "-fast", fast.input, "exact + speed fast")
    assert table.explain("claude-opus-4-6@default", speed="fast") == pricing.Match(
        "claude-opus-4-6-fast", "vertex version + speed fast")
    fast = table.price_for("claude-opus-5-5-fast")
    assert (fast.input, fast.output, fast.cache_read) == (8.0, 40.0, 0.40)


@pytest.mark.parametrize("name, speed", [
    ("claude-haiku-4-5-fast", None), ("claude-haiku-4-5", "fast"),
    ("claude-sonnet-4-5-20250929-fast", None), ("anthropic.claude-sonnet-4-5-v1:0", "fast"),
    ("gpt-5.5-fast", None), ("gpt-5.5", "fast"),
])
def test_a_fast_model_without_a_row_is_unpriced(table, name, speed):
    assert table.price_for(name, speed) is None
    assert table.explain(name, speed) is None
    assert table.is_long_context(name, 10_000_000, speed) is False


# ---------------------------------------------------------------- unpriced


def test_an_unpriced_model_has_no_price_and_is_never_long_context(table):
    assert table.price_for("acme-coder-9") is None
    assert table.explain("acme-coder-9") is None
    assert table.is_long_context("acme-coder-9", 10_000_000) is False
    assert pricing.price_for("no-such-model") is None


# ---------------------------------------------------------------- long-context tiers


@pytest.mark.parametrize("model, threshold", [
    ("claude-sonnet-4-5", 200_000), ("claude-sonnet-4", 200_000),
    ("us.anthropic.claude-sonnet-4-20250514-v1:0", 200_000), ("claude-haiku-5-5", 100_000),
    ("gpt-5.4", 272_000), ("gpt-5.5", 272_000), ("gpt-6.1-sol", 272_000),
    ("gpt-5.6-sol", 272_000),
])
def test_long_context_starts_above_the_threshold(table, model, threshold):
    assert table.is_long_context(model, threshold) is False
    assert table.is_long_context(model, threshold + 1) is True


@pytest.mark.parametrize("model", ["claude-opus-5-5", "claude-sonnet-4-6", "gpt-5", "gpt-6.2-sol"])
def test_models_without_a_tier_are_never_long_context(table, model):
    assert table.price_for(model).long is None
    assert table.is_long_context(model, 5_000_000) is False


def test_long_parts_are_billed_at_the_tier_and_the_rest_at_the_short_rates(table):
    # two Sonnet 4.5 requests: one short, one of 300k prompt tokens, summed in the ledger
    short = tokens.request({"input": 1_000, "cache_read": 50_000, "cache_creation": 10_000,
                            "output": 1_000})
    long = tokens.request({"input": 20_000, "cache_read": 200_000, "cache_creation": 80_000,
                           "cache_creation_1h": 80_000, "output": 4_000},
                          "claude-sonnet-4-5", table)
    summed = {k: short.get(k, 0) + long.get(k, 0) for k in {*short, *long}}
    expected = ((1_000 * 3 + 50_000 * 0.30 + 10_000 * 3.75 + 1_000 * 15)
                + (20_000 * 6 + 200_000 * 0.60 + 80_000 * 12 + 4_000 * 22.50)) / 1e6
    assert cost(table, "claude-sonnet-4-5", summed) == pytest.approx(expected, abs=1e-12)


def test_aggregates_without_long_parts_bill_at_the_short_rates(table):
    # a daily sum of 2M input cannot say which requests were long: short rates, as documented
    assert cost(table, "claude-sonnet-4-5", {"input": 2_000_000}) == pytest.approx(6.0)


def test_long_parts_of_a_model_without_a_tier_are_ordinary_tokens(table):
    figures = {"input": 300_000, "long_input": 300_000, "output": 1_000, "long_output": 1_000}
    assert cost(table, "claude-opus-5-5", figures) == pytest.approx(0.3 * 4 + 0.001 * 20)


def test_haiku_5_5_long_tier_is_five_times_the_base(table):
    request = tokens.request({"input": 150_000, "output": 10_000}, "claude-haiku-5-5", table)
    assert cost(table, "claude-haiku-5-5", request) == pytest.approx(0.15 * 0.50 + 0.01 * 2.50)


# ---------------------------------------------------------------- 1-hour cache writes


def test_one_hour_writes_at_the_one_hour_rate_the_rest_at_five_minutes(table):
    figures = {"cache_creation": 1_000_000, "cache_creation_1h": 250_000}
    assert cost(table, "claude-sonnet-4-5", figures) == pytest.approx(0.75 * 3.75 + 0.25 * 6.0)


def test_inconsistent_subsets_never_bill_more_than_their_base(table):
    # sources disagree (a subset above its base): billed as if the subset were all of it
    figures = {"cache_creation": 100_000, "cache_creation_1h": 500_000,
               "input": 10_000, "long_input": 90_000}
    assert cost(table, "claude-sonnet-4-5", figures) == pytest.approx(
        0.1 * 6.0 + 0.01 * 6.0)


def test_reasoning_is_never_billed_again(table):
    with_reasoning = {"output": 100_000, "reasoning": 60_000}
    assert cost(table, "gpt-5", with_reasoning) == cost(table, "gpt-5", {"output": 100_000})


# ---------------------------------------------------------------- Codex cache writes


def test_codex_cache_writes_are_part_of_input_and_billed_once(table):
    # Checked with codex 0.169.0 against the model stub: Codex passes the Responses API's
    # usage through unchanged (input_tokens 5000 includes 1200 cached and 300 written, total
    # 5700 = input + output), so the ledger's non-overlapping figures are these.
    u = model_stub.OpenAIUsage(cache_write=300)
    ledger = {"input": u.input - u.cached - u.cache_write, "cache_read": u.cached,
              "cache_creation": u.cache_write, "output": u.output, "reasoning": u.reasoning}
    assert ledger["input"] == 3_500
    assert tokens.total(ledger) == u.input + u.output == 5_700
    # gpt-5.6-sol: $5 input, $0.50 cached, $6.25 cache writes (1.25x input), $30 output
    expected = (3_500 * 5 + 1_200 * 0.50 + 300 * 6.25 + 700 * 30) / 1e6
    assert cost(table, "gpt-5.6-sol", ledger) == pytest.approx(expected, abs=1e-12)
    # storing the writes again beside input - cached bills 300 tokens twice
    doubled = {**ledger, "input": u.input - u.cached}
    assert tokens.total(doubled) == 6_000
    assert cost(table, "gpt-5.6-sol", doubled) - expected == pytest.approx(300 * 5 / 1e6)


def test_the_real_codex_reports_cache_writes_inside_input(stub, tmp_path):
    """The semantics above, as codex itself reports them: every figure of the Responses API's
    usage passed through unchanged, cache writes read from input_tokens_details."""
    import agents

    codex = agents.agent_bin("codex")
    stub.openai = model_stub.OpenAIUsage(cache_write=300)
    home = tmp_path / "user-home"
    (home / ".codex").mkdir(parents=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home / ".codex"),
           "MOCK_KEY": "sk-test"}
    quiet = [arg for key in ("exporter", "metrics_exporter", "trace_exporter")
             for arg in ("-c", f'otel.{key}="none"')]
    proc = subprocess.run([codex, "exec", *agents.codex_provider_args(stub), *quiet, "hi"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    counts = [json.loads(line)["payload"]["info"]["last_token_usage"]
              for rollout in (home / ".codex" / "sessions").rglob("rollout-*.jsonl")
              for line in rollout.read_text().splitlines()
              if '"token_count"' in line and json.loads(line)["payload"].get("info")]
    assert counts[-1] == {"input_tokens": 5_000, "cached_input_tokens": 1_200,
                          "cache_write_input_tokens": 300, "output_tokens": 700,
                          "reasoning_output_tokens": 250, "total_tokens": 5_700}


def test_openai_rows_before_gpt_5_6_bill_cached_input_at_the_cached_rate(table):
    figures = {"input": 800_000, "cache_read": 200_000, "output": 100_000, "reasoning": 60_000}
    assert cost(table, "gpt-5", figures) == pytest.approx(0.8 * 1.25 + 0.2 * 0.125 + 0.1 * 10.0)


# ---------------------------------------------------------------- staleness


def test_a_table_older_than_90_days_says_how_to_update():
    as_of = date(2026, 11, 22)
    assert pricing.stale_line(as_of.isoformat(), as_of + timedelta(days=90)) is None
    line = pricing.stale_line(as_of.isoformat(), as_of + timedelta(days=91))
    assert line is not None and "\n" not in line
    assert "91 days" in line and "2026-11-22" in line
    assert "newer aitrack" in line and '[prices."MODEL"]' in line
    assert pricing.stale_line(None, as_of) is None
    assert pricing.stale_line("not a date", as_of) is None


# ---------------------------------------------------------------- profile overrides


def test_profile_overrides_key_by_key_and_adds_models():
    t = pricing.load({"gpt-5-codex": {"input": 1.0},
                      "acme-coder": {"input": 2.0, "output": 4.0}})
    codex = t.price_for("gpt-5-codex")
    assert (codex.input, codex.output, codex.cache_read, codex.source, codex.profile_keys) == (
        1.0, 10.0, 0.125, "profile", ("input",))
    assert (codex.party, codex.checked) == ("first-party", "2026-11-22")  # the row it overrides
    acme = t.price_for("acme-coder-20260101")  # the steps apply to profile entries too
    # no cached price given: cache reads and writes are billed as input
    assert (acme.input, acme.output, acme.cache_read, acme.cache_write_5m, acme.cache_write_1h,
            acme.party, acme.rule) == (2.0, 4.0, 2.0, 2.0, 2.0, None, "date suffix")


def test_a_profile_override_keeps_the_rows_long_context_tier():
    t = pricing.load({"claude-sonnet-4-5": {"input": 2.0}})
    price = t.price_for("claude-sonnet-4-5")
    assert (price.input, price.long.input, price.long.above) == (2.0, 6.0, 200_000)


def test_a_profile_row_can_price_a_fast_mode_or_a_bedrock_id_exactly():
    t = pricing.load({"claude-haiku-4-5-fast": {"input": 2.0, "output": 10.0},
                      "us.anthropic.claude-opus-9-v1:0": {"input": 9.0, "output": 45.0}})
    assert t.price_for("claude-haiku-4-5", speed="fast").input == 2.0
    assert t.explain("us.anthropic.claude-opus-9-v1:0") == pricing.Match(
        "us.anthropic.claude-opus-9-v1:0", "exact")


def test_a_profile_entry_without_input_and_output_does_not_price_a_new_model():
    t = pricing.load({"acme-coder": {"input": 2.0}})
    assert t.price_for("acme-coder") is None
    assert t.resolve("acme-coder") == pricing.Match("acme-coder", "exact")


def test_module_level_price_for_uses_the_shipped_table():
    assert pricing.price_for("gpt-5-nano").output == 0.40
    assert pricing.price_for("claude-opus-5", speed="fast").output == 50.0
