"""Every registered tool keeps the adapter contract (aitrack/adapters/__init__.py), so a new
tool gets these tests by being registered: what the wrapper needs before the tool starts,
its telemetry mapping, its local files, its settings wired to the agent and put back byte for
byte, its shim, its doctor check, its pinned binary for the end-to-end tests, and its docs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aitrack import adapters
from aitrack.adapters.endpoints import AgentLink
from aitrack.capture import agent
from aitrack.config import paths, profile
from aitrack.domain import pricing
from aitrack.domain.records import Point
from aitrack.install import wiring

REPO = Path(__file__).resolve().parent.parent
TOOLS = adapters.TOOLS
# what the start-up path may import for a tool: the standard minimum and aitrack's own
LEAN = re.compile(r"aitrack(\..*)?|encodings.*|_.*|os|stat|posixpath|genericpath|abc|codecs|"
                  r"io|site|sys|builtins|zipimport|marshal|time|importlib(\..*)?|types|warnings|"
                  r"__future__|errno|keyword|operator|reprlib|itertools|functools|collections(\..*)?|"
                  r"contextlib|enum|re(\..*)?|copyreg|sre_.*|linecache|tokenize|token")


@pytest.fixture(params=TOOLS)
def tool(request) -> str:
    return request.param


def test_the_registry_names_each_tool_once_and_each_name_is_its_package(tool):
    adapter = adapters.load(tool)
    assert TOOLS.count(tool) == 1
    assert adapter.NAME == tool


def test_what_the_wrapper_needs_before_the_tool_starts(tool):
    adapter = adapters.load(tool)
    assert isinstance(adapter.TITLE, str) and adapter.TITLE
    assert isinstance(adapter.EXECUTABLE, str) and adapter.EXECUTABLE
    assert adapter.BIN_ENV == f"AITRACK_{tool.upper()}_BIN"
    assert adapter.WITHOUT_AGENT in ("receiver", "transcript")
    assert isinstance(adapter.SERVICE_NAMES, tuple) and adapter.SERVICE_NAMES
    assert isinstance(adapter.TELLS_RUN, bool)
    assert isinstance(adapter.REPORTS_CONTRIBUTIONS, bool)
    assert isinstance(adapter.EXAMPLE, str) and adapter.EXAMPLE
    assert adapter.RESUME is None or "{id}" in adapter.RESUME  # report session's `resume`
    assert adapter.BILLING_WINDOW_H is None or adapter.BILLING_WINDOW_H > 0  # report blocks
    assert getattr(adapter, "WITH_AGENT", "agent") in ("agent", "receiver")
    assert all(isinstance(v, str) for v in getattr(adapter, "HOME_ENV", ()))
    assert adapter.is_session([]) is True
    assert adapter.is_session(["--version"]) is False
    assert adapter.is_session(["--help"]) is False
    if adapter.WITHOUT_AGENT == "receiver":
        sink = adapters.Sink("http://127.0.0.1:9", "x-aitrack-key", "s3cret", ("metrics", "logs"),
                             {"team.id": "t"}, {"metric_export_interval_ms": 1000,
                                                "logs_export_interval_ms": 1000,
                                                "log_user_prompts": False,
                                                "log_tool_details": False})
        args, env = adapter.prepare(["-p", "hi"], {"PATH": "/bin"}, sink)
        assert args == ["-p", "hi"]  # the user's arguments, untouched
        assert any("127.0.0.1:9" in v for v in env.values())  # pointed at the receiver
        assert not any("s3cret" in a for a in args)  # the key never in argv


def _imported(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True,
                         text=True, check=True).stderr
    return {line.rsplit("|", 1)[-1].strip() for line in out.splitlines()[1:] if "|" in line}


def test_the_start_up_part_of_a_tool_imports_nothing_heavy(tool):
    """`aitrack TOOL` imports the tool's package before the tool starts."""
    added = _imported(f"import aitrack.adapters.{tool}") - _imported("pass")
    heavy = sorted(m for m in added if not LEAN.fullmatch(m))
    assert not heavy, heavy


