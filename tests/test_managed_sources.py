"""IT's settings from MDM-native places: macOS managed preferences and the Windows policy key."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from aitrack.config import managed
from aitrack.config.schema import ProfileError
from fixtures.registry import FakeRegistry

FIXTURES = Path(__file__).parent / "fixtures" / "managed"
PRINT_ATTRS = [sys.executable, "-c",
               "import os; print(os.environ.get('OTEL_RESOURCE_ATTRIBUTES', ''))"]


# Managed preferences are a macOS source only (issue 13: AITRACK_MANAGED_PLIST on Linux was a
# way around IT's settings): the tests that read one through the CLI run aitrack as on macOS.
AS_MACOS = ("import sys; sys.platform = 'darwin'; from aitrack.entry import main; "
            "main(sys.argv[1:])")


def on_macos(home, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", AS_MACOS, *args], capture_output=True,
                          text=True, env=home.env, timeout=60)


def shown(home) -> dict:
    args = ("profile", "show", "--origin", "--json")
    result = on_macos(home, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def use_plist(home, name: str) -> Path:
    target = Path(home.env["AITRACK_MANAGED_PLIST"])
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / name, target)
    return target


# ---------------------------------------------------------------- macOS managed preferences


@pytest.mark.parametrize("name", ["io.aitrack.xml.plist", "io.aitrack.binary.plist"])
def test_plist_settings_mirror_the_toml_tables(name):
    data = managed.read_plist(FIXTURES / name)
    assert not any(k.startswith("Payload") for k in data)  # MDM bookkeeping is not a setting
    assert data["endpoint"]["headers"] == {"x-aws-log-group": "/aitrack/plist"}
    assert data["endpoint"]["signals"] == ["metrics"]
    assert data["endpoint"]["timeout_s"] == 2.5
    assert data["telemetry"]["log_user_prompts"] is True
    assert data["prices"]["internal-model"] == {"input": 2.5, "output": 10}


def test_the_effective_profile_names_the_plist(home):
    plist = use_plist(home, "io.aitrack.xml.plist")
    data = shown(home)
    origin = f"managed ({plist})"
    assert data["mode"] == "forwarding"
    assert data["endpoint"]["url"] == "https://otlp.plist.example.com"
    assert data["endpoint"]["auth_header"] == "x-api-key" and data["endpoint"]["auth_scheme"] == ""
    assert data["telemetry"]["log_user_prompts"] is True
    assert data["attributes"]["team.id"] == "from-plist"
    assert data["origins"]["endpoint.url"] == origin
    assert data["origins"]["attributes.team.id"] == origin
    assert data["origins"]["telemetry.log_user_prompts"] == origin
    text = on_macos(home, "profile", "show", "--origin").stdout
    line = next(x for x in text.splitlines() if x.startswith("url = "))
    assert line.endswith(f"# {origin}")


def test_plist_wins_over_the_managed_toml_which_wins_over_the_user(home):
    plist = use_plist(home, "io.aitrack.binary.plist")
    home.write_managed_profile(
        '[endpoint]\nurl = "https://toml.example.com"\nca_bundle = "/etc/ca.pem"\n'
        '[attributes]\n"team.id" = "from-toml"\ncost_center = "CC-7"\n')
    home.write_user_profile('[attributes]\n"team.id" = "mine"\ndepartment = "research"\n'
                            '[endpoint]\nurl = "https://evil.example.com"\n')
    data = shown(home)
    assert data["attributes"]["team.id"] == "from-binary-plist"
    assert data["attributes"]["cost_center"] == "CC-7"
    assert data["attributes"]["department"] == "research"
    assert data["origins"]["attributes.team.id"] == f"managed ({plist})"
    assert data["origins"]["attributes.cost_center"] == f"managed ({home.managed_profile})"
    assert data["origins"]["attributes.department"] == f"user ({home.user_profile})"
    # [endpoint] comes whole from the plist: nothing of the TOML's, nothing of the user's
    assert data["endpoint"]["url"] == "https://otlp.plist.example.com"
    assert "ca_bundle" not in data["endpoint"]
    assert any("team.id" in line for line in data["shadowed"])
    assert any("endpoint" in line for line in data["shadowed"])


@pytest.mark.parametrize("name,problem", [
    ("io.aitrack.truncated.plist", "unreadable managed preferences"),
    ("io.aitrack.invalid-values.plist", "endpoint.url"),
])
def test_a_broken_plist_means_local_only_with_one_line(home, name, problem):
    plist = use_plist(home, name)
    home.write_managed_profile('[endpoint]\nurl = "https://toml.example.com"\n')
    home.write_user_profile('[endpoint]\nurl = "https://user.example.com"\n')
    result = on_macos(home, "run", "--", *PRINT_ATTRS)
    assert result.returncode == 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert str(plist) in lines[0] and "local-only" in lines[0] and problem in lines[0]
    assert shown(home)["mode"] == "local-only"  # neither the TOML's nor the user's endpoint


@pytest.mark.parametrize("name", ["io.aitrack.xml.plist", "io.aitrack.binary.plist"])
def test_a_damaged_plist_is_a_profile_error_never_a_crash(tmp_path, name):
    import random

    original = (FIXTURES / name).read_bytes()
    rng = random.Random(name)
    path = tmp_path / "io.aitrack.plist"
    for _ in range(2000):
        damaged = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        if rng.random() < 0.3:
            damaged = damaged[:rng.randrange(len(damaged))]
        path.write_bytes(bytes(damaged))
        try:
            managed.read_plist(path)
        except ProfileError:
            pass


def test_every_problem_of_a_plist_is_named():
    with pytest.raises(ProfileError) as caught:
        managed.read_plist(FIXTURES / "io.aitrack.invalid-values.plist")
    problems = " | ".join(caught.value.problems)
    assert "telemetry.log_user_prompts" in problems and "boolean" in problems
    assert "endpoint.url" in problems and "https" in problems


def test_a_plist_that_is_not_a_dictionary_is_refused(tmp_path):
    import plistlib

    path = tmp_path / "io.aitrack.plist"
    path.write_bytes(plistlib.dumps(["endpoint"]))
    with pytest.raises(ProfileError, match="must be a dictionary"):
        managed.read_plist(path)


def test_no_plist_is_no_setting(tmp_path):
    assert managed.read_plist(tmp_path / "absent.plist") is None


def test_a_changed_plist_reaches_the_next_run(home):
    """The start-up cache must notice when the MDM rewrites the managed preferences."""
    import plistlib

    plist = Path(home.env["AITRACK_MANAGED_PLIST"])
    plist.parent.mkdir(parents=True, exist_ok=True)
    for team in ("alpha", "bravo"):
        plist.write_bytes(plistlib.dumps({"attributes": {"team.id": team}}))
        result = on_macos(home, "run", "--", *PRINT_ATTRS)
        assert result.returncode == 0, result.stderr
        assert f"team.id={team}" in result.stdout.strip().split(",")
        time.sleep(0.01)


# ---------------------------------------------------------------- Windows policy key


POLICY = {
    "Endpoint": {
        "URL": "https://otlp.registry.example.com",
        "protocol": "http/json",
        "signals": ["metrics", "logs", "traces"],  # REG_MULTI_SZ
        "timeout_s": "2.5",  # REG_SZ: a REG_DWORD cannot hold a fraction
        "flush_timeout_s": "3",
        "outbox_max_mb": 64,  # REG_DWORD
        "": "(Default) value, ignored",
        "Headers": {"x-aws-log-group": "/aitrack/registry"},
    },
    "attributes": {"team.id": "from-registry", "cost_center": 1234},
    "telemetry": {"log_user_prompts": 1, "log_tool_details": 0,
                  "metric_export_interval_ms": 30000},
    "prices": {"internal-model": {"Input": "2.5", "output": "10", "cache_read": "0.25"}},
}


def test_the_policy_key_maps_onto_the_profile_tables():
    data = managed.read_registry(FakeRegistry(POLICY))
    assert data["endpoint"] == {
        "url": "https://otlp.registry.example.com", "protocol": "http/json",
        "signals": ["metrics", "logs", "traces"], "timeout_s": 2.5, "flush_timeout_s": 3,
        "outbox_max_mb": 64, "headers": {"x-aws-log-group": "/aitrack/registry"}}
    assert data["attributes"] == {"team.id": "from-registry", "cost_center": "1234"}
    assert data["telemetry"] == {"log_user_prompts": True, "log_tool_details": False,
                                 "metric_export_interval_ms": 30000}
    assert data["prices"] == {"internal-model": {"input": 2.5, "output": 10,
                                                 "cache_read": 0.25}}


def test_no_policy_key_is_no_setting():
    assert managed.read_registry(FakeRegistry(None)) is None


@pytest.mark.parametrize("table,values,problem", [
    ("endpoint", {"url": "http://collector.example.com"}, "endpoint.url"),
    ("endpoint", {"url": "https://x.example.com", "timeout_s": "soon"}, "endpoint.timeout_s"),
    ("telemetry", {"metric_export_interval_ms": "1.5"}, "telemetry.metric_export_interval_ms"),
    ("telemetry", {"log_user_prompts": "maybe"}, "telemetry.log_user_prompts"),
    ("prices", {"m": {"input": "cheap"}}, "input"),
    ("endpoints", {"url": "https://x.example.com"}, "unknown table"),
])
def test_a_bad_policy_value_names_the_key_and_the_registry(table, values, problem):
    with pytest.raises(ProfileError) as caught:
        managed.read_registry(FakeRegistry({table: values}))
    assert str(caught.value.path) == r"HKLM\SOFTWARE\Policies\aitrack"
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_profile_show_names_the_registry_and_it_wins_over_the_toml(home, monkeypatch):
    from aitrack.cli import cli

    monkeypatch.setattr(managed, "registry_reader", lambda: FakeRegistry(POLICY))
    home.write_managed_profile('[attributes]\n"team.id" = "from-toml"\nenvironment = "prod"\n')
    result = CliRunner().invoke(cli, ["profile", "show", "--origin", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    registry = r"managed (HKLM\SOFTWARE\Policies\aitrack)"
    assert data["origins"]["endpoint.url"] == registry
    assert data["origins"]["attributes.team.id"] == registry
    assert data["origins"]["attributes.environment"] == f"managed ({home.managed_profile})"
    assert data["attributes"]["team.id"] == "from-registry"
    assert data["endpoint"]["signals"] == ["metrics", "logs", "traces"]
    text = CliRunner().invoke(cli, ["profile", "show", "--origin"]).stdout
    assert r"# managed (HKLM\SOFTWARE\Policies\aitrack)" in text


def test_a_broken_policy_key_means_local_only(home, monkeypatch):
    from aitrack.config import paths, profile

    monkeypatch.setattr(managed, "registry_reader",
                        lambda: FakeRegistry({"endpoint": {"url": "ftp://x"}}))
    home.write_managed_profile('[endpoint]\nurl = "https://toml.example.com"\n')
    p = profile.load(paths.resolve())
    assert p.local_only
    assert any(r"HKLM\SOFTWARE\Policies\aitrack" in source for source in p.broken)
