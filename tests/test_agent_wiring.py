"""`aitrack agent install|uninstall|print-settings`: the tools' own settings pointed at the
agent and back, checked on the files and with the real claude and codex started directly."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import tomllib
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from adversary import other_user, popen_as
from agents import agent_bin, codex_provider_args
from aitrack.adapters.claude import settings as claude
from aitrack.adapters.codex import settings as codex
from aitrack.adapters.endpoints import AgentLink
from aitrack.capture import agent
from aitrack.config import paths, profile
from aitrack.install import wiring

TOKEN = "cw-live-token-9f8e7d6c5b4a"
CLAUDE_CLOUDWATCH = f"""{{
\t"model": "opus",
\t"env": {{
\t\t"OTEL_EXPORTER_OTLP_ENDPOINT": "https://monitoring.us-east-1.amazonaws.com",
\t\t"OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer {TOKEN}",
\t\t"FOO": "bär \\u00e9"
\t}},
\t"permissions": {{ "allow": ["Bash(ls:*)"] }}
}}
"""
CODEX_COMMENTED = f"""# my codex settings
model = "gpt-5"   # the default model

[otel]
# telemetry goes to CloudWatch
exporter = {{ otlp-http = {{ endpoint = "https://logs.us-east-1.amazonaws.com/v1/logs", \
protocol = "json", headers = {{ "authorization" = "Bearer {TOKEN}" }} }} }}

