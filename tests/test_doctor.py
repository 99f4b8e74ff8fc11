"""`aitrack doctor`: each check's PASS, WARN and FAIL, and the secrets it never shows."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aitrack import adapters
from aitrack.config import paths, profile
from aitrack.install import doctor
from fixtures import fake_tool
from org_endpoint import LOGS_TOKEN, TOKEN, profile_toml, queue

pytest_plugins = ("org_endpoint",)  # fixtures: authority, org, token, logs_token

SYSTEM_PATH = "/usr/bin:/bin"
SECRET = "sk-live-doctor-7f3e9a1b2c"


@pytest.fixture
def env(home, tmp_path: Path) -> dict[str, str]:
    """A developer's environment with nothing of the real machine's: own HOME, bare PATH."""
    user_home = tmp_path / "user-home"
    user_home.mkdir()
    out = {k: v for k, v in home.env.items()
           if not k.startswith(("OTEL_", "CODEX_", "AITRACK_CLAUDE", "AITRACK_CODEX"))}
    out.update(HOME=str(user_home), PATH=SYSTEM_PATH,
               AITRACK_CLAUDE_MANAGED_SETTINGS=str(tmp_path / "claude" / "managed-settings.json"))
    return out


def context(env: dict[str, str], **more: str) -> doctor.Context:
    env = {**env, **more}
    locations = paths.resolve(env)
    return doctor.Context(env, locations, profile.load(locations, env), Path(env["HOME"]))


def run_doctor(home, env: dict[str, str], *args: str, **more: str):
    return home.run("doctor", *args, env={**env, **more})


# ---------------------------------------------------------------- profile


def test_profile_local_only_passes(env):
    check = doctor.check_profile(context(env))
    assert check.status == "PASS" and "local-only" in check.summary
    assert any("not present" in d for d in check.details)


def test_profile_names_the_managed_source_and_the_endpoint(home, env):
    # a static header that is no secret by name (a secret-looking one is refused: issue 13)
    home.write_managed_profile('[endpoint]\nurl = "https://otlp.example.com"\n'
                               f'headers = {{ "x-tenant" = "{SECRET}" }}\n')
    check = doctor.check_profile(context(env))
    assert check.status == "PASS"
    assert "https://otlp.example.com" in check.summary
    assert str(home.managed_profile) in check.summary
    assert SECRET not in repr(check)


def test_profile_with_per_signal_urls_names_each(home, env):
    """The shipped profiles/cloudwatch.toml has metrics_url and logs_url and no url."""
    repo = Path(__file__).resolve().parent.parent
    home.write_managed_profile((repo / "profiles" / "cloudwatch.toml").read_text())
    check = doctor.check_profile(context(env))
    assert check.status == "PASS", check
    assert check.summary == (
        "forwarding metrics to https://monitoring.us-east-1.amazonaws.com/v1/metrics, logs to "
        f"https://logs.us-east-1.amazonaws.com/v1/logs (endpoint from the managed profile "
        f"{home.managed_profile})")
    assert check.data["signal_urls"]["logs"] == "https://logs.us-east-1.amazonaws.com/v1/logs"
    result = run_doctor(home, env, "--json")
    summaries = [c["summary"] for c in json.loads(result.stdout)["checks"]]
    assert check.summary in summaries and "" not in summaries


def test_an_invalid_managed_profile_fails(home, env):
    home.write_managed_profile('[endpoint]\nurl = "http://collector.example.com"\n')
    check = doctor.check_profile(context(env))
    assert check.status == "FAIL"
    assert "local-only" in check.summary and str(home.managed_profile) in check.summary
    assert "aitrack profile validate" in check.fix
    assert any("INVALID" in d and "endpoint.url" in d for d in check.details)


def test_an_invalid_user_profile_warns(home, env):
    home.write_user_profile('[attributes]\n"team.id" = 5\n')
    check = doctor.check_profile(context(env))
    assert check.status == "WARN" and str(home.user_profile) in check.summary


# ---------------------------------------------------------------- keychain


def test_keychain_not_needed_when_local_only(env):
    check = doctor.check_keychain(context(env))
    assert check.status == "PASS" and "not needed" in check.summary


def test_keychain_token_present_passes_without_showing_it(home, env, org, authority, token,
                                                         keychain_account):
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account))
    ctx = context(env)
    check = doctor.check_keychain(ctx)
    assert check.status == "PASS", check
    assert keychain_account in check.summary and "present" in check.summary
    assert TOKEN not in repr(check) and check.data["token_present"] is True
    assert ctx.tokens == {keychain_account: TOKEN}  # for the endpoint probe's header only


def test_keychain_without_a_token_fails(home, env, org, authority, keychain_account):
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account))
    check = doctor.check_keychain(context(env))
    assert check.status == "FAIL"
    assert "no token" in check.summary and "aitrack token set" in check.fix


def two_keys(home, org, authority, metrics_account: str, logs_account: str) -> None:
    """A profile with a key per signal; the endpoint wants LOGS_TOKEN on /v1/logs."""
    org.path_auth["/v1/logs"] = f"Bearer {LOGS_TOKEN}"
    home.write_managed_profile(profile_toml(org, authority.pem, metrics_account,
                                            extra=f'logs_keychain_account = "{logs_account}"'))


def test_keychain_names_the_account_whose_token_is_missing(home, env, org, authority, token,
                                                           keychain_account, logs_account):
    from aitrack.config import keychain

    two_keys(home, org, authority, keychain_account, logs_account)
    check = doctor.check_keychain(context(env))
    assert check.status == "FAIL", check
    assert check.summary.startswith(f"no token for account '{logs_account}' (logs) in ")
    assert check.summary.endswith(": logs cannot be forwarded")
    assert f"`aitrack token set --account {logs_account}`" in check.fix
    assert keychain_account not in check.summary + check.fix  # its token is there
    assert check.data["accounts"] == [
        {"account": keychain_account, "signals": ["metrics"], "token_present": True},
        {"account": logs_account, "signals": ["logs"], "token_present": False}]

    keychain.set_token(logs_account, LOGS_TOKEN)
    ctx = context(env)
    check = doctor.check_keychain(ctx)
    assert check.status == "PASS", check
    assert (f"tokens present for accounts '{keychain_account}' (metrics), '{logs_account}' "
            "(logs) in ") in check.summary
    assert TOKEN not in repr(check) and LOGS_TOKEN not in repr(check)
    assert ctx.tokens == {keychain_account: TOKEN, logs_account: LOGS_TOKEN}


def test_endpoint_probes_each_signal_with_its_own_token(home, env, org, authority, token,
                                                       keychain_account, logs_account):
    from aitrack.config import keychain

    keychain.set_token(logs_account, "a-revoked-logs-key")
    two_keys(home, org, authority, keychain_account, logs_account)
    ctx = context(env)
    doctor.check_keychain(ctx)
    check = doctor.check_endpoint(ctx)
    assert check.status == "FAIL", check
    assert "/v1/metrics accepted the token (HTTP 200 in" in check.summary
    assert "/v1/logs rejected the token (HTTP 403 in" in check.summary
    assert f"account '{logs_account}'" in check.summary
    assert check.fix.startswith(f"store a valid token with `aitrack token set --account "
                                f"{logs_account}`")
    sent = {r.path: r.headers["authorization"] for r in org.requests}
    assert sent == {"/v1/metrics": f"Bearer {TOKEN}", "/v1/logs": "Bearer a-revoked-logs-key"}
    assert "a-revoked-logs-key" not in repr(check)

    keychain.set_token(logs_account, LOGS_TOKEN)
    ctx = context(env)
    doctor.check_keychain(ctx)
    check = doctor.check_endpoint(ctx)
    assert check.status == "PASS", check
    assert [p["http_status"] for p in check.data["probes"]] == [200, 200]
    assert all(r.authorized for r in org.requests[2:])


def test_no_keychain_backend_fails(home, env, org, authority):
    home.write_managed_profile(profile_toml(org, authority.pem, "someone"))
    result = run_doctor(home, env, "--json",
                        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    assert result.returncode == 1
    check = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["keychain"]
    assert check["status"] == "FAIL" and "no usable keychain" in check["summary"]


# ---------------------------------------------------------------- endpoint


@pytest.mark.parametrize("protocol,content_type,body", [
    ("http/protobuf", "application/x-protobuf", b""),
    ("http/json", "application/json", b"{}"),
])
def test_endpoint_accepting_the_token_passes(home, env, org, authority, token,
                                             keychain_account, protocol, content_type, body):
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account,
                                            protocol=protocol))
    ctx = context(env)
    doctor.check_keychain(ctx)
    check = doctor.check_endpoint(ctx)
    assert check.status == "PASS", check
    assert "accepted the token (HTTP 200 in" in check.summary and " ms)" in check.summary
    assert sorted(r.path for r in org.requests) == ["/v1/logs", "/v1/metrics"]  # each signal
    for request in org.requests:
        assert request.authorized
        assert request.content_type == content_type and request.body == body  # an empty export
    assert check.data["elapsed_ms"] >= 0 and TOKEN not in repr(check)


def test_endpoint_rejecting_the_token_fails(home, env, org, authority, keychain_account):
    from aitrack.config import keychain

    keychain.set_token(keychain_account, "a-revoked-token")
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account))
    ctx = context(env)
    doctor.check_keychain(ctx)
    check = doctor.check_endpoint(ctx)
    assert check.status == "FAIL", check
    assert "rejected the token (HTTP 403" in check.summary and "aitrack token set" in check.fix


def test_endpoint_without_a_token_warns_when_it_asks_for_one(home, env, org, authority):
    home.write_managed_profile(profile_toml(org, authority.pem, "nobody"))
    check = doctor.check_endpoint(context(env))  # keychain check not run: no token
    assert check.status == "WARN" and "HTTP 401" in check.summary
    assert org.requests[0].headers.get("authorization") is None


def test_unreachable_endpoint_fails_with_the_time_taken(home, env, org, authority,
                                                        keychain_account):
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account))
    org.stop()
    check = doctor.check_endpoint(context(env))
    assert check.status == "FAIL" and "unreachable after" in check.summary
    assert check.data["http_status"] is None and "network" in check.fix


def test_an_endpoint_with_an_untrusted_certificate_fails(home, env, org, keychain_account):
    home.write_managed_profile(profile_toml(org, None, keychain_account))  # no ca_bundle
    check = doctor.check_endpoint(context(env))
    assert check.status == "FAIL" and "unreachable" in check.summary
    assert "certificate" in check.summary.lower() and org.requests == []


@pytest.mark.parametrize("status,expected,words", [
    (404, "FAIL", "full /v1/metrics path"),
    (415, "FAIL", "endpoint.protocol"),
    (503, "WARN", "aitrack retries"),
    (400, "WARN", "tell IT"),
])
def test_endpoint_answers(home, env, org, authority, token, keychain_account, status,
                          expected, words):
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account))
    org.always(status, message="nope")
    ctx = context(env)
    doctor.check_keychain(ctx)
    check = doctor.check_endpoint(ctx)
    assert check.status == expected and f"HTTP {status}" in check.summary
    assert words in check.fix


def test_endpoint_not_checked_when_local_only(env):
    check = doctor.check_endpoint(context(env))
    assert check.status == "PASS" and "local-only" in check.summary


# ---------------------------------------------------------------- claude, codex, shims


def test_tools_found_with_their_versions(env, tmp_path):
    real = tmp_path / "real"
    fake_tool.write(real, "claude", version="2.1.328 (Claude Code)")
    ctx = context(env, PATH=f"{real}:{SYSTEM_PATH}")
    check = doctor.check_tool(ctx, "claude")
    assert check.status == "PASS"
    assert check.summary == f"{real / 'claude'} (2.1.328 (Claude Code))"
    assert check.data["version"] == "2.1.328 (Claude Code)"
    missing = doctor.check_tool(ctx, "codex")  # one tool of several: not a problem
    assert missing.status == "PASS" and "not installed" in missing.summary
    none = doctor.check_tool(context(env, PATH=SYSTEM_PATH), "codex")  # no tool at all
    assert none.status == "WARN" and "nor any other tool" in none.summary


def test_a_tool_whose_version_fails_or_hangs_fails(env, tmp_path, monkeypatch):
    real = tmp_path / "real"
    fake_tool.write(real, "codex")
    check = doctor.check_tool(context(env, PATH=str(real), FAKE_VERSION_EXIT="2"), "codex")
    assert check.status == "FAIL" and "--version failed (exit 2)" in check.summary
    monkeypatch.setattr(doctor.tools, "VERSION_TIMEOUT_S", 0.3)
    check = doctor.check_tool(context(env, PATH=str(real), FAKE_VERSION_SLEEP="5"), "codex")
    assert check.status == "FAIL" and "did not answer" in check.summary


def test_a_tool_override_that_points_nowhere_fails(env, tmp_path):
    check = doctor.check_tool(context(env, AITRACK_CLAUDE_BIN=str(tmp_path / "gone")), "claude")
    assert check.status == "FAIL" and "AITRACK_CLAUDE_BIN" in check.summary


def test_shims_first_on_path_pass_and_the_tool_check_skips_them(home, env, tmp_path):
    real = tmp_path / "real"
    fake_tool.write(real, "claude")
    fake_tool.write(real, "codex")
    shim_dir = home.root / "data" / "bin"
    assert home.run("shims", "install").returncode == 0
    ctx = context(env, PATH=f"{shim_dir}:{real}:{SYSTEM_PATH}")
    check = doctor.check_shims(ctx)
    assert check.status == "PASS", check
    assert doctor.check_tool(ctx, "claude").data["path"] == str(real / "claude")


def test_shims_behind_the_real_tool_warn_with_the_path_line(home, env, tmp_path):
    real = tmp_path / "real"
    fake_tool.write(real, "claude")
    assert home.run("shims", "install").returncode == 0
    shim_dir = home.root / "data" / "bin"
    check = doctor.check_shims(context(env, PATH=f"{real}:{shim_dir}:{SYSTEM_PATH}"))
    assert check.status == "WARN" and "`claude`" in check.summary
    assert f'export PATH="{shim_dir}:$PATH"' in check.fix


def test_no_shims_warns_to_install_them(env, tmp_path):
    real = tmp_path / "real"
    fake_tool.write(real, "codex")
    check = doctor.check_shims(context(env, PATH=f"{real}:{SYSTEM_PATH}"))
    assert check.status == "WARN" and "aitrack shims install" in check.fix


def test_a_shim_whose_aitrack_is_gone_fails(home, env, tmp_path):
    real = tmp_path / "real"
    fake_tool.write(real, "claude")
    shim_dir = tmp_path / "shims"
    assert home.run("shims", "install", "--dir", str(shim_dir)).returncode == 0
    shim = shim_dir / "claude"
    shim.write_text(shim.read_text().replace(f"aitrack_python={sys.executable}",
                                             "aitrack_python=/gone/python"))
    check = doctor.check_shims(context(env, PATH=f"{shim_dir}:{real}:{SYSTEM_PATH}"))
    assert check.status == "FAIL" and "/gone/python is missing" in " ".join(check.details)


def test_no_tools_no_shims_passes(env):
    assert doctor.check_shims(context(env)).status == "PASS"


# ---------------------------------------------------------------- settings that bypass aitrack


def write_claude_settings(env, data) -> Path:
    path = Path(env["AITRACK_CLAUDE_MANAGED_SETTINGS"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_claude_managed_settings_absent_or_harmless_pass(env):
    assert doctor.check_managed_settings(context(env), "claude").status == "PASS"
    write_claude_settings(env, {"env": {"CLAUDE_CODE_ENABLE_TELEMETRY": "1"},
                                "permissions": {"deny": ["Bash(curl:*)"]}})
    assert doctor.check_managed_settings(context(env), "claude").status == "PASS"


def test_claude_managed_settings_redirecting_otlp_fail(env):
    path = write_claude_settings(env, {"env": {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example.com",
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer {SECRET}"}})
    check = doctor.check_managed_settings(context(env), "claude")
    assert check.status == "FAIL"
    assert str(path) in check.summary and "OTEL_EXPORTER_OTLP_ENDPOINT" in check.summary
    assert "plaintext secret" in check.summary and SECRET not in repr(check)


@pytest.mark.parametrize("content,words", [
    ({"env": {"CLAUDE_CODE_ENABLE_TELEMETRY": "0"}}, "CLAUDE_CODE_ENABLE_TELEMETRY=0"),
    ("{not json", "not valid JSON"),
])
def test_claude_managed_settings_that_stop_tracking_or_do_not_parse_warn(env, content, words):
    write_claude_settings(env, content)
    check = doctor.check_managed_settings(context(env), "claude")
    assert check.status == "WARN" and words in check.summary


def test_no_plaintext_tokens_passes(env):
    assert doctor.check_plaintext_tokens(context(env)).status == "PASS"


@pytest.mark.parametrize("var", doctor.OTLP_HEADER_VARS)
def test_a_token_in_the_environment_fails_without_showing_it(env, var):
    check = doctor.check_plaintext_tokens(
        context(env, **{var: f"x-aws-log-group=g,Authorization=Bearer%20{SECRET}"}))
    assert check.status == "FAIL" and "plaintext" in check.summary
    assert any(var in d and "Authorization" in d for d in check.details)
    assert SECRET not in repr(check)


def test_harmless_headers_in_the_environment_warn(env):
    check = doctor.check_plaintext_tokens(
        context(env, OTEL_EXPORTER_OTLP_HEADERS="x-aws-log-group=/aitrack"))
    assert check.status == "WARN"


def test_a_token_exported_in_a_shell_profile_fails(env):
    rc = Path(env["HOME"]) / ".zshrc"
    rc.write_text(f'alias ll="ls -l"\nexport OTEL_EXPORTER_OTLP_HEADERS="x-api-key={SECRET}"\n'
                  'echo "$OTEL_EXPORTER_OTLP_HEADERS"\n')
    check = doctor.check_plaintext_tokens(context(env))
    assert check.status == "FAIL"
    assert check.details == ["~/.zshrc line 2 sets OTEL_EXPORTER_OTLP_HEADERS: header x-api-key"]
    assert SECRET not in repr(check)


@pytest.mark.parametrize("use_codex_home", [False, True])
def test_a_token_in_codex_config_fails(env, tmp_path, use_codex_home):
    codex_home = tmp_path / "codex-home" if use_codex_home else Path(env["HOME"]) / ".codex"
    codex_home.mkdir(parents=True)
    (codex_home / "config.toml").write_text(
        'model = "gpt-5"\n[otel]\nenvironment = "dev"\n'
        '[otel.exporter.otlp-http]\nendpoint = "https://collector.example.com/v1/logs"\n'
        f'headers = {{ "x-api-key" = "{SECRET}" }}\n')
    extra = {"CODEX_HOME": str(codex_home)} if use_codex_home else {}
    check = doctor.check_plaintext_tokens(context(env, **extra))
    assert check.status == "FAIL"
    [detail] = check.details
    assert str(codex_home / "config.toml") in detail and "otel.exporter.otlp-http" in detail
    assert "x-api-key" in detail and SECRET not in repr(check)


def test_an_unreadable_codex_config_warns(env):
    codex = Path(env["HOME"]) / ".codex"
    codex.mkdir()
    (codex / "config.toml").write_text("[otel\n")
    check = doctor.check_plaintext_tokens(context(env))
    assert check.status == "WARN" and "invalid TOML" in check.details[0]


# ---------------------------------------------------------------- ledger and outbox


def test_ledger_absent_or_healthy_passes(home, env):
    check = doctor.check_ledger(context(env))
    assert check.status == "PASS" and "no ledger yet" in check.summary
    queue(home.ledger, ["1"])
    check = doctor.check_ledger(context(env))
    assert check.status == "PASS" and "integrity check passed" in check.summary
    assert check.data["schema"] == check.data["current_schema"]


def test_a_damaged_ledger_fails(home, env):
    queue(home.ledger, [str(i) for i in range(300)], pad=2000)
    with open(home.ledger, "r+b") as fh:  # wreck a b-tree page's header
        fh.seek(4096 * 5)
        fh.write(b"\xff" * 16)
    check = doctor.check_ledger(context(env))
    assert check.status == "FAIL" and "is damaged: Page " in check.summary
    assert "\n" not in check.summary
    assert f"mv {home.ledger} {home.ledger}.broken" in check.fix


def test_a_file_that_is_no_database_fails(home, env):
    home.ledger.parent.mkdir(parents=True)
    home.ledger.write_bytes(b"this is not SQLite" * 100)
    check = doctor.check_ledger(context(env))
    assert check.status == "FAIL" and "cannot be read" in check.summary


def test_a_ledger_from_a_newer_aitrack_warns(home, env):
    queue(home.ledger, ["1"])
    db = sqlite3.connect(home.ledger)
    db.execute("INSERT INTO schema_migrations VALUES (999, 'm999_future', 0)")
    db.commit()
    db.close()
    check = doctor.check_ledger(context(env))
    assert check.status == "WARN" and "v999" in check.summary


def test_a_read_only_ledger_fails(home, env):
    queue(home.ledger, ["1"])
    if os.geteuid() != 0:
        home.ledger.chmod(0o444)
        check = doctor.check_ledger(context(env))
        assert check.status == "FAIL" and "not writable" in check.summary
        return
    # root writes any file it may open: a read-only mount is what stops it (as for CI's root)
    if not shutil.which("unshare") or subprocess.run(
            ["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root without mount namespaces (unshare -m)")
    data = home.ledger.parent
    mount_ro = (f'mount --bind "{data}" "{data}" && mount -o remount,bind,ro "{data}" && '
                f'exec "{sys.executable}" -m aitrack doctor --json')
    result = subprocess.run(["unshare", "-m", "sh", "-c", mount_ro], capture_output=True,
                            text=True, env=env, timeout=60)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["ledger"]["status"] == "FAIL", checks["ledger"]
    assert "not writable" in checks["ledger"]["summary"]
    assert result.returncode == 1


def test_outbox_empty_or_in_flight_passes(home, env):
    home.write_managed_profile('[endpoint]\nurl = "https://otlp.example.com"\n')
    assert doctor.check_outbox(context(env)).status == "PASS"
    queue(home.ledger, ["1", "2"])
    check = doctor.check_outbox(context(env))
    assert check.status == "PASS" and check.summary.startswith("2 payloads in flight")


def test_an_old_backlog_warns(home, env):
    home.write_managed_profile('[endpoint]\nurl = "https://otlp.example.com"\n')
    queue(home.ledger, ["1", "2", "3"])
    check = doctor.check_outbox(context(env), now=time.time() + 3 * 3600)
    assert check.status == "WARN"
    assert "3 payloads" in check.summary and "the oldest for 3 h" in check.summary
    assert "aitrack flush" in check.fix


def test_dead_letters_warn(home, env):
    home.write_managed_profile('[endpoint]\nurl = "https://otlp.example.com"\n')
    queue(home.ledger, ["1", "2"])
    db = sqlite3.connect(home.ledger)
    db.execute("UPDATE outbox SET state = 'dead', last_error = 'HTTP 400' WHERE id = 1")
    db.commit()
    db.close()
    check = doctor.check_outbox(context(env))
    assert check.status == "WARN" and "1 dead letter (" in check.summary
    assert "--retry-dead" in check.fix


def test_payloads_for_an_endpoint_no_longer_configured_warn(home, env):
    queue(home.ledger, ["1"])  # queued while a profile had an endpoint; now local-only
    check = doctor.check_outbox(context(env))
    assert check.status == "WARN" and "1 payload (" in check.summary
    assert "no endpoint is configured" in check.fix


def test_an_outbox_near_its_bound_fails(home, env):
    home.write_managed_profile('[endpoint]\nurl = "https://otlp.example.com"\n'
                               "outbox_max_mb = 1\n")
    queue(home.ledger, [str(i) for i in range(9)], pad=100_000)
    check = doctor.check_outbox(context(env))
    assert check.status == "FAIL" and "nearly full" in check.summary
    assert "of 1.0 MB" in check.summary


# ---------------------------------------------------------------- the command


def test_doctor_exit_status_and_json(home, env, tmp_path):
    result = run_doctor(home, env, "--json")
    assert result.returncode == 0, result.stdout + result.stderr  # WARNs only: no claude/codex
    data = json.loads(result.stdout)
    names = [c["name"] for c in data["checks"]]
    assert names == ["profile", "profile-integrity", "keychain", "endpoint", "claude", "codex",
                     "gemini", "qwen", "copilot", "opencode", "shims", "command",
                     "claude-settings", "plaintext-tokens", "ledger", "disk", "outbox", "prices",
                     "private-files", "agent", "agent-settings"]
    assert data["ok"] is True and data["status"] == "WARN"
    text = run_doctor(home, env)
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert any(line.startswith("WARN  claude ") for line in lines)
    assert any(line.strip().startswith("fix: install claude") for line in lines)
    # a WARN per tool not installed here, no `aitrack` on this bare PATH, and no agent yet
    assert lines[-1] == f"0 FAIL, {len(adapters.TOOLS) + 2} WARN: follow the fix lines above."
    home.write_managed_profile("[endpoint\n")
    failing = run_doctor(home, env)
    assert failing.returncode == 1
    assert any(line.startswith("FAIL  profile ") for line in failing.stdout.splitlines())


def test_doctor_never_shows_a_secret(home, env, org, authority, keychain_account, tmp_path):
    from aitrack.config import keychain

    keychain.set_token(keychain_account, SECRET)
    org.auth_value = f"Bearer {SECRET}"
    org.always(400, message=f"echo: {SECRET}-h and Bearer {SECRET}")  # an endpoint that echoes
    home.write_managed_profile(profile_toml(org, authority.pem, keychain_account,
                                            extra=f'headers = {{ "x-extra" = "{SECRET}-h" }}'))
    write_claude_settings(env, {"env": {"OTEL_EXPORTER_OTLP_HEADERS": f"api-key={SECRET}"}})
    codex = Path(env["HOME"]) / ".codex"
    codex.mkdir()
    (codex / "config.toml").write_text(
        f'[otel.metrics_exporter.otlp-http]\nheaders = {{ "authorization" = "{SECRET}" }}\n')
    (Path(env["HOME"]) / ".bashrc").write_text(f"export OTEL_EXPORTER_OTLP_HEADERS={SECRET}\n")
    for args in ((), ("--json",)):
        result = run_doctor(home, env, *args, OTEL_EXPORTER_OTLP_LOGS_HEADERS=f"k={SECRET}")
        assert result.returncode == 1
        assert SECRET not in result.stdout + result.stderr
        assert "answered an empty export with HTTP 400" in result.stdout  # the probe ran
    assert org.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    assert org.requests[-1].headers["x-extra"] == f"{SECRET}-h"
