"""The example profiles in profiles/: each validates, and each does what its name says."""

from __future__ import annotations

from pathlib import Path

import pytest

from aitrack.config import paths, profile

PROFILES = Path(__file__).resolve().parent.parent / "profiles"
EXAMPLES = sorted(PROFILES.glob("*.toml"))


def deployed(home, name: str) -> profile.Profile:
    """The effective profile with this example deployed as the managed profile."""
    home.write_managed_profile((PROFILES / name).read_text())
    p = profile.load(paths.resolve(home.env))
    assert p.problems == []
    return p


def test_the_documented_examples_are_there():
    assert {p.name for p in EXAMPLES} >= {"cloudwatch.toml", "api-gateway.toml",
                                          "otel-collector.toml", "local-only.toml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates(home, path):
    result = home.run("profile", "validate", str(path))
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{path}: ok\n", "")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_in_the_readme(path):
    assert f"`{path.name}`" in (PROFILES / "README.md").read_text()


def test_cloudwatch_sends_metrics_and_logs_to_their_own_hosts(home):
    endpoint = deployed(home, "cloudwatch.toml").endpoint
    assert endpoint.signal_url("metrics") == "https://monitoring.us-east-1.amazonaws.com/v1/metrics"
    assert endpoint.signal_url("logs") == "https://logs.us-east-1.amazonaws.com/v1/logs"
    assert endpoint.auth_header == "Authorization"
    assert endpoint.auth_value("k") == "Bearer k"
    assert set(endpoint.headers) == {"x-aws-log-group", "x-aws-log-stream"}
    # CloudWatch Logs needs a key of its own: each signal reads its own keychain account
    assert endpoint.signals == ("metrics", "logs")
    assert endpoint.accounts() == {"cloudwatch-metrics": ("metrics",),
                                   "cloudwatch-logs": ("logs",)}
    text = (PROFILES / "cloudwatch.toml").read_text()
    for account in ("cloudwatch-metrics", "cloudwatch-logs"):  # how to store each key
        assert f"aitrack token set --account {account}" in text


def test_api_gateway_sends_a_bare_x_api_key(home):
    endpoint = deployed(home, "api-gateway.toml").endpoint
    assert endpoint.auth_header == "x-api-key"
    assert endpoint.auth_value("k") == "k"
    assert endpoint.signal_url("metrics").endswith(".amazonaws.com/prod/v1/metrics")
    assert endpoint.signals == ("metrics",)


def test_otel_collector_uses_one_base_url_and_bearer(home):
    endpoint = deployed(home, "otel-collector.toml").endpoint
    base = "https://otel-collector.example.internal:4318"
    assert [endpoint.signal_url(s) for s in endpoint.signals] == [
        f"{base}/v1/metrics", f"{base}/v1/logs"]
    assert endpoint.auth_value("k") == "Bearer k"


def test_local_only_forwards_nothing_and_sets_attributes(home):
    p = deployed(home, "local-only.toml")
    assert p.local_only
    assert p.attributes["team.id"] and p.telemetry.log_user_prompts is False


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_no_example_turns_prompt_logging_on(home, path):
    p = deployed(home, path.name)
    assert not p.telemetry.log_user_prompts and not p.telemetry.log_tool_details