def test_its_telemetry_names_its_sessions_and_ignores_what_it_does_not_know(tool):
    telemetry = adapters.telemetry(tool)
    assert telemetry.NAME == tool
    assert telemetry.tool_session_id({}) is None
    stranger = Point("someone.else.metric", {"model": "m"}, 5.0, False, 0, "someone.else")
    assert telemetry.contributions(stranger, 5.0) == []
    assert telemetry.log_contributions({"event.name": "someone.else"}, None) == []
    assert adapters.for_service(adapters.load(tool).SERVICE_NAMES[0]).NAME == tool
    # the optional parts (adapters/__init__.py): each a record of its own, or nothing
    if hasattr(telemetry, "log_request"):
        assert telemetry.log_request({"event.name": "someone.else"}, None) is None
    if "traces" in getattr(telemetry, "USAGE_SIGNALS", ()):  # its spans are its requests
        assert telemetry.span_request({"gen_ai.operation.name": "someone.else"}, None) is None
        assert telemetry.span_contributions({"gen_ai.operation.name": "x"}, None) == []
    if hasattr(telemetry, "opens_session"):
        assert telemetry.opens_session("someone.else", {}) is True
    if hasattr(telemetry, "side_start"):
        assert telemetry.side_start({"event.name": "someone.else"}) is False
        assert 0 < telemetry.SIDE_WINDOW_S <= 10


def test_its_local_files_are_found_under_its_own_home_only(tool, tmp_path):
    locate = adapters.part(tool, "locate")
    if locate is None:
        pytest.skip(f"{tool} keeps no local files aitrack reads")
    env = {"HOME": str(tmp_path)}
    for root in locate.transcript_roots(env):
        assert Path(root).is_relative_to(tmp_path)
    assert locate.run_sessions(str(tmp_path), 0.0, 1e10, env) == []
    if hasattr(locate, "open_sessions"):  # what a run's processes hold open: sessions only
        assert locate.open_sessions([str(tmp_path / "notes.txt")]) == []
        assert locate.run_process([locate.__name__]) in (True, False)


def test_its_reader_keeps_the_engines_contract(tool):
    reader = adapters.part(tool, "transcripts")
    if reader is None:
        pytest.skip(f"{tool} has no files for `aitrack import`")
    for name in ("roots", "is_transcript", "order", "Reader", "metrics"):
        assert callable(getattr(reader, name)), name
    source = getattr(reader, "SOURCE", "lines")
    assert source in ("lines", "whole")
    if source == "whole":  # it reads each file itself
        assert callable(getattr(reader.Reader, "query", None))
    else:
        assert reader.MARKERS and all(isinstance(m, bytes) for m in reader.MARKERS)
    for name in ("totals", "notes"):  # optional: a session's totals, its known gaps
        if hasattr(reader, name):
            assert getattr(reader, name)({}) == {}, name


@pytest.fixture
def user(home, tmp_path) -> dict[str, str]:
    user_home = tmp_path / "user-home"
    user_home.mkdir()
    return {**home.env, "HOME": str(user_home), "CLAUDE_CONFIG_DIR": str(user_home / ".claude"),
            "CODEX_HOME": str(user_home / ".codex"), "COPILOT_HOME": str(user_home / ".copilot"),
            "GEMINI_CLI_HOME": str(user_home), "QWEN_HOME": str(user_home / ".qwen"),
            "AITRACK_CLAUDE_MANAGED_SETTINGS": str(tmp_path / "no-managed.json"),
            "AITRACK_CODEX_SYSTEM_DIR": str(tmp_path / "no-system-codex"),
            "GEMINI_CLI_SYSTEM_SETTINGS_PATH": str(tmp_path / "no-system-gemini.json"),
            "GEMINI_CLI_SYSTEM_DEFAULTS_PATH": str(tmp_path / "no-defaults-gemini.json"),
            "QWEN_CODE_SYSTEM_SETTINGS_PATH": str(tmp_path / "no-system-qwen.json"),
            "QWEN_CODE_SYSTEM_DEFAULTS_PATH": str(tmp_path / "no-defaults-qwen.json")}