[profiles.fast]
model = "gpt-5-mini" # cheap
"""


@pytest.fixture
def user(home, tmp_path: Path) -> dict[str, str | None]:
    """A throwaway user: HOME, and no managed or machine settings of the real machine."""
    user_home = tmp_path / "user-home"
    user_home.mkdir()
    env = {k: v for k, v in home.env.items()
           if not k.startswith(("CLAUDE_", "CODEX_", "OTEL_"))}
    env.update(HOME=str(user_home),
               # unset for aitrack too (home.run merges over home.env): HOME decides
               CLAUDE_CONFIG_DIR=None, CODEX_HOME=None,
               AITRACK_CLAUDE_MANAGED_SETTINGS=str(tmp_path / "etc-claude/managed-settings.json"),
               AITRACK_CODEX_SYSTEM_DIR=str(tmp_path / "etc-codex"))
    return env


def claude_file(env) -> Path:
    return Path(env["HOME"]) / ".claude" / "settings.json"


def codex_file(env) -> Path:
    return Path(env["HOME"]) / ".codex" / "config.toml"


def write(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    path.chmod(mode)


def snapshot(*files: Path) -> dict[str, tuple[bytes, int] | None]:
    return {str(f): (f.read_bytes(), stat.S_IMODE(f.stat().st_mode)) if f.exists() else None
            for f in files}


def loaded(env):
    where = paths.resolve(env)
    return where, profile.load(where, env)


def wire(env, keep_local: bool = True):
    """Wire as `agent install --keep-local` does: these tests start from settings that send
    to CloudWatch with a local-only profile (plain install refuses those: see below)."""
    return wiring.wire(*loaded(env), env, keep_local=keep_local)


def unwire(env):
    return wiring.unwire(paths.resolve(env), env)


def link(port: int, helper: Path | None = None) -> AgentLink:
    """What a machine-wide snippet (or a user's helper) is made from."""
    return AgentLink(port, agent.SECRET_HEADER, None, str(helper) if helper else None,
                     agent.RUN_HEADER, profile.Telemetry())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_of(env) -> int:
    """The agent port install chose for this user (and remembered)."""
    where = paths.resolve(env)
    return agent.agent_port(where, profile.load(where, env))


def secret(env) -> str:
    return agent.ensure_secret(paths.resolve(env))


# ---------------------------------------------------------------- install and uninstall


def test_install_then_uninstall_gives_back_the_very_bytes(user):
    write(claude_file(user), CLAUDE_CLOUDWATCH, 0o640)
    write(codex_file(user), CODEX_COMMENTED, 0o644)
    before = snapshot(claude_file(user), codex_file(user))

    done = wire(user)
    said = "\n".join(done.lines)
    assert done.changed and TOKEN not in said
    assert "a plaintext token was found in ~/.claude/settings.json (OTEL_EXPORTER_OTLP_HEADERS)" \
        in said
    assert "a plaintext token was found in ~/.codex/config.toml ([otel] exporter headers)" in said
    assert "https://monitoring.us-east-1.amazonaws.com" in said  # where it went, no path or key

    settings = json.loads(claude_file(user).read_text())
    url = agent.url(port_of(user))
    assert settings["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == url
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in settings["env"]
    assert settings["env"]["FOO"] == "bär é" and settings["model"] == "opus"
    assert settings["env"]["OTEL_LOG_USER_PROMPTS"] == "0"
    assert settings["env"]["OTEL_METRICS_INCLUDE_ENTRYPOINT"] == "true"
    assert settings["otelHeadersHelper"] == str(wiring.helper_file(paths.resolve(user), "claude"))
    text = claude_file(user).read_text()
    assert '\t\t"OTEL_LOG_TOOL_DETAILS": "0"\n' in text  # the file's own indentation
    assert '"permissions": { "allow": ["Bash(ls:*)"] }' in text  # the rest untouched
    assert stat.S_IMODE(claude_file(user).stat().st_mode) == 0o640

    config = codex_file(user).read_text()
    assert config.startswith("# my codex settings\nmodel = \"gpt-5\"   # the default model\n")
    assert 'model = "gpt-5-mini" # cheap' in config and "# telemetry goes to CloudWatch" in config
    otel = tomllib.loads(config)["otel"]
    key = {"x-aitrack-key": secret(user)}
    assert otel["exporter"] == {"otlp-http": {"endpoint": f"{url}/v1/logs",
                                              "protocol": "binary", "headers": key}}
    assert otel["metrics_exporter"]["otlp-http"]["endpoint"] == f"{url}/v1/metrics"
    assert otel["trace_exporter"]["otlp-http"]["headers"] == key
    assert otel["log_user_prompt"] is False
    assert TOKEN not in config
    assert stat.S_IMODE(codex_file(user).stat().st_mode) == 0o600
    state = wiring.state_file(paths.resolve(user))
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    port = port_of(user)
    assert claude.points_at_agent(port, user) and codex.points_at_agent(port, user)

    undone = unwire(user)
    assert snapshot(claude_file(user), codex_file(user)) == before
    assert "restored ~/.claude/settings.json byte for byte" in undone.lines
    assert "restored ~/.codex/config.toml byte for byte" in undone.lines
    assert not state.exists() and not wiring.helper_file(paths.resolve(user), "claude").exists()
    assert not claude.points_at_agent(port, user) and not codex.points_at_agent(port, user)


def test_a_second_install_changes_nothing_and_says_so(user):
    write(codex_file(user), CODEX_COMMENTED)
    wire(user)
    after = snapshot(claude_file(user), codex_file(user))
    times = [os.stat(f).st_mtime_ns for f in (claude_file(user), codex_file(user))]
    again = wire(user)
    assert not again.changed
    assert again.lines == ["the settings of Claude Code, Codex, Gemini CLI, Qwen Code and Copilot "
                           "CLI already point at the agent"]
    assert snapshot(claude_file(user), codex_file(user)) == after
    assert [os.stat(f).st_mtime_ns for f in (claude_file(user), codex_file(user))] == times
    # and the original bytes are still what uninstall gives back
    unwire(user)
    assert codex_file(user).read_text() == CODEX_COMMENTED


def test_files_that_did_not_exist_go_again_with_their_directories(user):
    wire(user)
    assert claude_file(user).exists() and codex_file(user).exists()
    assert stat.S_IMODE(codex_file(user).parent.stat().st_mode) == 0o700
    undone = unwire(user)
    assert "removed ~/.claude/settings.json (it did not exist before)" in undone.lines
    assert sorted(os.listdir(user["HOME"])) == []


def test_a_directory_the_tool_filled_meanwhile_stays(user):
    wire(user)
    (claude_file(user).parent / "projects").mkdir()  # Claude Code ran meanwhile
    unwire(user)
    assert not claude_file(user).exists() and claude_file(user).parent.is_dir()


def test_user_edits_made_after_install_survive_uninstall(user):
    write(claude_file(user), CLAUDE_CLOUDWATCH)
    write(codex_file(user), CODEX_COMMENTED)
    wire(user)
    settings = json.loads(claude_file(user).read_text())
    settings["env"]["MY_VAR"] = "mine"
    settings["env"]["OTEL_LOG_USER_PROMPTS"] = "1"  # the user changed one of aitrack's
    settings["theme"] = "dark"
    claude_file(user).write_text(json.dumps(settings, indent=2))
    config = codex_file(user).read_text()
    codex_file(user).write_text(config.replace('model = "gpt-5"   # the default model',
                                               'model = "gpt-6"   # newer'))

    undone = unwire(user)
    said = "\n".join(undone.lines)
    assert "OTEL_LOG_USER_PROMPTS: you changed it since install; left as you set it" in said
    assert "removed aitrack's settings from ~/.claude/settings.json" in said
    restored = json.loads(claude_file(user).read_text())
    assert restored["theme"] == "dark" and restored["env"]["MY_VAR"] == "mine"
    assert restored["env"]["OTEL_LOG_USER_PROMPTS"] == "1"
    assert restored["env"]["OTEL_EXPORTER_OTLP_HEADERS"] == f"Authorization=Bearer {TOKEN}"
    assert restored["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == \
        "https://monitoring.us-east-1.amazonaws.com"
    assert not [k for k in restored["env"] if k in claude.wanted_env("", profile.Telemetry())
                and k not in ("OTEL_LOG_USER_PROMPTS", "OTEL_EXPORTER_OTLP_ENDPOINT")]
    assert "otelHeadersHelper" not in restored
    # Codex: only the user's edit differs from the original; the mode is theirs again
    assert codex_file(user).read_text() == CODEX_COMMENTED.replace(
        'model = "gpt-5"   # the default model', 'model = "gpt-6"   # newer')
    assert stat.S_IMODE(codex_file(user).stat().st_mode) == 0o644


def test_an_edit_between_two_installs_is_kept_at_uninstall(user):
    write(codex_file(user), 'model = "gpt-5"\n')
    wire(user)
    codex_file(user).write_text(codex_file(user).read_text() + '\n[profiles.x]\nmodel = "y"\n')
    wire(user)  # the original bytes no longer are what uninstall may give back
    unwire(user)
    assert tomllib.loads(codex_file(user).read_text()) == {
        "model": "gpt-5", "profiles": {"x": {"model": "y"}}}


LAYOUTS = {
    "two spaces": '{\n  "model": "opus"\n}\n',
    "four spaces, env": '{\n    "env": {\n        "FOO": "1"\n    },\n    "x": [1, 2]\n}\n',
    "tabs, CRLF": '{\r\n\t"env": {\r\n\t\t"FOO": "1"\r\n\t}\r\n}\r\n',
    "one line": '{"model":"opus","env":{}}',
    "empty object": "{}",
    "empty env": '{\n  "env": {}\n}\n',
    "empty file": "",
    "no trailing newline": '{\n  "a": {"b": {"c": [1, {"d": "}"}]}}\n}',
    "duplicate keys": '{\n  "env": {"A": "1"},\n  "env": {"B": "2"}\n}\n',
}


@pytest.mark.parametrize("text", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_claude_settings_in_any_layout(user, text):
    write(claude_file(user), text)
    wire(user)
    after = claude_file(user).read_bytes().decode()
    value = json.loads(after)
    assert value["env"]["CLAUDE_CODE_ENABLE_TELEMETRY"] == "1"
    original = json.loads(text) if text.strip() else {}
    for key, item in original.items():  # everything else is as it was
        if key != "env":
            assert value[key] == item
    for key, item in original.get("env", {}).items():
        assert value["env"][key] == item
    if "\r\n" in text:
        assert "\n" not in after.replace("\r\n", "")
    if "\n" not in text.strip() and original:
        assert "\n" not in after.strip()  # a one-line file stays on one line
    assert claude.points_at_agent(port_of(user), user)
    unwire(user)
    assert claude_file(user).read_bytes().decode() == text


@pytest.mark.parametrize("text", ['{\n  // mine\n  "env": {}\n}\n', '{"env": {},}\n', "[]\n"],
                         ids=["comment", "trailing comma", "not an object"])
def test_settings_claude_code_cannot_read_are_refused_and_nothing_changes(user, text):
    write(claude_file(user), text)
    write(codex_file(user), CODEX_COMMENTED)
    before = snapshot(claude_file(user), codex_file(user))
    with pytest.raises(wiring.WiringError) as refused:
        wire(user)
    assert "is not valid JSON" in str(refused.value)
    assert "nothing was changed" in str(refused.value)
    assert snapshot(claude_file(user), codex_file(user)) == before
    assert not wiring.state_file(paths.resolve(user)).exists()



@pytest.mark.parametrize("tool", ["claude", "codex"])
def test_a_settings_file_that_is_not_utf8_is_refused_and_nothing_changes(user, tool):
    write(claude_file(user), b'{"env": {"NOTE": "caf\xe9"}}\n' if tool == "claude" else "{}\n")
    write(codex_file(user), b'model = "caf\xe9"\n' if tool == "codex" else CODEX_COMMENTED)
    before = snapshot(claude_file(user), codex_file(user))
    with pytest.raises(wiring.WiringError) as refused:
        wire(user)
    bad = claude_file(user) if tool == "claude" else codex_file(user)
    assert f"{bad} is not UTF-8 text: save it as UTF-8" in str(refused.value)
    assert snapshot(claude_file(user), codex_file(user)) == before

CODEX_LAYOUTS = {
    "no otel": 'model = "gpt-5"\n',
    "no trailing newline": 'model = "gpt-5"',
    "dotted keys": 'model = "gpt-5"\notel.environment = "dev"\notel.log_user_prompt = true\n',
    "exporter as a table": ('[otel.exporter.otlp-http]\nendpoint = "https://x.example/v1/logs"\n'
                            'protocol = "json"\n\n[tools]\nweb_search = true\n'),
    "empty": "",
}


@pytest.mark.parametrize("text", CODEX_LAYOUTS.values(), ids=CODEX_LAYOUTS.keys())
def test_codex_config_in_any_layout(user, text):
    write(codex_file(user), text)
    wire(user)
    value = tomllib.loads(codex_file(user).read_text())
    assert codex.endpoint_of(value["otel"]["exporter"]) == agent.url(port_of(user)) + "/v1/logs"
    original = tomllib.loads(text)
    assert {k: v for k, v in value.items() if k != "otel"} == {
        k: v for k, v in original.items() if k != "otel"}
    assert codex.points_at_agent(port_of(user), user)
    unwire(user)
    assert codex_file(user).read_text() == text


def test_codex_settings_edited_after_a_table_install_lose_only_aitracks_keys(user):
    write(codex_file(user), CODEX_LAYOUTS["exporter as a table"])
    wire(user)
    codex_file(user).write_text(codex_file(user).read_text().replace("web_search = true",
                                                                     "web_search = false"))
    unwire(user)
    value = tomllib.loads(codex_file(user).read_text())
    assert value["tools"] == {"web_search": False}
    assert value["otel"]["exporter"] == {"otlp-http": {"endpoint": "https://x.example/v1/logs",
                                                       "protocol": "json"}}
    assert set(value["otel"]) == {"exporter"}


def test_the_profile_decides_content_switches_port_and_environment(user, home):
    home.write_user_profile('[agent]\nport = 47400\n[telemetry]\nlog_user_prompts = true\n'
                            'metric_export_interval_ms = 10000\n'
                            '[attributes]\nenvironment = "staging"\n')
    write(codex_file(user), '[otel]\nenvironment = "dev"\n')
    wire(user)
    env_block = json.loads(claude_file(user).read_text())["env"]
    assert env_block["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:47400"
    assert env_block["OTEL_LOG_USER_PROMPTS"] == "1" and env_block["OTEL_LOG_TOOL_DETAILS"] == "0"
    assert env_block["OTEL_METRIC_EXPORT_INTERVAL"] == "10000"
    otel = tomllib.loads(codex_file(user).read_text())["otel"]
    assert otel["environment"] == "staging" and otel["log_user_prompt"] is True
    # the profile changes: a new install follows it, and gives back what it no longer sets
    home.write_user_profile("[agent]\nport = 47401\n")
    wire(user)
    otel = tomllib.loads(codex_file(user).read_text())["otel"]
    assert otel["environment"] == "dev" and otel["log_user_prompt"] is False
    assert claude.points_at_agent(47401, user) and not claude.points_at_agent(47400, user)
    unwire(user)
    assert codex_file(user).read_text() == '[otel]\nenvironment = "dev"\n'


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to give the file to another user")
def test_a_codex_config_of_another_user_is_refused(user):
    write(codex_file(user), 'model = "gpt-5"\n')
    os.chown(codex_file(user), 65534, 65534)
    with pytest.raises(wiring.WiringError) as refused:
        wire(user)
    assert "not to you" in str(refused.value) and "sudo chown $USER" in str(refused.value)
    assert codex_file(user).read_text() == 'model = "gpt-5"\n'
    assert not claude_file(user).exists()


def test_a_codex_config_that_is_a_link_is_refused(user, tmp_path):
    dotfiles = tmp_path / "dotfiles" / "config.toml"
    write(dotfiles, 'model = "gpt-5"\n')
    codex_file(user).parent.mkdir(parents=True)
    codex_file(user).symlink_to(dotfiles)
    with pytest.raises(wiring.WiringError) as refused:
        wire(user)
    assert "symbolic link" in str(refused.value) and "version control" in str(refused.value)
    assert dotfiles.read_text() == 'model = "gpt-5"\n'


def test_a_claude_settings_link_is_written_through_and_restored(user, tmp_path):
    dotfiles = tmp_path / "dotfiles" / "settings.json"
    write(dotfiles, '{\n  "model": "opus"\n}\n')
    claude_file(user).parent.mkdir(parents=True)
    claude_file(user).symlink_to(dotfiles)
    wire(user)
    assert claude_file(user).is_symlink() and claude.points_at_agent(port_of(user), user)
    unwire(user)
    assert claude_file(user).is_symlink() and dotfiles.read_text() == '{\n  "model": "opus"\n}\n'


# ---------------------------------------------------------------- what Claude Code reads


def test_managed_settings_win_over_the_user_file(user, tmp_path):
    wire(user)
    managed = Path(user["AITRACK_CLAUDE_MANAGED_SETTINGS"])
    write(managed, json.dumps({"env": {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://elsewhere.example"
                                       }}))
    assert claude.diagnose(47318, user) == (
        f"OTEL_EXPORTER_OTLP_ENDPOINT is https://elsewhere.example ({managed})")
    # IT's snippet, as a drop-in, points back at the agent
    dropin = managed.with_name("managed-settings.d") / "aitrack.json"
    write(dropin, claude.machine_snippet(link(47318), "linux"))
    assert claude.points_at_agent(47318, user)
    assert set(claude.settings_files(user)) == {str(claude_file(user)), str(managed),
                                                str(dropin.parent)}


def test_codex_machine_config_counts_below_the_users(user):
    system = Path(user["AITRACK_CODEX_SYSTEM_DIR"]) / "config.toml"
    write(system, codex.machine_snippet(link(47318), "linux"))
    assert codex.points_at_agent(47318, user)
    write(codex_file(user), '[otel]\nmetrics_exporter = { otlp-http = { endpoint = '
                            '"https://x.example/v1/metrics", protocol = "json" } }\n')
    assert codex.diagnose(47318, user) == (
        f"[otel] metrics_exporter sends metrics to https://x.example ({codex_file(user)})")
    assert str(system) in codex.settings_files(user)


# ---------------------------------------------------------------- the headers helper


def run_helper(env, **more) -> subprocess.CompletedProcess:
    helper = wiring.helper_file(paths.resolve(env), "claude")
    return subprocess.run([str(helper)], capture_output=True, text=True, timeout=10,
                          env={"PATH": "/usr/bin:/bin", **more})


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX sh helper")
@pytest.mark.parametrize("run_id, sent", [
    ("0123456789abcdef0123456789abcdef", True),
    ("0123456789ABCDEF0123456789ABCDEF", True),
    ("0123456789abcdef0123456789abcde", False),  # 31 digits
    ("0123456789abcdef0123456789abcdef0", False),  # 33
    ('0123456789abcdef01234567","x":"y', False),  # JSON injection
    ("$(touch /tmp/aitrack-pwned)", False),
    (None, False),
])
def test_the_helper_prints_the_key_and_only_a_real_run_id(user, run_id, sent):
    wire(user)
    key, _ = agent.rotate_session_key(paths.resolve(user))  # what a started agent makes
    with listening(port_of(user)):  # this user's listener (the agent) on the port
        result = run_helper(user, **({"AITRACK_SESSION_ID": run_id} if run_id is not None
                                     else {}))
    assert result.returncode == 0 and result.stderr == ""
    headers = json.loads(result.stdout)
    expected = {"x-aitrack-key": key}
    assert key != secret(user)  # the helper's key is made at each agent start
    if sent:
        expected["x-aitrack-run"] = run_id
    assert headers == expected
    assert stat.S_IMODE(wiring.helper_file(paths.resolve(user), "claude").stat().st_mode) == 0o700


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX sh helper")
@pytest.mark.parametrize("content", [None, "", 'ab"cd\n'], ids=["missing", "empty", "odd"])
def test_the_helper_without_a_usable_key_prints_an_empty_object(user, content):
    wire(user)
    secret_path = agent.session_key_file(paths.resolve(user))
    if content is None:
        secret_path.unlink(missing_ok=True)
    else:
        secret_path.write_text(content)
    with listening(port_of(user)):
        result = run_helper(user)
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "{}", "")


@contextmanager
def listening(port: int):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield sock


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the owner is read from /proc")
def test_the_helper_prints_no_key_unless_this_user_holds_the_port(user):
    """Issue 18: another user bound the port while the agent was down and received the key
    from every helper run. The helper asks the OS who listens, never the listener."""
    wire(user)
    port = port_of(user)
    agent.rotate_session_key(paths.resolve(user))
    assert run_helper(user).stdout.strip() == "{}"  # nothing listens: no key
    with other_user() as someone:
        squatter = popen_as(someone, SQUAT, str(port))
        try:
            assert squatter.stdout.readline().strip() == "listening", squatter.stderr.read()
            result = run_helper(user)
            assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "{}", "")
        finally:
            squatter.kill()
            squatter.wait(10)
    with listening(port):
        assert "x-aitrack-key" in json.loads(run_helper(user).stdout)


SQUAT = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("listening", flush=True)
time.sleep(60)
"""


# ---------------------------------------------------------------- the real tools, started directly


class Collector:
    """An OTLP sink on the agent's port that records the path and headers of each export."""

    def __init__(self, port: int):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self) -> set[str]:
        return {path for path, _ in self.seen}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector(home):
    port = free_port()
    home.write_user_profile(f"[agent]\nport = {port}\n")
    sink = Collector(port)
    yield sink
    sink.close()


def tool_env(user, stub) -> dict[str, str]:
    return {**{k: v for k, v in user.items() if v is not None}, "ANTHROPIC_BASE_URL": stub.url,
            "ANTHROPIC_API_KEY": "sk-ant-test", "MOCK_KEY": "sk-test", "DISABLE_AUTOUPDATER": "1"}


@pytest.mark.e2e
def test_real_claude_started_directly_sends_to_the_agent_with_its_key(user, stub, collector,
                                                                       tmp_path):
    claude_bin = agent_bin("claude")
    wire(user)
    key, _ = agent.rotate_session_key(paths.resolve(user))  # as the agent does at its start
    run_id = "0123456789abcdef0123456789abcdef"
    done = subprocess.run([claude_bin, "-p", "hi", "--max-turns", "1"], capture_output=True,
                          text=True, timeout=180, cwd=tmp_path, stdin=subprocess.DEVNULL,
                          env={**tool_env(user, stub), "AITRACK_SESSION_ID": run_id})
    assert done.returncode == 0, done.stderr
    assert {"/v1/metrics", "/v1/logs"} <= collector.paths()
    for _, headers in collector.seen:  # this user's listener: the helper gives its key
        assert headers["x-aitrack-key"] == key
        assert headers["x-aitrack-run"] == run_id
        assert headers["content-type"].startswith("application/json")


@pytest.mark.e2e
def test_real_codex_exec_started_directly_sends_to_the_agent_with_its_key(user, stub, collector,
                                                                          tmp_path):
    codex_bin = agent_bin("codex")
    wire(user)
    done = subprocess.run([codex_bin, "exec", *codex_provider_args(stub), "hi"],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, env=tool_env(user, stub))
    assert done.returncode == 0, done.stderr
    assert {"/v1/metrics", "/v1/logs"} <= collector.paths()
    for _, headers in collector.seen:
        assert headers["x-aitrack-key"] == secret(user)
        assert headers["content-type"] == "application/x-protobuf"


def _private_etc_works() -> bool:
    """Root with mount namespaces: a test can overlay /etc for its own processes only."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                           capture_output=True)
    return probe.returncode == 0


def in_private_etc(etc: Path, work: Path, argv: list[str], **kw) -> subprocess.CompletedProcess:
    """Run argv with `etc`'s files laid over /etc, seen by it alone (the machine's /etc and
    every other process are untouched)."""
    (work / "u").mkdir(parents=True)
    (work / "w").mkdir()
    shutil.copytree(etc, work / "u", dirs_exist_ok=True)
    script = (f'mount -t overlay overlay -o lowerdir=/etc,upperdir={work / "u"},'
              f'workdir={work / "w"} /etc && exec "$@"')
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                           "sh", *argv], capture_output=True, text=True, timeout=180, **kw)


@pytest.mark.e2e
@pytest.mark.skipif(not _private_etc_works(), reason="needs root and mount namespaces to lay "
                    "machine settings over /etc for the test's processes only")
def test_machine_settings_from_print_settings_work_with_the_real_tools(user, stub, collector,
                                                                       home, tmp_path):
    """IT's snippets in /etc/claude-code/managed-settings.d/ and /etc/codex/config.toml, and
    nothing in the user's own files: Claude Code runs the user's helper through `$HOME`."""
    claude_bin, codex_bin = agent_bin("claude"), agent_bin("codex")
    port = collector.server.server_address[1]
    where = paths.resolve(user)
    agent.ensure_secret(where)
    key, _ = agent.rotate_session_key(where)  # as the agent does at its start
    # the user's part: their helper
    wiring.write_helper(where, "claude", link(port, helper=wiring.helper_file(where, "claude")))
    etc = tmp_path / "etc"
    # the state directory relative to HOME (the default is ~/.local/state/aitrack)
    state_rel = os.path.relpath(where.state_dir, user["HOME"])
    write(etc / "claude-code/managed-settings.d/aitrack.json",
          claude.machine_snippet(link(port), "linux", state_rel))
    machine_codex = home.run("agent", "print-settings", "codex", "--port", str(port))
    assert machine_codex.returncode == 0, machine_codex.stderr
    write(etc / "codex/config.toml", machine_codex.stdout)
    env = tool_env(user, stub)
    argv = [claude_bin, "-p", "hi", "--max-turns", "1"]
    ran = in_private_etc(etc, tmp_path / "ov1", argv, env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert not claude_file(user).exists()
    assert {"/v1/metrics", "/v1/logs"} <= collector.paths()
    assert {h.get("x-aitrack-key") for _, h in collector.seen} == {key}
    del collector.seen[:]
    ran = in_private_etc(etc, tmp_path / "ov2", [codex_bin, "exec", *codex_provider_args(stub),
                                                 "hi"], env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert {"/v1/metrics", "/v1/logs"} <= collector.paths()
    assert all("x-aitrack-key" not in h for _, h in collector.seen)  # no key in a shared file
    # a user who has no agent (no helper): Claude Code starts quietly, exporting without a key
    del collector.seen[:]
    wiring.helper_file(where, "claude").unlink()
    ran = in_private_etc(etc, tmp_path / "ov3", argv, env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "otelHeadersHelper" not in ran.stderr
    assert all("x-aitrack-key" not in h for _, h in collector.seen)


# ---------------------------------------------------------------- the command line


def test_install_and_uninstall_from_the_command_line_with_the_real_agent(home, user):
    """No service manager here (CI): install starts the agent detached, says how it starts
    next time; uninstall stops it and leaves the user's home as it was."""
    port = free_port()
    home.write_user_profile(f"[agent]\nport = {port}\n")
    write(codex_file(user), CODEX_COMMENTED)
    before = snapshot(claude_file(user), codex_file(user))
    try:
        first = home.run("agent", "install", "--no-service", "--keep-local", env=user)
        assert first.returncode == 0, first.stderr
        assert f"the agent is running on http://127.0.0.1:{port}" in first.stderr
        assert "starts the agent whenever it is down" in first.stderr
        assert TOKEN not in first.stderr + first.stdout
        assert agent.probe(port, secret(user)) == "agent"
        second = home.run("agent", "install", "--no-service", "--json", env=user)
        assert second.returncode == 0, second.stderr
        data = json.loads(second.stdout)
        assert data["changed"] is False and data["messages"][0].startswith("already installed")
        status = home.run("agent", "status", "--json", env=user)
        assert status.returncode == 0, status.stderr
        info = json.loads(status.stdout)
        assert info["running"] and info["port"] == port
        assert info["wired"] == dict.fromkeys(wiring.TOOLS, True)
        doctor = home.run("doctor", "--json", env=user)
        checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
        assert checks["agent"]["status"] == "PASS", checks["agent"]
        # --keep-local: what went to CloudWatch stays here, and doctor says so meanwhile
        assert checks["agent-settings"]["status"] == "WARN", checks["agent-settings"]
        assert "Codex to https://logs.us-east-1.amazonaws.com" in (
            checks["agent-settings"]["summary"])
        assert checks["plaintext-tokens"]["status"] == "PASS", checks["plaintext-tokens"]
    finally:
        removed = home.run("agent", "uninstall", env=user)
    assert removed.returncode == 0, removed.stderr
    assert "stopped the agent" in removed.stderr
    assert agent.probe(port, secret(user)) == "free"
    assert snapshot(claude_file(user), codex_file(user)) == before
    assert sorted(os.listdir(Path(user["HOME"]) / ".codex")) == ["config.toml"]
    again = home.run("agent", "uninstall", env=user)
    assert "nothing to restore" in again.stderr


@pytest.mark.e2e
def test_runs_started_directly_reach_the_real_agent_and_its_ledger(home, user, stub, tmp_path):
    """After `aitrack agent install`, claude -p and codex exec started without aitrack are
    in the ledger with what the model stub billed, tagged with where they came from."""
    import sqlite3
    import time

    claude_bin, codex_bin = agent_bin("claude"), agent_bin("codex")
    port = free_port()
    home.write_user_profile(f"[agent]\nport = {port}\n")
    try:
        installed = home.run("agent", "install", "--no-service", env=user)
        assert installed.returncode == 0, installed.stderr
        env = tool_env(user, stub)
        for argv in ([claude_bin, "-p", "hi", "--max-turns", "1"],
                     [codex_bin, "exec", *codex_provider_args(stub), "hi"]):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=180,
                                  cwd=tmp_path, stdin=subprocess.DEVNULL, env=env)
            assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = json.loads(home.run("agent", "status", "--json", env=user).stdout)
            if info["received"] and info["pending"] == 0 and info["processed"]:
                break
            time.sleep(0.2)
        assert info["failed"] == 0 and info["received"] >= 2, info
    finally:
        removed = home.run("agent", "uninstall", env=user)
        assert removed.returncode == 0, removed.stderr
    db = sqlite3.connect(home.ledger)
    usage = {(tool, t): n for tool, t, n in db.execute(
        "SELECT s.tool, u.token_type, SUM(u.tokens) FROM usage u JOIN sessions s "
        "ON s.id = u.session_id GROUP BY s.tool, u.token_type")}
    a, o = stub.anthropic, stub.openai
    assert {k: v for k, v in usage.items() if k[0] == "claude"} == {
        ("claude", "input"): a.input, ("claude", "output"): a.output,
        ("claude", "cache_read"): a.cache_read, ("claude", "cache_creation"): a.cache_creation}
    assert usage[("codex", "input")] == o.input - o.cached
    assert usage[("codex", "output")] == o.output and usage[("codex", "cache_read")] == o.cached
    entrypoints = {tool: e for tool, e in db.execute("SELECT tool, entrypoint FROM sessions")}
    assert entrypoints == {"claude": "sdk-cli", "codex": "codex_exec"}


