"""Profiles: layering and locking, validation errors, `profile show` and `profile validate`."""

from __future__ import annotations

import json
import os
import pwd
import sys
import tomllib

import pytest

from aitrack.config import paths, profile, profile_file, schema

MANAGED = """\
[endpoint]
url = "https://otlp.corp.example.com"
keychain_account = "corp"

[attributes]
"team.id" = "platform-eng"
cost_center = "CC-4200"

[telemetry]
log_user_prompts = false
"""

USER = """\
[endpoint]
url = "https://attacker.example.net"
timeout_s = 99

[endpoint.headers]
x-divert = "1"

[attributes]
"team.id" = "my-own-team"
department = "research"

[telemetry]
log_user_prompts = true
metric_export_interval_ms = 10000
"""


def load(home) -> profile.Profile:
    return profile.load(paths.resolve(home.env))


def show(home, *flags: str) -> dict:
    result = home.run("profile", "show", "--json", *flags)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# ---------------------------------------------------------------- layering and locking


def test_managed_keys_win_user_fills_gaps_defaults_last(home):
    home.write_managed_profile(MANAGED)
    home.write_user_profile(USER)
    data = show(home)
    assert data["attributes"]["team.id"] == "platform-eng"  # managed wins
    assert data["attributes"]["cost_center"] == "CC-4200"
    assert data["attributes"]["department"] == "research"  # user fills a gap
    assert data["telemetry"] == {
        "log_user_prompts": False,  # managed wins over the user's true
        "metric_export_interval_ms": 10000,  # user
        "logs_export_interval_ms": 5000,  # default
        "log_tool_details": False,  # default
    }


def test_user_profile_cannot_divert_a_managed_endpoint(home):
    home.write_managed_profile(MANAGED)
    home.write_user_profile(USER)
    endpoint = load(home).endpoint
    assert endpoint.url == "https://otlp.corp.example.com"
    for signal in schema.SIGNALS:
        assert endpoint.signal_url(signal) == f"https://otlp.corp.example.com/v1/{signal}"
    assert endpoint.headers == {}  # the user's header is not added either
    assert endpoint.timeout_s == 10  # the default, not the user's 99: [endpoint] is whole
    assert endpoint.keychain_account == "corp"


def test_user_per_signal_url_cannot_take_one_signal_away(home):
    home.write_managed_profile(MANAGED)
    home.write_user_profile('[endpoint]\nlogs_url = "https://attacker.example.net/v1/logs"\n')
    assert load(home).endpoint.signal_url("logs") == "https://otlp.corp.example.com/v1/logs"


def test_a_signal_account_defaults_to_keychain_account(home):
    home.write_managed_profile(MANAGED.replace(
        'keychain_account = "corp"', 'keychain_account = "corp"\n'
        'logs_keychain_account = "corp-logs"\nsignals = ["metrics", "logs", "traces"]'))
    endpoint = load(home).endpoint
    assert [endpoint.signal_account(s) for s in schema.SIGNALS] == ["corp", "corp-logs", "corp"]
    assert endpoint.accounts() == {"corp": ("metrics", "traces"), "corp-logs": ("logs",)}
    assert endpoint.accounts(("logs",)) == {"corp-logs": ("logs",)}
    home.write_managed_profile(MANAGED)  # none set: one account for every signal
    assert load(home).endpoint.accounts() == {"corp": ("metrics", "logs")}


def test_user_per_signal_account_cannot_change_a_managed_one(home):
    home.write_managed_profile(MANAGED)
    home.write_user_profile('[endpoint]\nurl = "https://otlp.corp.example.com"\n'
                            'logs_keychain_account = "mine"\n')
    assert load(home).endpoint.signal_account("logs") == "corp"  # [endpoint] is whole


def test_user_endpoint_applies_when_the_managed_profile_sets_none(home):
    home.write_managed_profile('[attributes]\n"team.id" = "platform-eng"\n')
    home.write_user_profile('[endpoint]\nurl = "https://mine.example.com"\n')
    p = load(home)
    assert p.endpoint.url == "https://mine.example.com"
    assert p.origins["endpoint.url"] == f"user ({home.user_profile})"
    assert p.endpoint.protocol == "http/protobuf" and p.origins["endpoint.protocol"] == "default"


