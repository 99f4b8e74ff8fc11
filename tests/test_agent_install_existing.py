"""`aitrack agent install` on a machine whose tools already send telemetry to a team's
collector (issue 23, High 1): never cut off silently. Refused with a local-only profile;
--keep-local says so and doctor warns while it lasts; --adopt-endpoint makes that endpoint
the profile's, its token moved from the settings file to the keychain."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from aitrack.adapters.endpoints import Destination
from aitrack.capture import agent
from aitrack.config import keychain, paths
from aitrack.install import wiring
from aitrack.install.wiring import adopt
from test_agent_wiring import claude_file, codex_file, free_port, snapshot, write

TOKEN = "team-collector-token-5f4e3d2c1b"
COLLECTOR = json.dumps({"env": {
    "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "https://otlp.example.com",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{TOKEN},x-team=platform"}},
    indent=2) + "\n"


@pytest.fixture
def user(home, tmp_path: Path) -> dict[str, str | None]:
    """A throwaway user, as in test_agent_wiring: HOME, no managed or machine settings."""
    user_home = tmp_path / "user-home"
    user_home.mkdir()
    env = {k: v for k, v in home.env.items()
           if not k.startswith(("CLAUDE_", "CODEX_", "OTEL_"))}
    env.update(HOME=str(user_home), CLAUDE_CONFIG_DIR=None, CODEX_HOME=None,
               AITRACK_CLAUDE_MANAGED_SETTINGS=str(tmp_path / "etc-claude/managed-settings.json"),
               AITRACK_CODEX_SYSTEM_DIR=str(tmp_path / "etc-codex"))
    return env


@pytest.fixture
def port(home) -> int:
    port = free_port()
    home.write_user_profile(f"[agent]\nport = {port}\n")
    return port


def install(home, user, *args: str):
    return home.run("agent", "install", "--no-service", *args, env=user)


def doctor_checks(home, user) -> dict:
    proc = home.run("doctor", "--json", env=user)
    return {c["name"]: c for c in json.loads(proc.stdout)["checks"]}


def test_a_local_only_install_over_a_team_collector_is_refused_and_changes_nothing(
        home, user, port):
    write(claude_file(user), COLLECTOR)
    before = snapshot(claude_file(user), codex_file(user))
    proc = install(home, user)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == (
        "aitrack: Claude Code sends its telemetry to https://otlp.example.com "
        "(~/.claude/settings.json), and your profile has no endpoint: with the agent, that "
        "telemetry would stay on this machine and that endpoint would receive nothing more "
        "from it. Nothing was changed. Run `aitrack agent install --adopt-endpoint` to have "
        "the agent forward there (a profile of yours names that endpoint and its token moves "
        "to your keychain), or `aitrack agent install --keep-local` to keep the telemetry on "
        "this machine (or ask IT for a profile with the org's endpoint)\n")
    assert TOKEN not in proc.stderr
    assert snapshot(claude_file(user), codex_file(user)) == before
    where = paths.resolve(user)
    assert not wiring.state_file(where).exists() and not agent.secret_file(where).exists()
    assert agent.probe(port, None) == "free"


def test_with_a_profile_endpoint_install_says_plainly_where_telemetry_goes(home, user, port):
    write(claude_file(user), COLLECTOR)
    home.write_user_profile(f'[agent]\nport = {port}\n[endpoint]\nurl = "https://org.example.com"'
                            '\n')
    try:
        proc = install(home, user)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stderr.splitlines()
        assert ("aitrack: Claude Code sent its telemetry to https://otlp.example.com "
                "(~/.claude/settings.json); it now goes to the agent instead (put back at "
                "uninstall)") in lines
        assert lines[-1] == (
            f"aitrack: from now on the telemetry of {wiring.titles()} goes to the agent on "
            f"http://127.0.0.1:{port}, which records it in your ledger and forwards it to "
            f"https://org.example.com (the endpoint of the user profile {home.user_profile})")
        assert "receives nothing" not in doctor_checks(home, user)["agent-settings"]["summary"]
    finally:
        home.run("agent", "uninstall", env=user)


def test_keep_local_says_so_and_doctor_warns_while_it_lasts(home, user, port):
    write(claude_file(user), COLLECTOR)
    try:
        proc = install(home, user, "--keep-local")
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.splitlines()[-1].endswith(
            "which records it in your ledger and keeps it on this machine (your profile has no "
            "endpoint: local-only, nothing is forwarded)")
        check = doctor_checks(home, user)["agent-settings"]
        assert check["status"] == "WARN"
        assert ("the telemetry these settings sent elsewhere (Claude Code to "
                "https://otlp.example.com) goes to the agent, which keeps it on this machine "
                "(your profile has no endpoint): that endpoint receives nothing from here"
                ) in check["summary"]
        assert "--adopt-endpoint" in check["fix"]
        # a plain install later (at login, say) changes nothing and refuses nothing
        again = install(home, user)
        assert again.returncode == 0 and "already installed" in again.stderr
        # once the profile names an endpoint, the telemetry leaves the machine again
        home.write_user_profile(f'[agent]\nport = {port}\n[endpoint]\n'
                                'url = "https://org.example.com"\n')
        assert doctor_checks(home, user)["agent-settings"]["status"] == "PASS"
    finally:
        home.run("agent", "uninstall", env=user)
    assert json.loads(claude_file(user).read_text()) == json.loads(COLLECTOR)


def test_adopt_endpoint_writes_the_profile_and_moves_the_token_to_the_keychain(
        home, user, port, keychain_account):
    write(claude_file(user), COLLECTOR)
    try:
        proc = install(home, user, "--adopt-endpoint", "--account", keychain_account)
        assert proc.returncode == 0, proc.stderr
        assert TOKEN not in proc.stderr + proc.stdout
        lines = proc.stderr.splitlines()
        assert lines[0] == (
            f"aitrack: adopted the endpoint https://otlp.example.com: your profile "
            f"{home.user_profile} names it, and its token is in your keychain (account "
            f"{keychain_account!r}); the settings files no longer hold it")
        assert lines[-1].endswith("forwards it to https://otlp.example.com (the endpoint of the "
                                  f"user profile {home.user_profile})")
        profile = tomllib.loads(home.user_profile.read_text())
        assert profile == {"agent": {"port": port}, "endpoint": {
            "url": "https://otlp.example.com", "auth_header": "Authorization",
            "auth_scheme": "Bearer", "protocol": "http/protobuf",
            "headers": {"x-team": "platform"}, "keychain_account": keychain_account}}
        assert home.run("profile", "validate", str(home.user_profile)).returncode == 0
        assert keychain.get_token(keychain_account) == TOKEN
        settings = claude_file(user).read_text()
        assert TOKEN not in settings and "OTEL_EXPORTER_OTLP_HEADERS" not in settings
        checks = doctor_checks(home, user)
        assert checks["agent-settings"]["status"] == "PASS", checks["agent-settings"]
        assert checks["plaintext-tokens"]["status"] == "PASS", checks["plaintext-tokens"]
        assert checks["profile"]["data"]["endpoint_url"] == "https://otlp.example.com"
    finally:
        home.run("agent", "uninstall", env=user)


def dest(signal, url, protocol="http/protobuf", **headers) -> tuple:
    return ("Codex", "~/.codex/config.toml", Destination(signal, url, protocol, headers))


def test_what_adopting_takes_from_the_settings_and_what_it_refuses():
    bearer = {"authorization": "Bearer abc"}
    table, token = adopt.endpoint_table([
        dest(s, f"https://col.example.com/v1/{s}", **bearer) for s in ("logs", "metrics",
                                                                        "traces")])
    assert (table, token) == ({"url": "https://col.example.com", "auth_header": "authorization",
                               "auth_scheme": "Bearer", "protocol": "http/protobuf"}, "abc")
    table, token = adopt.endpoint_table([dest("logs", "https://l.example.com/ingest",
                                              "http/json", **{"x-api-key": "k1"})])
    assert (table, token) == ({"logs_url": "https://l.example.com/ingest", "signals": ["logs"],
                               "forward": ["raw"], "auth_header": "x-api-key",
                               "auth_scheme": "", "protocol": "http/json"}, "k1")
    refused = {
        "gRPC": [dest("logs", "https://g.example.com:4317", "grpc", **bearer)],
        "two different": [dest("logs", "https://a.example.com/v1/logs", **bearer),
                          ("Claude Code", "~/.claude/settings.json",
                           Destination(None, "https://b.example.com", None, bearer))],
        "no token header": [dest("logs", "https://a.example.com/v1/logs")],
        "2 secret headers": [dest("logs", "https://a.example.com/v1/logs",
                                  **{"x-api-key": "1", "authorization": "Bearer 2"})],
        "nothing to adopt": [],
    }
    for what, found in refused.items():
        with pytest.raises(wiring.WiringError) as caught:
            adopt.endpoint_table(found)
        assert what in str(caught.value) or (what == "two different" and " and " in str(
            caught.value)), (what, str(caught.value))


def test_uninstall_after_keep_local_forgets_what_was_replaced(home, user, port):
    write(claude_file(user), COLLECTOR)
    assert install(home, user, "--keep-local").returncode == 0
    home.run("agent", "uninstall", env=user)
    assert not wiring.state_file(paths.resolve(user)).exists()
    assert Path(claude_file(user)).read_text() == COLLECTOR