def test_without_a_service_manager_install_starts_the_agent_detached(home, user, tmp_path):
    """As in a container: no systemctl/launchctl/schtasks to be found."""
    port = free_port()
    home.write_user_profile(f"[agent]\nport = {port}\n")
    bare = {**user, "PATH": str(tmp_path / "no-tools")}
    try:
        done = home.run("agent", "install", env=bare)
        assert done.returncode == 0, done.stderr
        assert "no service manager here (a container or CI?)" in done.stderr
        assert agent.probe(port, secret(user)) == "agent"
    finally:
        home.run("agent", "uninstall", env=bare)
    assert agent.probe(port, secret(user)) == "free"


def test_print_settings_holds_no_secret_and_parses(home, user):
    wire(user)  # a secret exists on this machine: it must not be in a machine-wide snippet
    for os_name in ("linux", "macos", "windows"):
        out = home.run("agent", "print-settings", "claude", "--port", "47999", "--os", os_name,
                       env=user)
        assert out.returncode == 0, out.stderr
        settings = json.loads(out.stdout)
        assert settings["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:47999"
        assert "otel-headers" in settings["otelHeadersHelper"]
        assert secret(user) not in out.stdout
    out = home.run("agent", "print-settings", "claude", "--os", "macos", env=user)
    assert "$HOME/Library/Application Support/aitrack/agent/otel-headers" in out.stdout
    # per-user ports: the machine-wide Claude settings leave the endpoint to each user's file
    out = home.run("agent", "print-settings", "claude", env=user)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in json.loads(out.stdout)["env"]
    # Codex's machine-wide [otel] names one port: with per-user ports, one must be given
    out = home.run("agent", "print-settings", "codex", env=user)
    assert out.returncode == 1 and "--port" in out.stderr and out.stdout == ""
    out = home.run("agent", "print-settings", "codex", "--port", "47318", env=user)
    otel = tomllib.loads(out.stdout)["otel"]
    assert otel["exporter"] == {"otlp-http": {"endpoint": "http://127.0.0.1:47318/v1/logs",
                                              "protocol": "binary"}}
    assert secret(user) not in out.stdout and "aitrack agent install" in out.stdout


# ---------------------------------------------------------------- doctor


def doctor_context(env):
    from aitrack.install import doctor

    env = {k: v for k, v in env.items() if v is not None}  # an environment, as doctor's
    where, prof = loaded(env)
    return doctor.Context(env, where, prof, Path(env["HOME"]))


def test_doctor_without_an_agent_suggests_it_unless_declined(user):
    from aitrack.install import doctor

    ctx = doctor_context(user)
    assert doctor.check_agent(ctx).status == "WARN"  # the agent by default (issue 23)
    wiring.choose_agent(ctx.paths, False)
    assert doctor.check_agent(ctx).status == "PASS"
    settings = doctor.check_agent_settings(ctx)
    assert settings.status == "PASS" and "has not wired" in settings.summary


def test_doctor_an_installed_agent_that_is_down_warns(user, home):
    from aitrack.install import doctor

    home.write_user_profile(f"[agent]\nport = {free_port()}\n")
    wire(user)
    check = doctor.check_agent(doctor_context(user))
    assert check.status == "WARN" and "not running" in check.summary
    assert "aitrack agent start" in check.fix


def test_doctor_a_port_held_by_another_program_fails(user, home):
    from aitrack.install import doctor

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        home.write_user_profile(f"[agent]\nport = {other.getsockname()[1]}\n")
        wire(user)
        check = doctor.check_agent(doctor_context(user))
    assert check.status == "FAIL" and "used by another program" in check.summary
    assert "[agent] port" in check.fix


def test_doctor_settings_that_no_longer_point_at_the_agent_warn(user):
    from aitrack.install import doctor

    wire(user)
    settings = json.loads(claude_file(user).read_text())
    settings["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] = "https://collector.example.com/otlp?key=x"
    claude_file(user).write_text(json.dumps(settings))
    check = doctor.check_agent_settings(doctor_context(user))
    assert check.status == "WARN"
    assert "Claude Code's settings no longer send its telemetry to the agent" in check.summary
    assert "https://collector.example.com" in check.summary and "key=x" not in check.summary
    assert check.fix == "run `aitrack agent install` again"


def test_doctor_a_readable_codex_config_with_the_key_fails(user):
    from aitrack.install import doctor

    wire(user)
    codex_file(user).chmod(0o644)
    check = doctor.check_agent_settings(doctor_context(user))
    assert check.status == "FAIL" and "other users can read it" in check.summary
    assert check.fix == f"`chmod 600 {codex_file(user)}`"
    assert secret(user) not in repr(check)
    wire(user)  # install again makes it private
    assert stat.S_IMODE(codex_file(user).stat().st_mode) == 0o600


def test_doctor_plaintext_tokens_in_claude_settings_but_not_the_agents_key(user):
    from aitrack.install import doctor

    wire(user)
    assert doctor.check_plaintext_tokens(doctor_context(user)).status == "PASS"
    settings = json.loads(claude_file(user).read_text())
    settings["env"]["OTEL_EXPORTER_OTLP_HEADERS"] = f"Authorization=Bearer {TOKEN}"
    claude_file(user).write_text(json.dumps(settings))
    check = doctor.check_plaintext_tokens(doctor_context(user))
    assert check.status == "FAIL" and TOKEN not in repr(check)
    assert any(str(claude_file(user)) in d and "Authorization" in d for d in check.details)


def test_doctor_managed_settings_from_print_settings_pass(home, user):
    from aitrack.install import doctor

    home.write_managed_profile("[agent]\nport = 47318\n")  # one port for the machine
    write(Path(user["AITRACK_CLAUDE_MANAGED_SETTINGS"]),
          claude.machine_snippet(link(47318), "linux"))
    check = doctor.check_managed_settings(doctor_context(user), "claude")
    assert check.status == "PASS" and "aitrack agent" in check.summary


# ---------------------------------------------------------------- issue 18: install races


def test_a_concurrent_rewrite_of_the_settings_is_not_lost(user, monkeypatch):
    """Claude Code (or the user) rewrote settings.json between aitrack's read and its write:
    the rewrite was lost. aitrack now compares before replacing, and plans again."""
    write(claude_file(user), '{\n  "model": "opus"\n}\n')
    from aitrack.install.wiring import files as wiring_files

    real_read, edits = wiring_files.read, []

    def read_then_edited(mod, path):
        found = real_read(mod, path)
        if path == claude_file(user) and not edits:  # once: the tool writes meanwhile
            edits.append(1)
            write(path, '{\n  "model": "opus",\n  "theme": "dark"\n}\n')
        return found

    monkeypatch.setattr(wiring_files, "read", read_then_edited)
    wire(user)
    data = json.loads(claude_file(user).read_text())
    assert data["theme"] == "dark" and data["model"] == "opus"  # the rewrite stands
    assert claude.points_at_agent(port_of(user), user)  # and aitrack's keys are in


def test_two_installs_at_once_leave_one_wiring_and_one_record(user, home):
    write(claude_file(user), '{\n  "model": "opus"\n}\n')
    write(codex_file(user), CODEX_COMMENTED)
    before = snapshot(claude_file(user), codex_file(user))
    threads = [threading.Thread(target=wire, args=(user,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    port = port_of(user)
    assert claude.points_at_agent(port, user) and codex.points_at_agent(port, user)
    unwire(user)
    assert snapshot(claude_file(user), codex_file(user)) == before


def test_a_read_only_settings_file_is_respected(user, home):
    home.write_user_profile(f"[agent]\nport = {free_port()}\n")
    write(claude_file(user), '{\n  "model": "opus"\n}\n', 0o444)
    write(codex_file(user), CODEX_COMMENTED)
    before = snapshot(claude_file(user), codex_file(user))
    # --keep-local: Codex's settings send to CloudWatch, which a local-only profile refuses
    result = home.run("agent", "install", "--no-service", "--keep-local", env=user)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "read-only" in lines[0] and "chmod u+w" in lines[0], lines
    assert snapshot(claude_file(user), codex_file(user)) == before
    assert not wiring.state_file(paths.resolve(user)).exists()


IN_READ_ONLY = r"""
set -e
mount --bind "$1" "$1"
mount -o remount,bind,ro "$1"
shift
exec "$@"
"""


def test_a_read_only_codex_folder_leaves_claudes_settings_as_they_were(user, home):
    """`~/.codex` read-only (a read-only mount: root ignores modes): install failed with
    "unexpected error" after Claude Code's settings were already changed."""
    if os.geteuid() != 0 or not shutil.which("unshare") or subprocess.run(
            ["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs root and mount namespaces (unshare -m)")
    home.write_user_profile(f"[agent]\nport = {free_port()}\n")
    write(claude_file(user), '{\n  "model": "opus"\n}\n')
    write(codex_file(user), CODEX_COMMENTED)
    before = snapshot(claude_file(user), codex_file(user))
    env = {k: v for k, v in {**home.env, **user}.items() if v is not None}
    result = subprocess.run(["unshare", "-m", "sh", "-c", IN_READ_ONLY, "sh",
                             str(codex_file(user).parent), sys.executable, "-m", "aitrack",
                             "agent", "install", "--no-service", "--keep-local"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "unexpected error" not in result.stderr
    assert str(codex_file(user).parent) in result.stderr or "config.toml" in result.stderr
    assert "nothing was changed" in result.stderr, result.stderr
    assert snapshot(claude_file(user), codex_file(user)) == before
    assert not wiring.state_file(paths.resolve(user)).exists()


def test_uninstall_keeps_the_record_of_a_config_that_became_a_link(user, tmp_path):
    write(codex_file(user), CODEX_COMMENTED)
    wire(user)
    wired = codex_file(user).read_bytes()
    dotfiles = tmp_path / "dotfiles" / "config.toml"
    write(dotfiles, wired, 0o600)
    codex_file(user).unlink()
    codex_file(user).symlink_to(dotfiles)
    out = unwire(user)
    assert any("symbolic link" in line for line in out.lines)
    state = json.loads(wiring.state_file(paths.resolve(user)).read_text())
    assert str(codex_file(user)) in state["files"]  # the original bytes are kept
    codex_file(user).unlink()  # the user replaces the link with the file, as told
    write(codex_file(user), wired, 0o600)
    unwire(user)
    assert codex_file(user).read_text() == CODEX_COMMENTED


def test_a_write_that_fails_half_way_puts_back_what_was_written(user, monkeypatch):
    """All or nothing across tools, whatever fails (here: the disk fills at Codex's file)."""
    import errno

    from aitrack.install.wiring import files as wiring_files

    write(claude_file(user), '{\n  "model": "opus"\n}\n')
    write(codex_file(user), CODEX_COMMENTED)
    before = snapshot(claude_file(user), codex_file(user))
    real = wiring_files.write

    def full_at_codex(target, data, mode):
        if target == codex_file(user):
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return real(target, data, mode)

    monkeypatch.setattr(wiring_files, "write", full_at_codex)
    with pytest.raises(wiring.WiringError) as failed:
        wire(user)
    assert "No space left" in str(failed.value) and "nothing was changed" in str(failed.value)
    assert snapshot(claude_file(user), codex_file(user)) == before
    assert not wiring.state_file(paths.resolve(user)).exists()