def test_no_profiles_means_local_only_with_defaults(home):
    data = show(home)
    assert data["mode"] == "local-only" and data["endpoint"] is None
    assert data["attributes"]["user.id"] == pwd.getpwuid(os.getuid()).pw_name
    assert data["telemetry"]["log_user_prompts"] is False


def test_prices_are_taken_per_model_from_the_first_layer(home):
    home.write_managed_profile('[prices."gpt-5"]\ninput = 1.25\noutput = 10\n')
    home.write_user_profile('[prices."gpt-5"]\ninput = 0\n[prices."my-model"]\ninput = 2\n')
    p = load(home)
    assert p.prices == {"gpt-5": {"input": 1.25, "output": 10}, "my-model": {"input": 2}}
    assert any(line.startswith("prices.gpt-5:") for line in p.shadowed)


@pytest.mark.parametrize("user_text", [
    '[endpoint.headers]\nx-divert = "1"\n',
    "[endpoint]\ntimeout_s = 30\n",
    "[endpoint]\n",
], ids=["only-headers", "partial", "empty"])
def test_a_user_endpoint_without_url_is_reported_and_changes_nothing(home, user_text):
    home.write_managed_profile(MANAGED)
    home.write_user_profile(user_text + '[attributes]\ndepartment = "research"\n')
    result = home.run("profile", "show", "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["endpoint"]["url"] == "https://otlp.corp.example.com"
    assert data["endpoint"]["headers"] == {} and data["endpoint"]["timeout_s"] == 10
    assert data["attributes"]["department"] == "research"  # only [endpoint] is left out
    [line] = result.stderr.splitlines()
    assert line.startswith(f"aitrack: user profile settings ignored: {home.user_profile}: "
                           "endpoint (line 1): needs url")
    assert "used whole" in line
    assert line.endswith(f"; `aitrack profile validate {home.user_profile}` lists it")


def test_an_empty_managed_endpoint_does_not_let_the_user_endpoint_in(home):
    home.write_managed_profile("[endpoint]\n")
    home.write_user_profile('[endpoint]\nurl = "https://mine.example.com"\n')
    p = load(home)
    assert p.local_only
    assert "needs url" in p.problems[0]


# ---------------------------------------------------------------- broken profiles


def test_a_user_profile_with_problems_loses_only_those_settings_said_in_one_line(home):
    """Issue 23 item 11: seven problems printed seven lines on every command, and one typo
    in [prices] threw the whole file out."""
    home.write_managed_profile(MANAGED)
    home.write_user_profile('[attributes]\ndepartment = "research"\n"bad name" = "x"\n'
                            "[telemetry]\nbogus = 1\nlog_tool_details = true\n"
                            'metric_export_interval_ms = "fast"\n'
                            '[prices."my-model"]\ninput = 2\noutput = 8\ncache_reed = 1\n'
                            '[prices."typo-model"]\ninptu = 1\n[prices."pasted"]\n'
                            "[nonsense]\nx = 1\n")
    result = home.run("profile", "show", "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["mode"] == "forwarding"
    assert data["endpoint"]["url"] == "https://otlp.corp.example.com"
    assert data["attributes"]["team.id"] == "platform-eng"
    assert data["attributes"]["department"] == "research" and "bad name" not in (
        data["attributes"])
    assert data["telemetry"]["log_tool_details"] is True
    assert data["telemetry"]["metric_export_interval_ms"] == 60000  # the default stands
    assert data["prices"] == {"my-model": {"input": 2, "output": 8}}
    assert result.stderr == (
        f"aitrack: user profile settings ignored: {home.user_profile}: attributes.\"bad name\" "
        "(line 3): invalid attribute name (a letter or _, then letters, digits, '.', '_', "
        f"'-') (+6 more); `aitrack profile validate {home.user_profile}` lists them all\n")
    check = home.run("profile", "validate", str(home.user_profile))
    assert check.returncode == 1 and len(check.stderr.splitlines()) == 7


def test_broken_managed_profile_falls_back_to_local_only(home):
    home.write_managed_profile(MANAGED + '"1bad" = "x"\n')  # line 11, in [telemetry]
    home.write_user_profile('[endpoint]\nurl = "https://mine.example.com"\n'
                            '[attributes]\ndepartment = "research"\n')
    result = home.run("profile", "show", "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["mode"] == "local-only" and data["endpoint"] is None  # the user's must not
    assert "team.id" not in data["attributes"]
    assert (f"aitrack: managed profile ignored, running local-only: {home.managed_profile}: "
            'telemetry.1bad (line 11): unknown key') in result.stderr


def test_broken_profiles_do_not_stop_the_wrapped_tool(home):
    home.write_managed_profile("[endpoint\n")
    home.write_user_profile("not toml at all\n")
    result = home.run("run", "--", sys.executable, "-c", "raise SystemExit(3)")
    assert result.returncode == 3
    assert f"managed profile ignored, running local-only: {home.managed_profile}" \
        in result.stderr
    assert f"user profile ignored: {home.user_profile}" in result.stderr


# ---------------------------------------------------------------- validation

# (id, profile text, the key as reported, its line, part of the message)
INVALID = [
    ("unknown-table", '[endpoints]\nurl = "https://x.example"\n', "endpoints", 1,
     "unknown table [endpoints]"),
    ("top-level-key", 'url = "https://x.example"\n', "url", 1, "unknown top-level key"),
    ("unknown-endpoint-key", '[endpoint]\nurl = "https://x.example"\nproxy = "p"\n',
     "endpoint.proxy", 3, "unknown key"),
    ("unknown-telemetry-key", "[telemetry]\n\nlog_prompts = true\n", "telemetry.log_prompts",
     3, "unknown key"),
    ("table-as-value", 'telemetry = "on"\n', "telemetry", 1, "must be a table, got string"),
    ("string-for-number", '[endpoint]\nurl = "https://x.example"\ntimeout_s = "10"\n',
     "endpoint.timeout_s", 3, "must be a number, got string"),
    ("bool-for-number", '[endpoint]\nurl = "https://x.example"\ntimeout_s = true\n',
     "endpoint.timeout_s", 3, "must be a number, got boolean"),
    ("bool-for-integer", "[telemetry]\nmetric_export_interval_ms = false\n",
     "telemetry.metric_export_interval_ms", 2, "must be an integer, got boolean"),
    ("float-for-integer", "[telemetry]\nmetric_export_interval_ms = 1000.5\n",
     "telemetry.metric_export_interval_ms", 2, "must be an integer, got float"),
    ("string-for-bool", '[telemetry]\nlog_user_prompts = "no"\n', "telemetry.log_user_prompts",
     2, "must be a boolean, got string"),
    ("int-for-bool", "[telemetry]\nlog_tool_details = 0\n", "telemetry.log_tool_details", 2,
     "must be a boolean, got integer"),
    ("string-for-list", '[endpoint]\nurl = "https://x.example"\nsignals = "metrics"\n',
     "endpoint.signals", 3, "must be an array, got string"),
    ("zero-timeout", '[endpoint]\nurl = "https://x.example"\ntimeout_s = 0\n',
     "endpoint.timeout_s", 3, "greater than 0"),
    ("tiny-interval", "[telemetry]\nlogs_export_interval_ms = 5\n",
     "telemetry.logs_export_interval_ms", 2, "at least 100"),
    ("not-a-url", '[endpoint]\nurl = "otlp.example.com"\n', "endpoint.url", 2,
     "must be an https:// URL with a host"),
    ("no-host", '[endpoint]\nurl = "https://"\n', "endpoint.url", 2, "with a host"),
    ("ftp", '[endpoint]\nurl = "ftp://otlp.example.com"\n', "endpoint.url", 2, "https://"),
    ("bad-port", '[endpoint]\nurl = "https://otlp.example.com:99999"\n', "endpoint.url", 2,
     "not a valid URL"),
    ("space-in-url", '[endpoint]\nurl = "https://otlp example.com"\n', "endpoint.url", 2,
     "not a valid URL"),
    ("http-remote", '[endpoint]\nurl = "http://otlp.example.com"\n', "endpoint.url", 2,
     "plain http:// would send the token unencrypted"),
    ("http-private-ip", '[endpoint]\nmetrics_url = "http://10.0.0.5:4318/v1/metrics"\n'
     'signals = ["metrics"]\n', "endpoint.metrics_url", 2, "plain http://"),
    ("http-localhost-lookalike", '[endpoint]\nurl = "http://localhost.example.com"\n',
     "endpoint.url", 2, "plain http://"),
    ("http-any-address", '[endpoint]\nurl = "http://0.0.0.0:4318"\n', "endpoint.url", 2,
     "plain http://"),
    ("grpc", '[endpoint]\nurl = "https://x.example"\nprotocol = "grpc"\n',
     "endpoint.protocol", 3, "must be one of http/protobuf, http/json"),
    ("unknown-signal", '[endpoint]\nurl = "https://x.example"\nsignals = ["metrics", "spans"]\n',
     "endpoint.signals", 3, "unknown 'spans'"),
    ("no-signals", '[endpoint]\nurl = "https://x.example"\nsignals = []\n', "endpoint.signals",
     3, "one or more of metrics, logs, traces"),
    ("signal-without-url", '[endpoint]\nmetrics_url = "https://m.example/v1/metrics"\n',
     "endpoint.metrics_url", 2, "endpoint.signals is not set and its default also forwards "
     "logs"),
    ("header-name-space", '[endpoint]\nurl = "https://x.example"\n\n[endpoint.headers]\n'
     'x-ok = "1"\n"x team" = "a"\n', 'endpoint.headers."x team"', 6, "invalid HTTP header name"),
    ("header-name-colon", '[endpoint]\nurl = "https://x.example"\n'
     'headers = { "x-team:" = "a" }\n', "endpoint.headers.x-team:", 3,
     "invalid HTTP header name"),
    ("header-value-newline", '[endpoint]\nurl = "https://x.example"\n[endpoint.headers]\n'
     'x-team = "a\\nInjected: 1"\n', "endpoint.headers.x-team", 4, "must not contain newlines"),
    ("header-value-crlf", '[endpoint]\nurl = "https://x.example"\n'
     'headers.x-team = "a\\r\\nInjected: 1"\n', "endpoint.headers.x-team", 3,
     "must not contain newlines"),
    ("header-value-number", '[endpoint]\nurl = "https://x.example"\n[endpoint.headers]\n'
     "x-team = 7\n", "endpoint.headers.x-team", 4, "must be a string, got integer"),
    ("auth-header-name", '[endpoint]\nurl = "https://x.example"\nauth_header = "X Api Key"\n',
     "endpoint.auth_header", 3, "valid HTTP header name"),
    ("auth-scheme-newline", '[endpoint]\nurl = "https://x.example"\n'
     'auth_scheme = "Bearer\\r\\nX-Injected: 1"\n', "endpoint.auth_scheme", 3, "Bearer"),
    ("empty-account", '[endpoint]\nurl = "https://x.example"\nkeychain_account = ""\n',
     "endpoint.keychain_account", 3, "must not be empty"),
    ("blank-logs-account", '[endpoint]\nurl = "https://x.example"\n'
     'logs_keychain_account = " "\n', "endpoint.logs_keychain_account", 3, "must not be empty"),
    ("metrics-account-number", '[endpoint]\nurl = "https://x.example"\n\n'
     "metrics_keychain_account = 7\n", "endpoint.metrics_keychain_account", 4,
     "must be a string, got integer"),
    ("traces-account-typo", '[endpoint]\nurl = "https://x.example"\n'
     'trace_keychain_account = "t"\n', "endpoint.trace_keychain_account", 3,
     "traces_keychain_account"),
    ("attribute-space", '[attributes]\n"team id" = "a"\n', 'attributes."team id"', 2,
     "invalid attribute name"),
    ("attribute-digit", '[attributes]\n"1team" = "a"\n', "attributes.1team", 2,
     "invalid attribute name"),
    ("attribute-empty", '[attributes]\n"" = "a"\n', 'attributes.""', 2,
     "invalid attribute name"),
    ("attribute-trailing-newline", '[attributes]\n"team.id\\n" = "a"\n',
     'attributes."team.id\\n"', 2, "invalid attribute name"),
    ("attribute-int", "[attributes]\ncost_center = 4200\n", "attributes.cost_center", 2,
     "must be a string, got integer"),
    ("attribute-bool", "[attributes]\nproduction = true\n", "attributes.production", 2,
     "must be a string, got boolean"),
    ("attribute-array", '[attributes]\nteams = ["a"]\n', "attributes.teams", 2,
     "must be a string, got array"),
    ("price-negative", '[prices."gpt-5.1"]\ninput = -1\n', "prices.gpt-5.1.input", 2,
     "non-negative number"),
    ("price-bool", "[prices.gpt-5]\n\noutput = true\n", "prices.gpt-5.output", 3,
     "non-negative number"),
    ("price-string", '[prices]\n"gpt-5" = { input = "1.25" }\n', "prices.gpt-5.input", 2,
     "non-negative number"),
    ("price-unknown", "[prices.gpt-5]\ninput = 1\ncached = 0.1\n", "prices.gpt-5.cached", 3,
     "unknown price"),
    ("price-not-table", "[prices]\ngpt-5 = 1.25\n", "prices.gpt-5", 2,
     "must be a table of per-million-token USD prices"),
]


@pytest.mark.parametrize("text,key,line,message", [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_each_validation_error_names_file_key_and_line(tmp_path, text, key, line, message):
    path = tmp_path / "profile.toml"
    path.write_text(text)
    with pytest.raises(schema.ProfileError) as caught:
        profile_file.read_file(path)
    assert caught.value.path == path
    assert str(caught.value).startswith(f"{path}: ")
    [problem] = caught.value.problems
    assert problem.startswith(f"{key} (line {line}): "), problem
    assert message in problem


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:4318", "http://127.8.9.10/otlp", "http://[::1]:4318", "http://localhost",
    "http://LOCALHOST:4318", "https://otlp.example.com", "https://10.0.0.5:4318",
])
def test_loopback_http_and_any_https_are_accepted(tmp_path, url):
    path = tmp_path / "profile.toml"
    path.write_text(f'[endpoint]\nurl = "{url}"\n')
    data = profile_file.read_file(path)
    assert data["endpoint"]["url"] == url


def test_invalid_toml_names_the_file_and_line(home):
    path = home.write_user_profile('[attributes]\n"team.id" = "a"\nteam = \n')
    result = home.run("profile", "validate", str(path))
    assert result.returncode == 1
    assert result.stderr.startswith(f"{path}: invalid TOML: ")
    assert "line 3" in result.stderr


def test_not_utf8_names_the_file_and_line(home):
    path = home.write_user_profile("")
    path.write_bytes(b'[attributes]\n"team.id" = "caf\xe9"\n')
    result = home.run("profile", "validate", str(path))
    assert result.returncode == 1
    assert result.stderr == f"{path}: line 2: not UTF-8 text; save the file as UTF-8\n"


def test_a_utf8_bom_is_accepted(home):
    path = home.write_user_profile("")
    path.write_bytes('\ufeff[attributes]\n"team.id" = "café"\n'.encode())
    assert home.run("profile", "validate", str(path)).returncode == 0
    assert show(home)["attributes"]["team.id"] == "café"


def test_validate_prints_every_problem_and_exits_1(home, tmp_path):
    path = tmp_path / "it.toml"
    path.write_text('[endpoint]\nurl = "http://otlp.example.com"\nprotocol = "grpc"\n'
                    '[attributes]\n"team id" = "a"\ncost_center = 1\n[extra]\n')
    result = home.run("profile", "validate", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [str(path), "endpoint.url (line 2)"],
        [str(path), "endpoint.protocol (line 3)"],
        [str(path), 'attributes."team id" (line 5)'],
        [str(path), "attributes.cost_center (line 6)"],
        [str(path), "extra (line 7)"],
    ]


def test_validate_a_good_file_exits_0(home, tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(MANAGED)
    result = home.run("profile", "validate", str(path))
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{path}: ok\n", "")


def test_validate_a_missing_file_says_so(home, tmp_path):
    result = home.run("profile", "validate", str(tmp_path / "nope.toml"))
    assert result.returncode == 1
    assert result.stderr == f"aitrack: {tmp_path / 'nope.toml'}: no such file\n"


def test_validate_a_directory_says_so_in_one_aitrack_line(home, tmp_path):
    result = home.run("profile", "validate", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr == (f"aitrack: {tmp_path} is a directory, not a profile file: name the "
                             ".toml file to check\n")


# ---------------------------------------------------------------- profile show


def test_show_origin_labels_managed_user_and_default_keys(home):
    home.write_managed_profile(MANAGED.replace(
        'keychain_account = "corp"', 'keychain_account = "corp"\n'
        'logs_keychain_account = "corp-logs"'))
    home.write_user_profile(USER)
    managed, user = f"managed ({home.managed_profile})", f"user ({home.user_profile})"
    result = home.run("profile", "show", "--origin")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()

    def origin_of(setting: str) -> str:
        [line] = [line for line in lines if line.startswith(setting + " ")]
        return line.rsplit("# ", 1)[1]

    assert origin_of('url = "https://otlp.corp.example.com"') == managed
    assert origin_of('keychain_account = "corp"') == managed
    assert origin_of('logs_keychain_account = "corp-logs"') == managed
    assert not any(line.startswith("metrics_keychain_account") for line in lines)  # unset
    assert origin_of("timeout_s = 10") == "default"
    assert origin_of('"team.id" = "platform-eng"') == managed
    assert origin_of('department = "research"') == user
    assert origin_of("log_user_prompts = false") == managed
    assert origin_of("metric_export_interval_ms = 10000") == user
    assert origin_of("log_tool_details = false") == "default"
    account = pwd.getpwuid(os.getuid()).pw_name
    assert origin_of(f'"user.id" = "{account}"') == "default (the OS account)"
    assert origin_of("email_from_git = false") == "default (not on a managed machine)"
    shadowed = lines[lines.index("# overridden by the managed profile:") + 1:]
    assert shadowed == [
        f"#   attributes.team.id: user value ignored, {managed} wins",
        f"#   telemetry.log_user_prompts: user value ignored, {managed} wins",
        f"#   endpoint: user [endpoint] ignored, {managed} sets the endpoint",
    ]
    assert "attacker" not in result.stdout.replace("#   endpoint: user [endpoint]", "")


def test_show_json_origin(home):
    home.write_managed_profile(MANAGED)
    home.write_user_profile(USER)
    data = show(home, "--origin")
    managed, user = f"managed ({home.managed_profile})", f"user ({home.user_profile})"
    assert data["origins"]["endpoint.url"] == managed
    assert data["origins"]["endpoint.timeout_s"] == "default"
    assert data["origins"]["endpoint.logs_keychain_account"] == "default"  # keychain_account
    assert "logs_keychain_account" not in data["endpoint"]
    assert data["origins"]["attributes.team.id"] == managed
    assert data["origins"]["attributes.department"] == user
    assert data["origins"]["telemetry.metric_export_interval_ms"] == user
    assert data["origins"]["telemetry.logs_export_interval_ms"] == "default"
    assert len(data["shadowed"]) == 3
    assert "origins" not in show(home)


def test_show_text_is_the_json_as_toml(home):
    """What `profile show` prints is valid TOML (headers and prices included)."""
    home.write_managed_profile(MANAGED.replace(
        "[attributes]", '[endpoint.headers]\nx-team = "a"\n"X-Scope-OrgID" = "b"\n\n'
        '[attributes]\n"site.name" = "Zürich ☃"'))
    home.write_user_profile('[prices."gpt-5.1"]\ninput = 1.25\noutput = 10\n')
    result = home.run("profile", "show")
    assert result.returncode == 0, result.stderr
    data = show(home)
    del data["mode"]
    assert tomllib.loads(result.stdout) == {k: v for k, v in data.items() if v != {}}
    assert data["endpoint"]["headers"] == {"x-team": "a", "X-Scope-OrgID": "b"}
    assert data["prices"] == {"gpt-5.1": {"input": 1.25, "output": 10}}


def test_resource_attributes_default_user_email_from_git(home, tmp_path):
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("[user]\n\temail = dev@example.com\n")
    result = home.run("profile", "show", "--json", "--origin",
                      env={"GIT_CONFIG_GLOBAL": str(gitconfig)})
    data = json.loads(result.stdout)
    assert data["attributes"]["user.email"] == "dev@example.com"
    assert data["origins"]["attributes.user.email"].startswith("default (git config")
    gitconfig.write_text("")
    result = home.run("profile", "show", "--json", "--origin",
                      env={"GIT_CONFIG_GLOBAL": str(gitconfig)})
    data = json.loads(result.stdout)
    assert "user.email" not in data["attributes"]
    assert "attributes.user.email" not in data["origins"]  # no origin for an absent value