def test_its_settings_point_at_the_agent_and_go_back_byte_for_byte(tool, user, monkeypatch):
    settings = adapters.part(tool, "settings")
    if settings is None:
        pytest.skip(f"{tool} has no user settings the agent can be wired through")
    for key, value in user.items():
        monkeypatch.setenv(key, value)
    where = paths.resolve(user)
    p = profile.Profile()
    target = settings.user_file(user)
    assert Path(target).is_relative_to(user["HOME"])
    assert agent.agent_port(where, p) is None  # nothing chosen yet: no agent to point at
    wiring.wire(where, p, user)
    port = agent.agent_port(where, p)  # chosen by install, and remembered
    assert port is not None and settings.points_at_agent(port, user), \
        settings.diagnose(port, user)
    if getattr(settings, "HOLDS_SECRET", False):
        assert (target.stat().st_mode & 0o077) == 0  # it holds the key: the user's only
    else:
        assert agent.ensure_secret(where) not in target.read_text()  # never the key itself
    wiring.unwire(where, user)
    assert not target.exists()  # it did not exist: gone again


def test_its_machine_wide_snippet_holds_no_key(tool):
    settings = adapters.part(tool, "settings")
    if settings is None or not hasattr(settings, "machine_snippet"):
        pytest.skip(f"{tool} has no machine-wide settings")
    link = AgentLink(47318, agent.SECRET_HEADER, None, None, agent.RUN_HEADER,
                     profile.Telemetry())
    snippet = settings.machine_snippet(link, "linux")
    assert "127.0.0.1:47318" in snippet and agent.SECRET_HEADER not in snippet.replace(
        f"{agent.SECRET_HEADER}:", "").replace(f'"{agent.SECRET_HEADER}"', "")


def test_a_tool_with_settings_can_be_kept_from_sending_where_they_say(tool):
    """When another user holds the agent's port, the wrapper keeps the tool from sending
    there over its own settings (`mute`), with nothing secret in its arguments."""
    adapter = adapters.load(tool)
    if adapters.part(tool, "settings") is None:
        pytest.skip(f"{tool} has no settings that could name the agent's port")
    if getattr(adapter, "WITH_AGENT", "agent") == "receiver":
        pytest.skip(f"{tool}'s wrapped runs always have a receiver of their own")
    args, env = adapter.mute(["do", "it"], {"HOME": "/h"})
    assert args[-2:] == ["do", "it"] and args != ["do", "it"] and env == {"HOME": "/h"}
    assert not any(agent.SECRET_HEADER in a for a in args)


def test_its_wrapper_command_passes_every_argument_on(tool, home):
    """`aitrack TOOL --help` is the tool's own help: aitrack adds no option of its own."""
    missing = home.run(tool, "--help", env={adapters.load(tool).BIN_ENV: "/nonexistent"})
    assert missing.returncode == 127 and "Usage:" not in missing.stdout
    assert "/nonexistent" in missing.stderr  # one line naming what is missing


def test_it_has_a_shim(tool, home, tmp_path):
    result = home.run("shims", "install", "--dir", str(tmp_path / "shims"))
    assert result.returncode == 0, result.stderr
    assert b"aitrack-shim" in (tmp_path / "shims" / tool).read_bytes()[:512]


def test_doctor_knows_it(tool, home):
    result = home.run("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert any(tool in name for name in checks), sorted(checks)


def test_its_binary_is_pinned_for_the_end_to_end_tests(tool):
    run_sh = (REPO / "tests" / "run.sh").read_text()
    assert re.search(rf"^{tool.upper()}_VERSION=\d+\.\d+\.\d+$", run_sh, re.M), \
        f"tests/run.sh pins no {tool.upper()}_VERSION"


def test_its_default_models_are_priced(tool):
    adapter = adapters.load(tool)
    models = adapter.DEFAULT_MODELS
    assert models, f"adapters/{tool}: name the models it uses by default (DEFAULT_MODELS)"
    for model in models:
        if model in getattr(adapter, "UNPRICED", ()):  # no public price: n/a, never a guess
            assert pricing.price_for(model) is None, f"{tool}: {model} is said unpriced"
            continue
        assert pricing.price_for(model) is not None, f"{tool}: {model} is not priced"


def test_its_counting_rules_are_written_down(tool):
    doc = adapters.load(tool).__doc__ or ""
    assert "Counting rules" in doc, f"adapters/{tool}/__init__.py: write its counting rules"


def test_the_readme_lists_it():
    readme = (REPO / "README.md").read_text()
    for tool in TOOLS:
        assert f"`aitrack {tool}" in readme, tool
