"""The price table: shipped prices, family matching rules, profile overrides, estimates."""

from __future__ import annotations

import pytest

from aitrack import pricing


@pytest.fixture(scope="module")
def table() -> pricing.PriceTable:
    return pricing.load()


def test_shipped_table_has_an_as_of_date_and_the_current_defaults(table):
    assert table.as_of and len(table.as_of) == 10
    opus = table.price_for("claude-opus-5-5")  # Claude Code's default model
    assert (opus.input, opus.output, opus.cache_read, opus.cache_write_5m,
            opus.cache_write_1h) == (4.0, 20.0, 0.20, 5.0, 8.0)
    codex = table.price_for("gpt-5-codex")
    assert (codex.input, codex.cache_read, codex.output) == (1.25, 0.125, 10.0)
    for model in ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1", "gpt-5",
                  "gpt-5-mini", "gpt-5-nano", "gpt-5.1-codex", "gpt-5.1-codex-mini"):
        assert table.price_for(model) is not None, model


@pytest.mark.parametrize("name, entry", [
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
    ("gpt-5-2025-08-07", "gpt-5"),
    ("anthropic/claude-opus-5-5", "claude-opus-5-5"),
    ("openai/gpt-5-codex", "gpt-5-codex"),
    ("claude-opus-5-5[1m]", "claude-opus-5-5"),
    ("claude-haiku-4-5-fast", "claude-haiku-4-5"),
    ("claude-opus-5-5-fast", "claude-opus-5-5-fast"),  # its own entry wins over the rule
])
def test_family_rules(table, name, entry):
    assert table.match(name) == entry


@pytest.mark.parametrize("name", ["gpt-5-codex-ultra", "my-gpt-5", "claude-opus",
                                  "gpt-5x", "claude-opus-5-5-turbo", ""])
def test_never_a_substring_match(table, name):
    assert table.match(name) is None
    assert table.price_for(name) is None


def test_fast_mode_is_priced_above_the_base_model(table):
    assert table.price_for("claude-opus-5-5-fast").output > table.price_for(
        "claude-opus-5-5").output


def test_openai_estimate_bills_cached_input_at_the_cached_rate(table):
    # ledger semantics: input is already uncached; reasoning is part of output
    tokens = {"input": 800_000, "cache_read": 200_000, "output": 100_000, "reasoning": 60_000}
    cost = pricing.estimate(tokens, table.price_for("gpt-5"))
    assert cost == pytest.approx(0.8 * 1.25 + 0.2 * 0.125 + 0.1 * 10.0)


def test_anthropic_estimate_bills_cache_writes_at_the_5_minute_rate(table):
    tokens = {"input": 1_000, "cache_creation": 1_000_000, "cache_read": 2_000_000,
              "output": 10_000}
    cost = pricing.estimate(tokens, table.price_for("claude-sonnet-4-5"))
    assert cost == pytest.approx(0.001 * 3 + 1 * 3.75 + 2 * 0.30 + 0.01 * 15)


def test_profile_overrides_key_by_key_and_adds_models():
    t = pricing.load({"gpt-5-codex": {"input": 1.0},
                      "acme-coder": {"input": 2.0, "output": 4.0}})
    codex = t.price_for("gpt-5-codex")
    assert (codex.input, codex.output, codex.cache_read, codex.source) == (
        1.0, 10.0, 0.125, "profile")
    acme = t.price_for("acme-coder-20260101")  # family rules apply to profile entries too
    # no cached price given: cache reads and writes are billed as input
    assert (acme.input, acme.output, acme.cache_read, acme.cache_write_5m) == (2.0, 4.0, 2.0, 2.0)


def test_a_profile_entry_without_input_and_output_does_not_price_a_new_model():
    t = pricing.load({"acme-coder": {"input": 2.0}})
    assert t.price_for("acme-coder") is None


def test_module_level_price_for_uses_the_shipped_table():
    assert pricing.price_for("gpt-5-nano").output == 0.40
    assert pricing.price_for("no-such-model") is None
